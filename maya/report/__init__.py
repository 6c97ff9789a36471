"""What people read: the study report, plots, the dedup gallery, contact sheets."""
