"""Losses on softmax probabilities ``[b, 3, y, x, 2]`` against integer labels ``[b, 3, y, x]``.

- ``cross_entropy``: mean voxel-wise categorical cross-entropy, no class weights (the original).
- ``dice``: 1 - soft Dice of the brain class, pooled over every voxel of the batch (so slabs without brain
  do not make it undefined; ``smooth`` = 1 voxel keeps an all-background batch at a finite loss).
- ``cross_entropy+dice``: their sum, the usual remedy for the brain's small share of the voxels.
"""

from __future__ import annotations

import keras
from keras import ops

from fetal_keras.choices import LOSSES


@keras.saving.register_keras_serializable(package="fetal_keras")
class SoftDiceLoss(keras.losses.Loss):
    """1 - soft Dice of the brain (class 1) probabilities, pooled over the batch."""

    def __init__(self, smooth: float = 1.0, name: str = "soft_dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smooth = smooth

    def call(self, y_true, y_pred):
        brain = ops.cast(ops.equal(ops.cast(y_true, "int32"), 1), y_pred.dtype)
        probability = y_pred[..., 1]
        intersection = ops.sum(brain * probability)
        total = ops.sum(brain) + ops.sum(probability)
        return 1.0 - (2.0 * intersection + self.smooth) / (total + self.smooth)

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth}


@keras.saving.register_keras_serializable(package="fetal_keras")
class CrossEntropyPlusDice(keras.losses.Loss):
    """Cross-entropy plus soft Dice loss."""

    def __init__(self, smooth: float = 1.0, name: str = "cross_entropy_plus_dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smooth = smooth
        self._cross_entropy = keras.losses.SparseCategoricalCrossentropy()
        self._dice = SoftDiceLoss(smooth)

    def call(self, y_true, y_pred):
        return self._cross_entropy(y_true, y_pred) + self._dice(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth}


def get_loss(name: str) -> keras.losses.Loss:
    """The loss called ``name`` (one of ``LOSSES``)."""
    if name == "cross_entropy":
        return keras.losses.SparseCategoricalCrossentropy(name="cross_entropy")
    if name == "dice":
        return SoftDiceLoss()
    if name == "cross_entropy+dice":
        return CrossEntropyPlusDice()
    raise ValueError(f"Unknown loss {name!r}; choose one of {LOSSES}.")
