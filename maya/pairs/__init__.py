"""Labelled pairs: benchmark building from originals (seeded edits, negatives), CSV import."""
