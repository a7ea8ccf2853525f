"""Models: the networks, losses, metrics, a run's training config and the packaged pretrained weights."""
