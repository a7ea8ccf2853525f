"""Evaluation: overlap and distance metrics against reference masks, and QC cases."""
