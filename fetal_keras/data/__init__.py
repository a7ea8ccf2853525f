"""Data: cohorts, NIfTI I/O, checks, preprocessing, splits and the tf.data slab pipeline."""
