"""Models: the networks, losses, metrics, loading for inference and the packaged pretrained weights."""
