"""Averaging a run's last epochs (fetal_keras.training.weight_average)."""

import numpy as np
import pytest

from fetal_keras.models.networks import build_model
from fetal_keras.models.train_config import TrainConfig
from fetal_keras.training.callbacks import EpochWeights
from fetal_keras.training.weight_average import EPOCH_WEIGHTS, averaged_model, write_averaged


def _run_with_epochs(tmp_path, values):
    """A run folder whose kept epochs hold a tiny U-Net with every weight set to each of ``values``."""
    run = tmp_path / "run"
    run.mkdir()
    TrainConfig("a.csv", "b.csv", str(run), base_filters=2).save(run / "config.json")
    model = build_model("unet", base_filters=2)
    keeper = EpochWeights(run / EPOCH_WEIGHTS)
    keeper.set_model(model)
    for epoch, value in enumerate(values):
        model.set_weights([np.full_like(w, value) for w in model.get_weights()])
        keeper.on_epoch_end(epoch)
    return run


def test_the_last_epochs_are_averaged_weight_by_weight(tmp_path):
    run = _run_with_epochs(tmp_path, [100.0, 1.0, 2.0, 6.0])
    model = averaged_model(run, last=3)
    assert all(np.allclose(w, 3.0) for w in model.get_weights())
    folder = write_averaged(run, 3, tmp_path / "averaged")
    assert (folder / "model.keras").is_file() and (folder / "config.json").is_file()


def test_averaging_more_epochs_than_were_kept_is_refused(tmp_path):
    run = _run_with_epochs(tmp_path, [1.0])
    with pytest.raises(ValueError, match="holds 1 epochs' weights; averaging the last 2"):
        averaged_model(run, last=2)
