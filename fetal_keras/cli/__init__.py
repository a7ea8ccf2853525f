"""The ``fetal-keras`` command line: one module per sub-command, wired together in ``main``."""
