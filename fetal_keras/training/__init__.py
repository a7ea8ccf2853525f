"""Training: callbacks, the fit loop under tf.distribute and the pretrained recipe."""
