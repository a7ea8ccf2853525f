"""Train a localiser + segmenter pair on a few labelled stacks of one's own, from the packaged pair or from scratch.

The recipe (``SMALL_COHORT_RECIPE``) is what ``benchmarks/bench_finetune.py`` measures and the README gives as the
starting point for a lab's own stacks; ``fetal-keras train --init-from pretrained --task ROLE`` with the same
settings is the command-line equivalent.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fetal_keras.data.cohort import ID_COLUMN, IMAGE_COLUMN, SEGMENTATION_COLUMN
from fetal_keras.data.io import read_geometry
from fetal_keras.files import atomic_output
from fetal_keras.models.pretrained import PAIR_FILE, PAIR_ROLES, PRETRAINED_NAME, verified_pair, write_pair_file
from fetal_keras.models.train_config import TrainConfig
from fetal_keras.training.initial_weights import fine_tuning_config
from fetal_keras.training.recipes import ROLE_SHARES, SMALL_COHORT_RECIPE, STARTS

ORIENTATIONS = ("sagittal", "coronal", "axial")


def slice_orientation(image_path: str | Path) -> str:
    """``"sagittal"``, ``"coronal"`` or ``"axial"``: the scanner axis closest to the stack's slice normal."""
    direction = np.asarray(read_geometry(image_path).direction).reshape(3, 3)
    return ORIENTATIONS[int(np.argmax(np.abs(direction[:, 2])))]


def one_stack_per_orientation(cohort: pd.DataFrame, count: int = 3) -> list[str]:
    """Ids of ``count`` stacks, the first of each slice orientation in cohort order, then others in cohort order.

    Raises:
        ValueError: if the cohort has fewer than ``count`` + 1 stacks (one must be left to test on).
    """
    if len(cohort) <= count:
        raise ValueError(f"{count} training stacks need a cohort of at least {count + 1}, got {len(cohort)}.")
    orientations = [slice_orientation(path) for path in cohort[IMAGE_COLUMN]]
    first = [cohort[ID_COLUMN].iloc[orientations.index(name)] for name in dict.fromkeys(orientations)]
    rest = [stack_id for stack_id in cohort[ID_COLUMN] if stack_id not in first]
    return (first + rest)[:count]


def stacks_by_orientation(cohort: pd.DataFrame) -> dict[str, list[str]]:
    """The cohort's stack ids grouped by slice orientation, in cohort order (the forgetting protocol's splits: train
    on one orientation's stacks, test on the others)."""
    groups: dict[str, list[str]] = {}
    for stack_id, path in zip(cohort[ID_COLUMN], cohort[IMAGE_COLUMN], strict=True):
        groups.setdefault(slice_orientation(path), []).append(stack_id)
    return groups


@dataclass(frozen=True)
class FineTuningSplit:
    """A cohort divided by stack into ``train.csv`` and ``test.csv`` (absolute paths, no subject column)."""

    train_csv: Path
    test_csv: Path


def write_fine_tuning_split(cohort: pd.DataFrame, train_ids: list[str], folder: str | Path) -> FineTuningSplit:
    """Write the stacks ``train_ids`` as ``folder/train.csv`` and the others as ``folder/test.csv``.

    The split is by stack, not by subject (the stacks of the shared real set are one fetus): the subject column is
    left out on purpose, so that training accepts it. Do not use it for a claim about new subjects.

    Raises:
        ValueError: for an id not in the cohort, or no stack left to test on.
    """
    unknown = sorted(set(train_ids) - set(cohort[ID_COLUMN]))
    if unknown:
        raise ValueError(f"training stacks {unknown} are not in the cohort.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table = cohort[[ID_COLUMN, IMAGE_COLUMN, SEGMENTATION_COLUMN]]
    chosen = table[ID_COLUMN].isin(train_ids)
    if chosen.all():
        raise ValueError("every stack is a training stack: none is left to test on.")
    split = FineTuningSplit(folder / "train.csv", folder / "test.csv")
    for rows, path in ((table[chosen], split.train_csv), (table[~chosen], split.test_csv)):
        with atomic_output(path) as temporary:
            rows.to_csv(temporary, index=False)
    return split


def role_config(
    train_csv: str | Path,
    val_csv: str | Path,
    run_dir: Path,
    role: str,
    start: str,
    minutes: float,
    steps: int | None = None,
    **settings,
) -> TrainConfig:
    """The config of one role: the packaged role's network and preprocessing, its weights only when ``start`` is
    ``"pretrained"``, the small-cohort recipe, ``minutes`` of training. The recipe never validates during training
    (``validation_every``) and keeps the last epoch: nothing is selected on ``val_csv``.

    ``steps``: train exactly this many batches (rounded up to whole epochs of at most the recipe's
    ``steps_per_epoch``), so that the same seed gives the same weights on one machine; ``minutes`` is then only an
    upper bound.
    """
    if steps is not None:
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}.")
        per_epoch = min(settings.get("steps_per_epoch", SMALL_COHORT_RECIPE["steps_per_epoch"]), steps)
        settings = settings | {"steps_per_epoch": per_epoch, "epochs": math.ceil(steps / per_epoch)}
    config = fine_tuning_config(
        str(train_csv),
        str(val_csv),
        str(run_dir),
        "pretrained",
        task=role,
        max_minutes=minutes,
        **(SMALL_COHORT_RECIPE | settings),
    )
    return config if start == "pretrained" else dataclasses.replace(config, init_from=None)


def fine_tune_pair(
    train_csv: str | Path,
    val_csv: str | Path,
    folder: str | Path,
    start: str,
    minutes: float,
    steps: int | None = None,
    roles: tuple[str, ...] = PAIR_ROLES,
    average_with_packaged: bool = False,
    fine_tuned_weight: float = 0.5,
    **settings,
) -> Path:
    """Train a localiser and a segmenter on ``train_csv`` (``ROLE_SHARES`` of ``minutes`` each; with ``steps``,
    that many batches per role, the minutes only an upper bound) into
    ``folder/localiser/`` and ``folder/segmenter/``, and write ``folder/pair.json`` naming their last checkpoints.
    Rerun the same call after an interruption: a finished role is kept, an interrupted one resumes (with a fresh
    time budget). ``roles``: the roles to train (``("segmenter",)``: the packaged localiser is copied into the
    folder and kept, the segmenter gets the whole budget). ``average_with_packaged``: each trained role is deployed as
    the mean of its prediction and the packaged role's (copied to ``folder/packaged/ROLE/``), so that a few
    labelled stacks cannot pull the pair far from what the packaged one learned; ``fine_tuned_weight`` is the trained
    model's weight in that mean (the packaged model's: 1 - it).

    Returns:
        The pair folder: ``fetal-keras predict --model FOLDER`` deploys it.

    Raises:
        ValueError: for an unknown ``start``, or as ``fetal_keras.training.train.train``.
        FileExistsError: if ``folder`` already holds a finished pair.
    """
    import keras

    from fetal_keras.training.train import RunFolder, train

    if start not in STARTS:
        raise ValueError(f"start must be one of {STARTS}, got {start!r}.")
    if not 0.0 < fine_tuned_weight <= 1.0:
        raise ValueError(f"the fine-tuned model's weight in the mean must be in (0, 1], got {fine_tuned_weight}.")
    if not roles or not set(roles) <= set(PAIR_ROLES):
        raise ValueError(f"roles must be some of {PAIR_ROLES}, got {roles!r}.")
    folder = Path(folder)
    if (folder / PAIR_FILE).exists():
        raise FileExistsError(f"{folder} already holds a fine-tuned pair ({folder / PAIR_FILE}); use a new folder.")
    trained_share = sum(ROLE_SHARES[role] for role in roles)
    models, weights = {}, {}
    for role in PAIR_ROLES:
        if role not in roles:
            models[role] = str(_copy_packaged_role(role, folder / role).relative_to(folder))
            continue
        run = RunFolder(folder / role)
        share = ROLE_SHARES[role] / trained_share
        config = role_config(train_csv, val_csv, run.root, role, start, minutes * share, steps, **settings)
        if not (run.finished and TrainConfig.load(run.config) == config):  # train() refuses other settings
            keras.backend.clear_session()
            train(config, verbose=2)
        models[role] = str(run.last.relative_to(folder))
        if average_with_packaged:
            packaged = _copy_packaged_role(role, folder / "packaged" / role)
            models[role] = [models[role], str(packaged.relative_to(folder))]
            weights[role] = [fine_tuned_weight, round(1.0 - fine_tuned_weight, 6)]
    write_pair_file(folder, models, weights)
    return folder


def _copy_packaged_role(role: str, target: Path) -> Path:
    """Copy the packaged pair's ``role`` (its weights, checked against the card, and config) into the folder
    ``target``; return the copied weights file."""
    source, _ = verified_pair(PRETRAINED_NAME)
    target.mkdir(parents=True, exist_ok=True)
    for name in ("model.keras", "config.json"):
        shutil.copy2(source / role / name, target / name)
    return target / "model.keras"
