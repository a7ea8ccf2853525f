import keras
import numpy as np
import pytest

from fetal_keras.models.losses import LOSSES, SoftDiceLoss, get_loss
from fetal_keras.models.metrics import BrainDice, dice_score


def _probabilities(brain):
    brain = np.asarray(brain, dtype="float32")
    return np.stack([1 - brain, brain], axis=-1)


def test_dice_score_conventions():
    assert dice_score(np.zeros(5), np.zeros(5)) == 1.0
    assert dice_score(np.ones(5), np.zeros(5)) == 0.0
    assert dice_score(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0])) == pytest.approx(2 / 3)
    assert dice_score(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]), truth_outside=1) == pytest.approx(2 / 4)
    assert dice_score(np.zeros(5), np.zeros(5), truth_outside=3) == 0.0


def test_brain_dice_metric_pools_voxels_over_batches_and_resets():
    metric = BrainDice()
    metric.update_state(np.array([[1, 1, 0, 0]]), _probabilities([[0.9, 0.2, 0.1, 0.6]]))
    metric.update_state(np.array([[0, 0, 0, 0]]), _probabilities([[0.0, 0.0, 0.0, 0.0]]))
    assert float(metric.result()) == pytest.approx(2 * 1 / (2 + 2))
    metric.reset_state()
    metric.update_state(np.zeros((1, 4)), _probabilities(np.zeros((1, 4))))
    assert float(metric.result()) == 1.0


def test_soft_dice_loss_is_zero_for_a_perfect_prediction_and_one_for_the_opposite():
    labels = np.array([[1, 1, 0, 0]])
    assert float(SoftDiceLoss(smooth=0.0)(labels, _probabilities(labels))) == pytest.approx(0.0, abs=1e-6)
    assert float(SoftDiceLoss(smooth=0.0)(labels, _probabilities(1 - labels))) == pytest.approx(1.0)


@pytest.mark.parametrize("name", LOSSES)
def test_losses_are_lower_for_better_predictions_and_serialisable(name):
    loss = get_loss(name)
    labels = np.array([[1, 1, 0, 0]])
    good, bad = _probabilities([[0.9, 0.8, 0.1, 0.2]]), _probabilities([[0.4, 0.3, 0.6, 0.7]])
    assert float(loss(labels, good)) < float(loss(labels, bad))
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert float(restored(labels, good)) == pytest.approx(float(loss(labels, good)))


def test_unknown_loss_is_rejected():
    with pytest.raises(ValueError, match="Unknown loss"):
        get_loss("focal")
