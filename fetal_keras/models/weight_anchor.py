"""L2-SP: fine-tuning that is pulled back toward its starting weights (Li et al. 2018, "Explicit inductive bias for
transfer learning with convolutional networks"), so that a few labelled stacks adapt a model without it forgetting
what it learned from many.

Each convolution kernel gets a regulariser ``strength * sum((kernel - starting kernel) ** 2)``; Keras adds it to
the training loss. Batch-norm parameters and biases are left free, as in the paper.
"""

from __future__ import annotations

import keras
import numpy as np


class TowardStartingWeights(keras.regularizers.Regularizer):
    """``strength`` times the squared distance of a variable from its starting value."""

    def __init__(self, start: np.ndarray, strength: float):
        self.start = np.asarray(start, np.float32)
        self.strength = float(strength)

    def __call__(self, x):
        return self.strength * keras.ops.sum(keras.ops.square(x - self.start))

    def get_config(self) -> dict:
        return {"strength": self.strength, "start_shape": list(self.start.shape)}


def anchor_to_current_weights(model: keras.Model, strength: float) -> int:
    """Regularise every trainable convolution kernel of ``model`` toward its current value; return how many.

    Raises:
        ValueError: for a negative ``strength``.
    """
    if strength < 0:
        raise ValueError(f"strength must be at least 0, got {strength}.")
    kernels = [variable for variable in model.trainable_weights if variable.path.endswith("kernel")]
    for variable in kernels:
        variable.regularizer = TowardStartingWeights(np.asarray(variable), strength)
    return len(kernels)
