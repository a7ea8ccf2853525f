"""Data: cohorts, NIfTI I/O, checks, preprocessing and splits."""
