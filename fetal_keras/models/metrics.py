"""Dice of the brain class, for batches during training (Keras metric) and for whole volumes (NumPy).

Conventions, used everywhere in fetal_keras:
- A voxel is predicted brain when its brain probability is >= 0.5 (the argmax of 2 classes).
- Dice = 2 |P & T| / (|P| + |T|); when both P and T are empty it is 1.0 (nothing to find, nothing found),
  when exactly one is empty it is 0.0.
- ``BrainDice`` pools every voxel of every batch seen since its last reset (micro-average over the epoch):
  the patch-level "pseudo Dice". Whole-volume Dice is computed per stack and averaged over stacks (macro).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

# Columns of a run's history.csv: whole-volume Dice on the validation stacks, and on the monitored stacks.
VOLUME_DICE = "val_volume_dice"
MONITOR_DICE = "monitor_volume_dice"


def dice_score(prediction: np.ndarray, truth: np.ndarray, truth_outside: int = 0) -> float:
    """Dice of two binary masks of the same shape (1.0 when both are empty); ``truth_outside``: true voxels beyond
    the arrays (e.g. brain a crop left out), counted as missed."""
    prediction, truth = prediction.astype(bool), truth.astype(bool)
    total = int(prediction.sum()) + int(truth.sum()) + truth_outside
    if total == 0:
        return 1.0
    return 2.0 * int((prediction & truth).sum()) / total


@keras.saving.register_keras_serializable(package="fetal_keras")
class BrainDice(keras.metrics.Metric):
    """Dice of the brain class over every voxel seen since the last reset (1.0 if no brain anywhere)."""

    def __init__(self, name: str = "brain_dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.intersection = self.add_variable(shape=(), initializer="zeros", name="intersection")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        truth = ops.cast(ops.equal(ops.cast(y_true, "int32"), 1), "float32")
        prediction = ops.cast(ops.greater_equal(ops.cast(y_pred[..., 1], "float32"), 0.5), "float32")
        self.intersection.assign_add(ops.sum(truth * prediction))
        self.total.assign_add(ops.sum(truth) + ops.sum(prediction))

    def result(self):
        return ops.where(self.total > 0, 2.0 * self.intersection / ops.maximum(self.total, 1.0), 1.0)

    def reset_state(self):
        self.intersection.assign(0.0)
        self.total.assign(0.0)
