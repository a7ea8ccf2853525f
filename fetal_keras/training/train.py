"""Train a slab model from a ``TrainConfig``: data, strategy, model, callbacks, ``model.fit``, export.

Run folder layout: ``config.json``, ``history.csv``, ``checkpoints/best.keras`` (best whole-volume validation
Dice) and ``checkpoints/last.keras``, ``backup/`` (Keras ``BackupAndRestore``: rerunning the same command after an
interruption, even ``kill -9``, continues from the last finished epoch), ``tensorboard/``, and
``saved_model/<timestamp>/`` (the best model exported with ``model.export`` at the end, or on Ctrl-C).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm.auto import tqdm

from fetal_keras.data.cohort import ID_COLUMN, IMAGE_COLUMN, read_cohort
from fetal_keras.data.preprocess import label_map_preprocess, label_maps_as_images, load_stacks
from fetal_keras.data.splits import ensure_disjoint
from fetal_keras.data.stack_bank import StackBank, load_stack_bank
from fetal_keras.deploy.loading import load_single
from fetal_keras.deploy.localise import LocalisedSegmenter
from fetal_keras.deploy.predict import PredictOptions, locate_head
from fetal_keras.models.losses import get_loss
from fetal_keras.models.metrics import MONITOR_DICE, VOLUME_DICE, BrainDice
from fetal_keras.models.networks import build_model, freeze_encoder
from fetal_keras.models.train_config import TrainConfig
from fetal_keras.models.weight_anchor import anchor_to_current_weights
from fetal_keras.pipeline import SamplingConfig, patch_dataset, read_train_and_validation, training_dataset
from fetal_keras.training.callbacks import (
    BestCheckpoint,
    CosineDecay,
    SliceImages,
    TimeBudget,
    WholeVolumeDice,
)
from fetal_keras.training.distributed_fit import fit_with_strategy_run
from fetal_keras.training.export import export_saved_model
from fetal_keras.training.initial_weights import load_initial_weights, resolve_initial_weights


class RunFolder:
    """Paths of one run's outputs."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.config = self.root / "config.json"
        self.history = self.root / "history.csv"
        self.checkpoints = self.root / "checkpoints"
        self.best = self.checkpoints / "best.keras"
        self.last = self.checkpoints / "last.keras"
        self.backup = self.root / "backup"
        self.tensorboard = self.root / "tensorboard"
        self.saved_model = self.root / "saved_model"

    @property
    def finished(self) -> bool:
        """True when the run ended (it exported a SavedModel and left no backup to resume from)."""
        return any(self.saved_model.glob("2*")) and not self.backup.exists()


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy called ``name``.

    ``auto``: ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names several workers, ``MirroredStrategy``
    on several GPUs, else the default (one device). ``mirrored``: every local GPU, or every logical CPU device
    when there is no GPU. ``multiworker``: the workers listed in ``TF_CONFIG``. Call it before any other
    TensorFlow work: collective ops are configured at program start-up.
    """
    if name == "auto":
        workers = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {}).get("worker", [])
        if len(workers) > 1:
            name = "multiworker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(config.learning_rate, momentum=config.momentum)
    return keras.optimizers.Adam(config.learning_rate)


def _sharded_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Shard across workers by element: the datasets are generated, not read from files."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def finished_epochs(backup_dir: Path) -> int:
    """Epochs an interrupted run finished, from Keras ``BackupAndRestore``'s metadata (0 for a new run)."""
    metadata = Path(backup_dir) / "training_metadata.json"
    if not metadata.is_file():
        return 0
    try:
        return int(json.loads(metadata.read_text())["epoch"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{metadata} is damaged ({error}); delete {backup_dir} to restart the run.") from None


def localised_heads(localiser_spec: str | Path, table: pd.DataFrame) -> dict[str, np.ndarray]:
    """What a localiser finds on each stack of a cohort table (``{iFIND_id: uint8 [z, y, x] head}``, the file's
    grid), as ``fetal-keras predict --localiser`` finds it."""
    localiser, localiser_preprocess, _, _ = load_single(localiser_spec, "localiser")
    pair = LocalisedSegmenter(localiser, localiser_preprocess, segmenter=None)
    return {
        stack_id: locate_head(pair, stack_id, path, PredictOptions())
        for stack_id, path in tqdm(
            zip(table[ID_COLUMN], table[IMAGE_COLUMN], strict=True), total=len(table), desc="localising", unit="stack"
        )
    }


def _check_run_folder(run: RunFolder, config: TrainConfig) -> None:
    """Refuse to mix two different runs in one folder, or to silently redo a finished run."""
    if run.config.exists():
        previous = TrainConfig.load(run.config)
        if previous != config:
            raise ValueError(
                f"{run.root} holds a run with other settings ({run.config}); use a new --run-dir, or the same "
                "settings to resume it."
            )
        if run.finished:
            raise FileExistsError(f"{run.root} holds a finished run (see {run.saved_model}); use a new --run-dir.")


def _monitor_stacks(config: TrainConfig, train_table: pd.DataFrame, val_focus) -> list:
    """The prepared stacks of ``config.monitor_csv`` (none without one), refused if they share a stack, subject
    or image with the training cohort; a segmenter's are cropped as its validation stacks are."""
    if not config.monitor_csv:
        return []
    monitor_table = read_cohort(config.monitor_csv, require_segmentation=True)
    ensure_disjoint({f"train ({config.train_csv})": train_table, f"monitor ({config.monitor_csv})": monitor_table})
    focus = localised_heads(config.validation_localiser, monitor_table) if val_focus is not None else None
    return load_stacks(monitor_table, config.preprocess, focus=focus)


def training_bank(config: TrainConfig, train_table: pd.DataFrame, progress: bool = True) -> StackBank:
    """The training stacks of ``config``, decoded and prepared once: the images, or the tissue label maps that its
    rendering draws images from."""
    if config.render is None:
        return load_stack_bank(train_table, config.preprocess, progress=progress)
    return load_stack_bank(
        label_maps_as_images(train_table, config.train_csv), label_map_preprocess(config.preprocess), progress=progress
    )


def rehearsal_bank(config: TrainConfig, val_table: pd.DataFrame, progress: bool = True) -> StackBank | None:
    """The stacks of ``config.rehearsal_csv`` prepared as the run's (their images, never rendered), or None without
    one; refused if they share a stack, subject or image with the validation cohort."""
    if not config.rehearsal_csv:
        return None
    table = read_cohort(config.rehearsal_csv, require_segmentation=True)
    ensure_disjoint({f"rehearsal ({config.rehearsal_csv})": table, f"validation ({config.val_csv})": val_table})
    return load_stack_bank(table, config.preprocess, progress=progress)


def training_batches(
    config: TrainConfig, bank: StackBank, first_batch: int = 0, rehearsal: StackBank | None = None
) -> tf.data.Dataset:
    """The endless training batches of ``config`` from ``bank`` (rendered when the config says so), from batch
    ``first_batch`` of the run's sequence; with a ``rehearsal`` bank, each batch ends with
    ``config.rehearsed_per_batch`` slabs of it (same sampling and augmentation, a sequence of their own)."""
    sampling = SamplingConfig(config.slab_size, config.slabs_per_stack, config.brain_fraction)
    own = config.batch_size - (config.rehearsed_per_batch if rehearsal is not None else 0)
    batches = training_dataset(bank, own, sampling, config.augment, config.seed, first_batch, config.render)
    if rehearsal is None:
        return batches
    rehearsed = training_dataset(
        rehearsal, config.rehearsed_per_batch, sampling, config.augment, config.seed + 1, first_batch
    )
    return tf.data.Dataset.zip(batches, rehearsed).map(
        lambda mine, other: (tf.concat([mine[0], other[0]], 0), tf.concat([mine[1], other[1]], 0))
    )


@dataclass(frozen=True)
class TrainingResult:
    """What :func:`train` produced: the trained model (last epoch), its history and the exported SavedModel."""

    model: keras.Model
    history: keras.callbacks.History
    saved_model: Path


def train(
    config: TrainConfig, verbose: int | str = "auto", extra_callbacks: Sequence[keras.callbacks.Callback] = ()
) -> TrainingResult:
    """Train, checkpoint, export; resume if ``config.run_dir`` holds an interrupted run with the same config.

    Args:
        config: every setting of the run.
        verbose: Keras ``fit`` verbosity ("auto": progress bars; 2: one line per epoch).
        extra_callbacks: Keras callbacks (e.g. ``LiveHistoryPlot`` in a notebook), run after the built-in ones.

    Returns:
        The model, the Keras history of this invocation (``history.csv`` holds every epoch of the run) and the
        exported SavedModel folder.

    Raises:
        ValueError: on bad inputs (named by file and line), or a run folder holding a different run.
        FileExistsError: if the run folder holds a finished run.
    """
    strategy = make_strategy(config.strategy)
    run = RunFolder(config.run_dir)
    _check_run_folder(run, config)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")

    train_table, val_table = read_train_and_validation(config.train_csv, config.val_csv)
    preprocess = config.preprocess
    bank = training_bank(config, train_table)  # plain CPU variables: outside the strategy scope
    rehearsal = rehearsal_bank(config, val_table)
    val_focus = localised_heads(config.validation_localiser, val_table) if config.validation_localiser else None
    val_stacks = load_stacks(val_table, preprocess, focus=val_focus)
    monitor_stacks = _monitor_stacks(config, train_table, val_focus)
    initial = resolve_initial_weights(config.init_from, config.task) if config.init_from else None
    if not int(tf.reduce_sum(bank.brain_counts)):
        raise ValueError(
            f"No training stack of {config.train_csv} has any brain voxel (brain labels: "
            f"{config.brain_labels or 'every non-zero label'}): check the segmentations or --brain-labels."
        )
    val_sampling = SamplingConfig(config.slab_size, config.validation_slabs_per_stack, config.brain_fraction)
    # A resumed run continues the batch sequence where the restored epoch left it, as if never interrupted.
    first_batch = finished_epochs(run.backup) * config.steps_per_epoch
    train_data = _sharded_by_data(training_batches(config, bank, first_batch, rehearsal))
    val_data = _sharded_by_data(patch_dataset(val_stacks, config.batch_size, val_sampling, config.seed))

    with strategy.scope():
        options = {"base_filters": config.base_filters} if config.preset == "unet" else {}
        # With several replicas, batch statistics over the global batch keep every replica identical.
        model = build_model(config.preset, synchronized_bn=strategy.num_replicas_in_sync > 1, **options)
        if initial is not None:  # a resumed run then restores its own weights from the backup
            load_initial_weights(model, initial)
        if config.freeze_encoder:
            freeze_encoder(model)
        if config.l2sp_strength:
            anchor_to_current_weights(model, config.l2sp_strength)
        model.compile(optimizer=_optimizer(config), loss=get_loss(config.loss), metrics=[BrainDice()])

    # The run folder is made only once every input (and the starting weights) has been read and accepted.
    for folder in (run.root, run.checkpoints, run.tensorboard):
        folder.mkdir(parents=True, exist_ok=True)
    config.save(run.config, initial.record() if initial else None)

    callbacks = [
        WholeVolumeDice(val_stacks, config.validation_every, log_dir=str(run.tensorboard)),
        *(
            [WholeVolumeDice(monitor_stacks, config.validation_every, log_dir=str(run.tensorboard), key=MONITOR_DICE)]
            if monitor_stacks
            else []
        ),
        SliceImages(val_stacks[0], str(run.tensorboard), config.validation_every),
        BestCheckpoint(run.best, VOLUME_DICE, run.history),
        keras.callbacks.ModelCheckpoint(run.last),
        keras.callbacks.BackupAndRestore(str(run.backup), double_checkpoint=True),
        keras.callbacks.CSVLogger(str(run.history), append=True),
        keras.callbacks.TensorBoard(str(run.tensorboard)),
    ]
    if config.max_minutes is not None:
        callbacks.append(TimeBudget(config.max_minutes))
    if config.learning_rate_schedule == "cosine":
        callbacks.insert(0, CosineDecay(config.max_minutes))  # first, so the other callbacks log its rate
    callbacks += list(extra_callbacks)
    try:
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            history = fit_with_strategy_run(
                model, strategy, train_data, config.epochs, config.steps_per_epoch, callbacks, verbose
            )
        else:
            history = model.fit(
                train_data,
                epochs=config.epochs,
                steps_per_epoch=config.steps_per_epoch,
                validation_data=val_data,
                callbacks=callbacks,
                verbose=verbose,
                shuffle=False,  # the datasets are already shuffled, by round
            )
    except KeyboardInterrupt:
        export_best(run, model)
        raise
    return TrainingResult(model, history, export_best(run, model))


def export_best(run: RunFolder, model: keras.Model) -> Path:
    """Export the best checkpoint (or ``model`` if none was saved yet) as a SavedModel; return its folder."""
    best = keras.saving.load_model(run.best, safe_mode=True) if run.best.exists() else model
    target = export_saved_model(best, run.saved_model, run.config)
    print(f"Exported {'best checkpoint' if run.best.exists() else 'current model'} to {target}")
    return target
