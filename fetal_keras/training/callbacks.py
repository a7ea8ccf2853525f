"""Training callbacks: whole-volume validation Dice, TensorBoard slice images, a time budget, SavedModel export.

Checkpointing and resuming use Keras' own ``ModelCheckpoint`` and ``BackupAndRestore`` (see ``fetal_keras.training.train``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from fetal_keras.data.preprocess import PreparedStack
from fetal_keras.deploy.inference import predict_brain_probability
from fetal_keras.deploy.predict import postprocess_mask
from fetal_keras.files import append_progress, atomic_output, write_json
from fetal_keras.models.metrics import VOLUME_DICE, dice_score


def whole_volume_dice_scores(model, stacks: Sequence[PreparedStack], batch_size: int = 4) -> list[float]:
    """Dice of each labelled stack segmented whole with the deploy code: probability >= 0.5, then the deploy's
    post-processing (largest connected component, holes filled); brain a crop left out counts as missed."""
    scores = []
    for stack in stacks:
        if stack.labels is None:
            continue
        mask = postprocess_mask(predict_brain_probability(model, stack.unpadded_image, batch_size) >= 0.5)
        scores.append(dice_score(mask, stack.unpadded_labels, stack.labels_outside))
    return scores


class WholeVolumeDice(keras.callbacks.Callback):
    """Mean Dice over whole validation stacks, predicted with the deploy code, as ``logs["val_volume_dice"]``.

    Each stack is segmented whole at the model's spacing (``fetal_keras.deploy.inference``) and post-processed as
    deploy does (a segmenter's validation stacks are crops around their manual mask, as a correct localiser would
    give); its Dice is computed on that grid and the mean over stacks is logged (macro average; an empty truth and
    empty prediction count as 1.0). It runs every ``every`` epochs and on the last; in between the key holds NaN, so ``history.csv`` keeps its column from the
    first epoch and the best-model checkpoint only compares measured epochs.

    ``key`` names the logged value (``monitor_volume_dice`` for a cohort that is only watched) and its TensorBoard
    folder.
    """

    def __init__(
        self,
        stacks: Sequence[PreparedStack],
        every: int = 1,
        batch_size: int = 4,
        log_dir: str | None = None,
        key: str = VOLUME_DICE,
    ):
        super().__init__()
        self.stacks = [stack for stack in stacks if stack.labels is not None]
        self.every = every
        self.batch_size = batch_size
        self.key = key
        folder = "validation" if key == VOLUME_DICE else key
        self.writer = tf.summary.create_file_writer(str(Path(log_dir) / folder)) if log_dir else None
        self.last_scores: list[float] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None):
        last_epoch = epoch + 1 == self.params.get("epochs")
        if not self.stacks or ((epoch + 1) % self.every and not last_epoch):
            if logs is not None and self.stacks:
                logs[self.key] = float("nan")
            return
        self.last_scores = whole_volume_dice_scores(self.model, self.stacks, self.batch_size)
        score = float(np.mean(self.last_scores))
        if logs is not None:
            logs[self.key] = score
        if self.writer:
            with self.writer.as_default():
                tf.summary.scalar("epoch_volume_dice", score, step=epoch)


class BestCheckpoint(keras.callbacks.ModelCheckpoint):
    """The best epoch's model (highest ``monitor``), kept across interruptions.

    Keras' ``BackupAndRestore`` restores weights and optimiser, not a checkpoint's best score: a resumed run would
    start from "no best yet" and replace ``best.keras`` with its first validated epoch, however bad. This checkpoint
    writes the saved model's score beside it (``best.json``: epoch and score) and a resumed run starts from that score
    (or, for a run written before it existed, from the best ``monitor`` value of ``history_path``), so ``best.keras``
    is only ever replaced by a better epoch.
    """

    def __init__(self, filepath: str | Path, monitor: str, history_path: str | Path):
        self.record_path = Path(filepath).with_suffix(".json")
        best = _best_so_far(Path(filepath), self.record_path, Path(history_path), monitor)
        # A finite starting best: epochs without validation log NaN, and Keras would otherwise keep the first epoch
        # (best None -> NaN, which no later Dice beats).
        super().__init__(
            filepath,
            monitor=monitor,
            mode="max",
            save_best_only=True,
            initial_value_threshold=-1.0 if best is None else best,
        )

    def on_epoch_end(self, epoch: int, logs: dict | None = None):
        before = self.best
        super().on_epoch_end(epoch, logs)
        if self.best != before:
            write_json(self.record_path, {"epoch": epoch + 1, self.monitor: float(self.best)})


def _best_so_far(model_path: Path, record_path: Path, history_path: Path, monitor: str) -> float | None:
    """The score of the model saved at ``model_path`` by an earlier invocation of the run, or None."""
    if not model_path.exists():
        return None
    if record_path.exists():
        return float(json.loads(record_path.read_text())[monitor])
    if history_path.exists():
        scores = pd.read_csv(history_path).get(monitor)
        if scores is not None and scores.notna().any():
            return float(scores.max())
    return None


class SliceImages(keras.callbacks.Callback):
    """TensorBoard images of one validation stack's middle slice: input, label and predicted brain probability."""

    def __init__(self, stack: PreparedStack, log_dir: str, every: int = 1):
        super().__init__()
        self.stack = stack
        self.every = every
        self.writer = tf.summary.create_file_writer(str(Path(log_dir) / "images"))

    def on_epoch_end(self, epoch: int, logs: dict | None = None):
        if (epoch + 1) % self.every:
            return
        image = self.stack.unpadded_image.astype(np.float32)
        middle = image.shape[0] // 2
        window = image[max(middle - 1, 0) : middle + 2]
        probability = predict_brain_probability(self.model, window)[min(middle, 1)]
        low, high = np.percentile(image[middle], (1, 99.5))
        panels = {
            "input": np.clip((image[middle] - low) / max(high - low, 1e-6), 0, 1),
            "label": self.stack.unpadded_labels[middle].astype(np.float32),
            "prediction": probability,
        }
        with self.writer.as_default():
            for name, panel in panels.items():
                tf.summary.image(f"middle_slice/{name}", panel[None, :, :, None], step=epoch)


class TimeBudget(keras.callbacks.Callback):
    """Stop training after the epoch at whose end another epoch like it would overrun ``minutes`` in total.

    The budget counts from the start of this ``fit`` call (a resumed run gets a fresh budget).
    """

    def __init__(self, minutes: float):
        super().__init__()
        if minutes <= 0:
            raise ValueError(f"the time budget must be positive, got {minutes} minutes")
        self.seconds = 60.0 * minutes

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        if (now - self.start) + (now - self.epoch_start) > self.seconds:
            self.model.stop_training = True
            print(f"Time budget of {self.seconds / 60:g} min reached: stopping after epoch {epoch + 1}.")


class EpochWeights(keras.callbacks.Callback):
    """Keep every epoch's weights (``folder/epoch_NNN.weights.h5``, batch-norm statistics included), for averaging
    a run's last epochs (``fetal_keras.training.weight_average``). Each file is written atomically."""

    def __init__(self, folder: str | Path):
        super().__init__()
        self.folder = Path(folder)

    def on_epoch_end(self, epoch, logs=None):
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_output(self.folder / f"epoch_{epoch + 1:03d}.weights.h5") as temporary:
            self.model.save_weights(temporary)


class ProgressLog(keras.callbacks.Callback):
    """Append one line per epoch to a text file: the time, the epoch and batches done, examples per second, the
    Dice scores logged, and the estimated time left (the remaining epochs at this invocation's mean epoch time, or
    what is left of ``minutes`` if that comes first), so a long background run can be followed with ``tail -f``."""

    def __init__(self, path: str | Path, label: str, minutes: float | None = None, batch_size: int = 1):
        super().__init__()
        self.path, self.label, self.batch_size = Path(path), label, batch_size
        self.seconds = None if minutes is None else 60.0 * minutes

    def _write(self, line: str) -> None:
        append_progress(self.path, f"{self.label}: {line}")

    def on_train_begin(self, logs=None):
        self.start, self.epochs_here = time.monotonic(), 0
        self._write(f"training starts ({self.params.get('epochs')} epochs of {self.params.get('steps')} batches)")

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        self.epochs_here += 1
        steps, epochs = int(self.params.get("steps") or 0), int(self.params.get("epochs") or 0)
        per_epoch = (now - self.start) / self.epochs_here
        left = per_epoch * max(epochs - epoch - 1, 0)
        if self.seconds is not None:
            left = min(left, max(self.seconds - (now - self.start), 0.0))
        scores = ", ".join(
            f"{key} {value:.3f}" for key, value in (logs or {}).items() if "dice" in key and np.isfinite(value)
        )
        self._write(
            f"epoch {epoch + 1}/{epochs}, {(epoch + 1) * steps} batches, "
            f"{steps * self.batch_size / (now - self.epoch_start):.1f} examples/s, {scores or 'not validated'}; "
            f"ETA {left / 60:.0f} min"
        )

    def on_train_end(self, logs=None):
        self._write(f"training ends after {(time.monotonic() - self.start) / 60:.1f} min")


class CosineDecay(keras.callbacks.Callback):
    """Anneal the learning rate from its initial value to 0 along a half cosine over the run.

    Progress is the larger of the fraction of training batches done (``epochs x steps``) and, with ``minutes``,
    the fraction of the time budget used, so a run that a time budget (:class:`TimeBudget`) will stop still ends
    near 0. The rate is set before every batch and logged as ``learning_rate``. A resumed run continues the anneal
    from the batches its restored epochs did (its fresh time budget counts from the resume).
    """

    def __init__(self, minutes: float | None = None):
        super().__init__()
        self.seconds = None if minutes is None else 60.0 * minutes
        self.step = 0

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()
        self.initial = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.total_steps = max(int(self.params.get("epochs", 1)) * int(self.params.get("steps") or 1), 1)

    def progress(self) -> float:
        """Fraction of the run done, in [0, 1]."""
        done = self.step / self.total_steps
        if self.seconds:
            done = max(done, (time.monotonic() - self.start) / self.seconds)
        return min(done, 1.0)

    def on_epoch_begin(self, epoch, logs=None):
        self.step = max(self.step, epoch * int(self.params.get("steps") or 1))

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate.assign(0.5 * self.initial * (1.0 + np.cos(np.pi * self.progress())))
        self.step += 1

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class LiveHistoryPlot(keras.callbacks.Callback):
    """Redraw the Dice curves (``fetal_keras.figures.metric_plots.plot_training_curves``) in a notebook after every epoch."""

    def __init__(self, history_csv: str | Path | None = None):
        """``history_csv``: the run's ``history.csv``, so a resumed run shows its earlier epochs too."""
        super().__init__()
        self.history_csv = Path(history_csv) if history_csv else None
        self.rows: list[dict] = []

    def on_train_begin(self, logs=None):
        self.rows = []
        if self.history_csv and self.history_csv.is_file() and self.history_csv.stat().st_size:
            self.rows = pd.read_csv(self.history_csv).to_dict("records")

    def on_epoch_end(self, epoch, logs=None):
        import matplotlib.pyplot as plt
        from IPython.display import clear_output, display

        from fetal_keras.figures.metric_plots import plot_training_curves

        self.rows = [row for row in self.rows if row.get("epoch") != epoch] + [{"epoch": epoch, **(logs or {})}]
        figure = plot_training_curves(pd.DataFrame(self.rows))
        clear_output(wait=True)
        display(figure)
        plt.close(figure)
