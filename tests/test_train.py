"""Training end to end on a tiny synthetic cohort: outputs, export, resume after kill -9, run-folder safety."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_train_config

from fetal_keras.models.metrics import VOLUME_DICE
from fetal_keras.models.networks import build_model
from fetal_keras.models.train_config import TrainConfig
from fetal_keras.training.callbacks import BestCheckpoint, CosineDecay, ProgressLog
from fetal_keras.training.export import export_saved_model
from fetal_keras.training.train import RunFolder, train

pytestmark = pytest.mark.slow


def _tiny(csvs, run_dir, **changes):
    return tiny_train_config(*csvs, run_dir, **changes)


def _last_value(history_csv: Path, column: str) -> float:
    with open(history_csv) as stream:
        return float(list(csv.DictReader(stream))[-1][column])


def _epochs(history_csv: Path) -> list[int]:
    with open(history_csv) as stream:
        return [int(row["epoch"]) for row in csv.DictReader(stream)]


def test_training_writes_the_run_folder_and_a_faithful_export(train_val_csvs, tmp_path):
    run = RunFolder(tmp_path / "run")
    train(_tiny(train_val_csvs, run.root), verbose=0)

    assert TrainConfig.load(run.config) == _tiny(train_val_csvs, run.root)
    assert _epochs(run.history) == [0, 1]
    assert "val_volume_dice" in run.history.read_text().splitlines()[0]
    assert run.best.exists() and run.last.exists() and any(run.tensorboard.rglob("events.out.tfevents*"))
    (export,) = sorted(run.saved_model.iterdir())
    best = keras.saving.load_model(run.best, safe_mode=True)
    served = tf.saved_model.load(str(export))  # keep the object: its variables die with it
    slab = np.random.default_rng(0).normal(size=(2, 3, 16, 24, 1)).astype(np.float32)
    np.testing.assert_allclose(served.serve(tf.constant(slab)).numpy(), best(slab).numpy(), atol=1e-5)


def test_history_keeps_the_whole_volume_dice_column_when_validating_every_few_epochs(train_val_csvs, tmp_path):
    run = RunFolder(tmp_path / "run")
    train(_tiny(train_val_csvs, run.root, epochs=3, validation_every=2), verbose=0)
    with open(run.history) as stream:
        values = [row["val_volume_dice"] for row in csv.DictReader(stream)]
    assert values[0] == "nan"
    assert np.isfinite(float(values[1])) and np.isfinite(float(values[2]))  # measured every 2 epochs and at the end


def test_the_best_checkpoint_is_a_validated_epoch_not_the_unvalidated_first(train_val_csvs, tmp_path):
    """Epoch 0 logs NaN (no validation); the best checkpoint must come from the validated epoch 1, here the last."""
    run = RunFolder(tmp_path / "run")
    train(_tiny(train_val_csvs, run.root, epochs=2, validation_every=2), verbose=0)
    best = keras.saving.load_model(run.best, compile=False).get_weights()
    last = keras.saving.load_model(run.last, compile=False).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(best, last, strict=True))


def test_a_monitor_cohort_is_measured_every_validation_and_chooses_nothing(train_val_csvs, tmp_path):
    """Monitoring the validation stacks themselves must log exactly the validation Dice, in its own column."""
    run = RunFolder(tmp_path / "run")
    train(_tiny(train_val_csvs, run.root, epochs=3, validation_every=2, monitor_csv=train_val_csvs[1]), verbose=0)
    with open(run.history) as stream:
        rows = list(csv.DictReader(stream))
    monitored = [float(row["monitor_volume_dice"]) for row in rows]
    validated = [float(row["val_volume_dice"]) for row in rows]
    assert np.isnan(monitored[0]) and np.isnan(validated[0])
    np.testing.assert_allclose(monitored[1:], validated[1:])
    assert (run.tensorboard / "monitor_volume_dice").is_dir()


def test_a_monitor_cohort_sharing_a_stack_with_training_is_refused(train_val_csvs, tmp_path):
    with pytest.raises(ValueError, match="monitor"):
        train(_tiny(train_val_csvs, tmp_path / "run", monitor_csv=train_val_csvs[0]), verbose=0)
    assert not (tmp_path / "run").exists()


def test_a_time_budget_stops_training_after_the_epoch_that_fills_it(train_val_csvs, tmp_path):
    class Recorder(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.epochs = []

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append(epoch)

    recorder = Recorder()
    config = _tiny(train_val_csvs, tmp_path / "run", epochs=5, max_minutes=1e-4)
    result = train(config, verbose=0, extra_callbacks=[recorder])
    assert recorder.epochs == [0]  # the first epoch alone overran 6 ms; the extra callback saw it
    assert _epochs(RunFolder(config.run_dir).history) == [0]
    assert result.saved_model.is_dir()
    assert (result.saved_model / "config.json").read_text() == RunFolder(config.run_dir).config.read_text()
    with pytest.raises(ValueError, match="max_minutes"):
        _tiny(train_val_csvs, tmp_path / "other", max_minutes=0)


def test_export_and_keras_file_match_the_in_memory_model(tmp_path):
    model = build_model("unet", base_filters=2)
    model.save(tmp_path / "model.keras")
    export = export_saved_model(model, tmp_path / "saved_model")
    slab = np.random.default_rng(1).normal(size=(1, 3, 32, 40, 1)).astype(np.float32)
    expected = model(slab).numpy()
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "model.keras")(slab).numpy(), expected, atol=1e-6)
    served = tf.saved_model.load(str(export))
    np.testing.assert_allclose(served.serve(tf.constant(slab)).numpy(), expected, atol=1e-5)


def test_a_run_folder_holds_one_run(train_val_csvs, tmp_path):
    train(_tiny(train_val_csvs, tmp_path / "run", epochs=1), verbose=0)
    with pytest.raises(ValueError, match="holds a run with other settings"):
        train(_tiny(train_val_csvs, tmp_path / "run", epochs=1, learning_rate=0.5), verbose=0)
    with pytest.raises(FileExistsError, match="finished run"):
        train(_tiny(train_val_csvs, tmp_path / "run", epochs=1), verbose=0)


@pytest.mark.slow
@pytest.mark.timeout(900)  # three training processes in turn: about 150 s beside another test
def test_killed_training_resumes_where_it_stopped(train_val_csvs, tmp_path):
    run = RunFolder(tmp_path / "run")
    command = [
        str(Path(sys.executable).with_name("fetal-keras")),
        "train",
        "--train-csv",
        str(train_val_csvs[0]),
        "--val-csv",
        str(train_val_csvs[1]),
        "--run-dir",
        str(run.root),
        "--base-filters",
        "2",
        "--epochs",
        "4",
        "--steps-per-epoch",
        "3",
        "--batch-size",
        "2",
        "--slabs-per-stack",
        "2",
        "--augmentation",
        "none",
        "--seed",
        "1",
        "--quiet",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and not (run.history.exists() and _epochs(run.history)):
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = _epochs(run.history)
    assert done_before and done_before[-1] < 3, "killed before the end"

    result = subprocess.run(command, capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stderr[-2000:]
    epochs = _epochs(run.history)
    assert epochs[-1] == 3 and sorted(set(epochs)) == [0, 1, 2, 3]
    assert len(epochs) <= 5, "at most the epoch in flight at the kill is repeated"
    assert any(run.saved_model.iterdir())

    # An uninterrupted run with the same seed: same batches (the resumed run continues the batch sequence), same end.
    uninterrupted = RunFolder(tmp_path / "uninterrupted")
    command[command.index("--run-dir") + 1] = str(uninterrupted.root)
    assert subprocess.run(command, capture_output=True, text=True, timeout=300).returncode == 0
    assert _epochs(uninterrupted.history) == [0, 1, 2, 3]
    resumed_dice, reference_dice = (_last_value(folder.history, "val_volume_dice") for folder in (run, uninterrupted))
    assert abs(resumed_dice - reference_dice) <= 0.01
    resumed = keras.saving.load_model(run.last, safe_mode=True)
    reference = keras.saving.load_model(uninterrupted.last, safe_mode=True)
    for a, b in zip(resumed.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_a_resumed_run_replaces_its_best_model_only_with_a_better_epoch(tmp_path):
    """Killed after its best epoch (0.9), a run resumes with a fresh checkpoint callback, as ``train`` builds it: a
    worse epoch (0.8) leaves ``best.keras`` alone, a better one (0.95) replaces it. Each epoch's model is marked by
    its first weight."""
    best, history = tmp_path / "best.keras", tmp_path / "history.csv"
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])

    def epochs(callback, scores, first_epoch):
        callback.set_model(model)
        for epoch, score in enumerate(scores, first_epoch):
            model.layers[0].kernel.assign([[float(epoch)]])
            callback.on_epoch_end(epoch, {VOLUME_DICE: score})

    def best_epoch():
        return float(keras.saving.load_model(best).layers[0].kernel.numpy()[0, 0])

    epochs(BestCheckpoint(best, VOLUME_DICE, history), [0.7, 0.9], first_epoch=0)
    assert best_epoch() == 1.0
    # kill -9 here; the resumed invocation repeats epoch 2 onwards
    epochs(BestCheckpoint(best, VOLUME_DICE, history), [0.8, float("nan")], first_epoch=2)
    assert best_epoch() == 1.0, "a worse epoch after the resume replaced the best model"
    epochs(BestCheckpoint(best, VOLUME_DICE, history), [0.95], first_epoch=4)
    assert best_epoch() == 4.0
    # A run interrupted before best.json existed: its history's best score is the bar.
    (tmp_path / "best.json").unlink()
    history.write_text(f"epoch,{VOLUME_DICE}\n0,0.7\n1,0.97\n")
    epochs(BestCheckpoint(best, VOLUME_DICE, history), [0.96], first_epoch=5)
    assert best_epoch() == 4.0


def test_a_cosine_schedule_anneals_the_learning_rate_towards_zero(train_val_csvs, tmp_path):
    run = RunFolder(tmp_path / "run")
    train(_tiny(train_val_csvs, run.root, epochs=3, learning_rate=0.01, learning_rate_schedule="cosine"), verbose=0)
    with open(run.history) as stream:
        rates = [float(row["learning_rate"]) for row in csv.DictReader(stream)]
    assert len(rates) == 3 and rates[0] > rates[1] > rates[2]
    assert rates[0] < 0.01 and rates[2] < 0.001


def test_a_resumed_cosine_schedule_continues_from_its_restored_epochs():
    """After a resume at epoch 2 of 4, the rate continues half-way down the cosine instead of starting again."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    schedule = CosineDecay()
    schedule.set_model(model)
    schedule.set_params({"epochs": 4, "steps": 10})
    schedule.on_train_begin()
    schedule.on_epoch_begin(2)
    schedule.on_train_batch_begin(0)
    rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    assert rate == pytest.approx(0.005, rel=1e-5)


def test_the_progress_log_gets_a_line_per_epoch_with_its_scores_and_eta(tmp_path):
    log = ProgressLog(tmp_path / "progress.log", "localiser", minutes=60.0, batch_size=16)
    log.set_params({"epochs": 4, "steps": 10})
    log.on_train_begin()
    for epoch in range(2):
        log.on_epoch_begin(epoch)
        log.on_epoch_end(epoch, {"loss": 0.3, VOLUME_DICE: 0.8 + epoch / 100, "monitor_volume_dice": float("nan")})
    log.on_train_end()
    lines = (tmp_path / "progress.log").read_text().splitlines()
    assert len(lines) == 4 and all(" localiser: " in line for line in lines)
    assert "epoch 2/4, 20 batches" in lines[2] and f"{VOLUME_DICE} 0.810" in lines[2] and "ETA 0 min" in lines[2]
    assert "monitor" not in lines[2] and "loss" not in lines[2]
