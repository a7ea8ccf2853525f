"""L2-SP: convolution kernels pulled toward their starting values, the penalty in the model's losses."""

import json

import numpy as np
import pytest
from conftest import tiny_train_config

from fetal_keras.models.networks import build_model
from fetal_keras.models.train_config import TrainConfig
from fetal_keras.models.weight_anchor import anchor_to_current_weights
from fetal_keras.training.train import RunFolder, train


def test_the_penalty_is_zero_at_the_start_and_the_squared_distance_after_a_change():
    model = build_model("unet", base_filters=2)
    count = anchor_to_current_weights(model, 0.5)
    kernels = [variable for variable in model.trainable_weights if variable.path.endswith("kernel")]
    assert count == len(kernels) > 0
    assert float(sum(np.asarray(loss) for loss in model.losses)) == 0.0
    moved = kernels[0]
    moved.assign(np.asarray(moved) + 0.1)
    expected = 0.5 * 0.1**2 * np.prod(moved.shape)
    assert float(sum(np.asarray(loss) for loss in model.losses)) == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="at least 0"):
        anchor_to_current_weights(model, -1.0)


def test_l2sp_needs_starting_weights(tmp_path):
    with pytest.raises(ValueError, match="needs init_from"):
        TrainConfig("t.csv", "v.csv", str(tmp_path), l2sp_strength=0.01)
    with pytest.raises(ValueError, match="at least 0"):
        TrainConfig("t.csv", "v.csv", str(tmp_path), init_from="pretrained", task="segmenter", l2sp_strength=-1.0)


@pytest.mark.slow
@pytest.mark.timeout(600)  # three tiny trainings: 84 s with two other trainings on the machine
def test_a_strong_anchor_keeps_the_kernels_nearer_their_start(train_val_csvs, tmp_path):
    import keras

    first = RunFolder(tmp_path / "first")
    train(tiny_train_config(*train_val_csvs, first.root, epochs=1), verbose=0)
    start = keras.saving.load_model(first.best, compile=False)

    def drift(strength: float) -> float:
        run = RunFolder(tmp_path / f"l2sp{strength}")
        config = tiny_train_config(*train_val_csvs, run.root, init_from=str(first.root), l2sp_strength=strength)
        train(config, verbose=0)
        assert json.loads(run.config.read_text())["config"]["l2sp_strength"] == strength
        tuned = keras.saving.load_model(run.last, compile=False)
        return sum(
            float(np.sum((np.asarray(a) - np.asarray(b)) ** 2))
            for a, b in zip(start.weights, tuned.weights, strict=True)
            if a.path.endswith("kernel")
        )

    assert drift(100.0) < drift(0.0)
