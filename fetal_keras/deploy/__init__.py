"""Deploy: loading models, whole-stack inference, localise-then-segment and writing masks with the stack's header."""
