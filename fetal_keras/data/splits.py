"""Subject-level train/validation/test splits (and k folds) that cannot leak a subject between sets.

Stacks are grouped by subject (several stacks of one fetus must stay in one set) and split with scikit-learn's
group splitters. Split files list stacks by id and path, never by position, and are committed under
``data_splits/<name>/``.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, GroupShuffleSplit

from fetal_keras import __version__
from fetal_keras.data.cohort import ID_COLUMN, IMAGE_COLUMN, SEGMENTATION_COLUMN, read_cohort
from fetal_keras.files import atomic_output, write_json

SUBJECT_COLUMN = "subject"
SET_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class SplitSettings:
    """How a cohort is split.

    Attributes:
        val_fraction: fraction of subjects (not stacks) in the validation set, in [0, 1).
        test_fraction: fraction of subjects in the test set, in [0, 1).
        seed: random seed of the group splitters.
        folds: if set (>= 2), also split the non-test subjects into this many cross-validation folds.
        group_by: how stacks map to subjects: a column name of the CSV, or a regular expression applied to
            ``iFIND_id`` whose first group (or whole match) is the subject, e.g. ``"^(sub-[^_]+)"`` for BIDS
            ids. None: the ``subject`` column when the CSV has one, else each ``iFIND_id`` is its own subject.
    """

    val_fraction: float = 0.2
    test_fraction: float = 0.2
    seed: int = 0
    folds: int | None = None
    group_by: str | None = None

    def __post_init__(self):
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value}.")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction} leaves no training subjects."
            )
        if self.folds is not None and self.folds < 2:
            raise ValueError(f"folds must be at least 2, got {self.folds}.")


def subject_ids(table: pd.DataFrame, group_by: str | None = None) -> pd.Series:
    """The subject of each stack (see ``SplitSettings.group_by``).

    Raises:
        ValueError: if ``group_by`` is neither a column nor a valid regular expression, or an id does not match.
    """
    if group_by is None:
        group_by = SUBJECT_COLUMN if SUBJECT_COLUMN in table.columns else ID_COLUMN
    if group_by in table.columns:
        subjects = table[group_by]
        empty = subjects[subjects == ""]
        if not empty.empty:
            raise ValueError(f"Column {group_by!r} is empty on line(s) {empty.index.tolist()}.")
        return subjects.rename(SUBJECT_COLUMN)
    try:
        pattern = re.compile(group_by)
    except re.error as error:
        raise ValueError(
            f"--group-by {group_by!r} is neither a CSV column nor a valid regular expression: {error}"
        ) from None

    def subject_of(line: int, stack_id: str) -> str:
        match = pattern.search(stack_id)
        if match is None:
            raise ValueError(f"Line {line}: iFIND_id {stack_id!r} does not match --group-by {group_by!r}.")
        return match.group(1) if pattern.groups else match.group(0)

    return pd.Series(
        [subject_of(line, i) for line, i in table[ID_COLUMN].items()], index=table.index, name=SUBJECT_COLUMN
    )


def _holdout(table: pd.DataFrame, fraction: float, seed: int, what: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``table`` into (rest, held out) with about ``fraction`` of its subjects held out."""
    if fraction == 0:
        return table, table.iloc[:0]
    groups = table[SUBJECT_COLUMN].to_numpy()
    n_subjects = len(np.unique(groups))
    if n_subjects < 2:
        raise ValueError(f"Cannot hold out a {what} set: only {n_subjects} subject(s) left to split.")
    splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    try:
        rest, held_out = next(splitter.split(table, groups=groups))
    except ValueError as error:
        raise ValueError(f"Cannot hold out {fraction:.0%} of {n_subjects} subjects as {what}: {error}") from None
    return table.iloc[rest], table.iloc[held_out]


def make_splits(table: pd.DataFrame, settings: SplitSettings) -> dict[str, pd.DataFrame]:
    """Split a cohort table by subject.

    Returns:
        ``{"train": ..., "val": ..., "test": ...}`` plus ``"fold-<k>/train"`` and ``"fold-<k>/val"`` for each
        fold; every table has a ``subject`` column. Sets requested with a fraction of 0 are empty.

    Raises:
        ValueError: if there are too few subjects for the requested sets or folds.
    """
    table = table.assign(**{SUBJECT_COLUMN: subject_ids(table, settings.group_by)})
    pool, test = _holdout(table, settings.test_fraction, settings.seed, "test")
    relative_val = settings.val_fraction / (1 - settings.test_fraction)
    train, val = _holdout(pool, relative_val, settings.seed, "validation")
    if train.empty:
        raise ValueError("The split leaves no training subjects; lower --val / --test or add subjects.")
    splits = {"train": train, "val": val, "test": test}
    if settings.folds:
        n_subjects = pool[SUBJECT_COLUMN].nunique()
        if n_subjects < settings.folds:
            raise ValueError(f"Cannot make {settings.folds} folds from {n_subjects} non-test subjects.")
        splitter = GroupKFold(n_splits=settings.folds, shuffle=True, random_state=settings.seed)
        for fold, (fold_train, fold_val) in enumerate(splitter.split(pool, groups=pool[SUBJECT_COLUMN])):
            splits[f"fold-{fold}/train"] = pool.iloc[fold_train]
            splits[f"fold-{fold}/val"] = pool.iloc[fold_val]
    ensure_disjoint({name: splits[name] for name in SET_NAMES})
    return splits


def ensure_disjoint(tables: Mapping[str, pd.DataFrame]) -> None:
    """Refuse sets that share a stack id, an image file or (where both have the column) a subject.

    Args:
        tables: named cohort tables, e.g. ``{"train": ..., "test": ...}``.

    Raises:
        ValueError: naming the two sets and the shared ids, subjects or files.
    """
    for (name_a, a), (name_b, b) in combinations(tables.items(), 2):
        columns = [ID_COLUMN, IMAGE_COLUMN] + ([SUBJECT_COLUMN] if SUBJECT_COLUMN in a and SUBJECT_COLUMN in b else [])
        for column in columns:
            shared = sorted(set(a[column]) & set(b[column]) - {""})
            if shared:
                listed = ", ".join(map(repr, shared[:10])) + (" ..." if len(shared) > 10 else "")
                raise ValueError(
                    f"Subject leak: {name_a} and {name_b} share {len(shared)} {column} value(s): {listed}. "
                    "A subject must be in one set only; make the split with `fetal-keras split`."
                )


def _relative_paths(table: pd.DataFrame, folder: Path) -> pd.DataFrame:
    def relative(path: str) -> str:
        return os.path.relpath(path, folder) if path else ""

    return table.assign(**{column: table[column].map(relative) for column in (IMAGE_COLUMN, SEGMENTATION_COLUMN)})


def write_splits(
    splits: Mapping[str, pd.DataFrame],
    out_dir: str | Path,
    source_csv: str | Path,
    settings: SplitSettings,
    overwrite: bool = False,
) -> list[Path]:
    """Write each set as ``<out_dir>/<name>.csv`` (paths relative to that file) plus ``split.json``.

    Raises:
        FileExistsError: if ``out_dir`` already holds a split and ``overwrite`` is False.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = [path for path in out_dir.iterdir() if path.name in ("split.json", *(f"{n}.csv" for n in SET_NAMES))]
    existing += sorted(out_dir.glob("fold-*"))
    if existing and not overwrite:
        raise FileExistsError(f"{out_dir} already holds a split ({existing[0].name}); pass --overwrite to replace it.")
    for fold_folder in out_dir.glob("fold-*"):
        shutil.rmtree(fold_folder)
    written = []
    for name, table in splits.items():
        path = out_dir / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as temporary:
            _relative_paths(table, path.parent).to_csv(temporary, index=False)
        written.append(path)
    record = {
        "source_csv": os.path.abspath(source_csv),
        "settings": asdict(settings),
        "sets": {
            name: {
                "stacks": len(table),
                "subjects": int(table[SUBJECT_COLUMN].nunique()),
                "ids": table[ID_COLUMN].tolist(),
            }
            for name, table in splits.items()
        },
        "fetal_keras_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(out_dir / "split.json", record)
    return written + [out_dir / "split.json"]


def load_split(
    split_dir: str | Path, fold: int | None = None, require_segmentation: bool = True
) -> dict[str, pd.DataFrame]:
    """Read the sets of a split folder and check that no subject is in two of them.

    Args:
        split_dir: a folder written by :func:`write_splits`.
        fold: read ``fold-<fold>/train.csv`` and ``fold-<fold>/val.csv`` instead of the top-level ones.
        require_segmentation: whether every row must name a segmentation.

    Returns:
        ``{"train": ..., "val": ..., "test": ...}`` for the sets that exist and are not empty.

    Raises:
        FileNotFoundError: if the folder has no split files.
        ValueError: if two sets share a subject, id or image, or a set's CSV is invalid.
    """
    split_dir = Path(split_dir)
    folder = split_dir / f"fold-{fold}" if fold is not None else split_dir
    paths = {"train": folder / "train.csv", "val": folder / "val.csv", "test": split_dir / "test.csv"}
    tables = {}
    for name, path in paths.items():
        if path.is_file() and len(path.read_text().strip().splitlines()) > 1:
            tables[name] = read_cohort(path, require_segmentation)
    if not tables:
        raise FileNotFoundError(f"{folder} holds no train.csv, val.csv or test.csv with rows.")
    ensure_disjoint(tables)
    return tables
