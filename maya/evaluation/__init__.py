"""The study's measures: sweeps, val->test selection, ranking measures, stability."""
