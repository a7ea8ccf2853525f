"""A cohort CSV as an nnU-Net v2 raw dataset, to train nnU-Net on the same stacks (``benchmarks/bench_peer.py``).

nnU-Net's layout (its ``documentation/dataset_format.md``): ``nnUNet_raw/DatasetXXX_Name/`` with ``imagesTr/``
(``<case>_0000.nii.gz``, channel 0), ``labelsTr/`` (``<case>.nii.gz``, consecutive integer labels), ``imagesTs/`` and
``dataset.json``; the environment variables ``nnUNet_raw``, ``nnUNet_preprocessed`` and ``nnUNet_results`` say where
its three folders are. A validation set of one's own is a ``splits_final.json`` in the preprocessed dataset folder
(fold 0); without one, nnU-Net trains fold ``all`` on every training case. Nothing here imports nnU-Net or torch.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fetal_keras.data.check import CheckOptions, check_cohort
from fetal_keras.data.cohort import ID_COLUMN, IMAGE_COLUMN, SEGMENTATION_COLUMN, read_cohort
from fetal_keras.data.io import read_stack, write_like, write_mask
from fetal_keras.data.labels import brain_mask_from_labels
from fetal_keras.data.problems import raise_for_errors
from fetal_keras.files import atomic_output, write_json

NNUNET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
CHANNEL_SUFFIX = "_0000"
FILE_ENDING = ".nii.gz"
CASES_FILE = "cases.csv"  # case name -> iFIND_id and set, beside dataset.json


@dataclass(frozen=True)
class NnunetDataset:
    """An nnU-Net raw dataset written from cohort CSVs.

    Attributes:
        root: the folder holding ``nnUNet_raw/``, ``nnUNet_preprocessed/`` and ``nnUNet_results/``.
        dataset_id: nnU-Net's dataset number (1-999).
        name: the dataset's folder name, ``DatasetXXX_Name``.
        fold: ``"0"`` with one's own validation cases (``splits_final.json``), else ``"all"``.
        cases: one row per stack: ``case`` (nnU-Net's name), ``iFIND_id``, ``set`` (train, val or test) and
            ``image`` (the file nnU-Net reads).
    """

    root: Path
    dataset_id: int
    name: str
    fold: str
    cases: pd.DataFrame

    @property
    def raw(self) -> Path:
        """``nnUNet_raw/DatasetXXX_Name``."""
        return self.root / "nnUNet_raw" / self.name

    @property
    def preprocessed(self) -> Path:
        """``nnUNet_preprocessed/DatasetXXX_Name``."""
        return self.root / "nnUNet_preprocessed" / self.name

    @classmethod
    def load(cls, raw: str | Path) -> NnunetDataset:
        """The dataset that :func:`write_nnunet_raw_dataset` wrote to the raw dataset folder ``raw``."""
        raw = Path(raw)
        cases = pd.read_csv(raw / CASES_FILE, dtype=str, keep_default_na=False)
        fold = "0" if (cases["set"] == "val").any() else "all"
        return cls(raw.parent.parent, int(raw.name.removeprefix("Dataset")[:3]), raw.name, fold, cases)

    def test_cases(self) -> pd.DataFrame:
        """The rows of the test stacks (``imagesTs``)."""
        return self.cases[self.cases["set"] == "test"]


def nnunet_environment(root: str | Path) -> dict[str, str]:
    """The environment variables that point nnU-Net's three folders into ``root``."""
    return {name: str(Path(root).resolve() / name) for name in NNUNET_FOLDERS}


def case_name(stack_id: str) -> str:
    """An nnU-Net case name for a stack id: letters, digits, ``-`` and ``_`` kept, anything else ``-``."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", stack_id)


def _cases(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per stack of every set, with a unique case name; a stack in two sets appears in both."""
    rows = [
        {"case": case_name(stack_id), ID_COLUMN: stack_id, "set": set_name}
        for set_name, table in tables.items()
        for stack_id in table[ID_COLUMN]
    ]
    cases = pd.DataFrame(rows, columns=["case", ID_COLUMN, "set"])
    distinct = cases.drop_duplicates(ID_COLUMN)
    clashes = distinct[distinct["case"].duplicated(keep=False)]
    if not clashes.empty:
        raise ValueError(
            "stack ids that differ only in characters nnU-Net cannot take in a file name: "
            + ", ".join(sorted(clashes[ID_COLUMN]))
        )
    return cases


def _training_fold(train: pd.DataFrame, val: pd.DataFrame | None) -> str:
    """``"0"`` for validation stacks apart from the training ones, ``"all"`` for none or training stacks only."""
    if val is None:
        return "all"
    shared = set(val[ID_COLUMN]) & set(train[ID_COLUMN])
    if not shared:
        return "0"
    if shared == set(val[ID_COLUMN]):
        return "all"
    raise ValueError(
        "the validation stacks must all be training stacks (nnU-Net then trains fold 'all') or none of them "
        f"(fold 0 validates on them); these are both: {', '.join(sorted(shared))}."
    )


def _checked(csv: str | Path, brain_labels: Sequence[int] | None, purpose: str = "train") -> pd.DataFrame:
    """The cohort (labelled for ``purpose`` "train"), refused with every problem listed if a file is missing,
    unreadable or mismatched."""
    raise_for_errors(check_cohort(csv, CheckOptions(purpose=purpose, brain_labels=brain_labels), progress=False))
    return read_cohort(csv, require_segmentation=purpose == "train")


def write_nnunet_raw_dataset(
    root: str | Path,
    train_csv: str | Path,
    val_csv: str | Path | None = None,
    test_csv: str | Path | None = None,
    dataset_id: int = 501,
    dataset_name: str = "FetalBrain",
    brain_labels: Sequence[int] | None = None,
) -> NnunetDataset:
    """Write the stacks of cohort CSVs as nnU-Net raw dataset ``root/nnUNet_raw/DatasetXXX_Name``.

    Training (and validation) stacks go to ``imagesTr``/``labelsTr`` with their segmentation made a brain mask
    (0/1: ``brain_labels``, default every non-zero label), test stacks to ``imagesTs``. Every file is written on its
    stack's own grid and header. Validation stacks apart from the training ones become fold 0 of
    ``splits_final.json`` (written in the preprocessed dataset folder, which nnU-Net's planning keeps).

    Args:
        root: the folder for nnU-Net's three folders (see :func:`nnunet_environment`).
        train_csv: labelled stacks to train on.
        val_csv: labelled stacks to validate on: none of the training stacks, or training stacks only.
        test_csv: stacks to predict (their segmentations are not written).
        dataset_id: nnU-Net's dataset number, 1-999.
        dataset_name: the dataset's name (letters and digits).
        brain_labels: segmentation values that are brain.

    Raises:
        ValueError: for a bad id or name, validation stacks partly in the training set, stack ids that collide as
            case names, a test stack also used for training, or any problem of the cohorts' files (all listed).
        FileExistsError: if the dataset folder exists already.
    """
    if not 1 <= dataset_id <= 999:
        raise ValueError(f"nnU-Net dataset ids run from 1 to 999, got {dataset_id}.")
    if not re.fullmatch(r"[A-Za-z0-9]+", dataset_name):
        raise ValueError(f"dataset name must be letters and digits, got {dataset_name!r}.")
    train = _checked(train_csv, brain_labels)
    val = _checked(val_csv, brain_labels) if val_csv is not None else None
    test = _checked(test_csv, brain_labels, "predict") if test_csv is not None else None
    fold = _training_fold(train, val)
    if test is not None and set(test[ID_COLUMN]) & set(train[ID_COLUMN]):
        raise ValueError(f"test stacks of {test_csv} are also training stacks of {train_csv}.")
    dataset = NnunetDataset(Path(root), dataset_id, f"Dataset{dataset_id:03d}_{dataset_name}", fold, pd.DataFrame())
    if dataset.raw.exists():
        raise FileExistsError(f"{dataset.raw} exists already; use a new folder or another --dataset-id.")

    tables = {"train": train} | ({"val": val} if fold == "0" else {}) | ({"test": test} if test is not None else {})
    cases = _cases(tables)
    labelled = pd.concat([table for name, table in tables.items() if name != "test"]).set_index(ID_COLUMN)
    unlabelled = test.set_index(ID_COLUMN) if test is not None else None
    images = []
    for case, stack_id, set_name in cases.itertuples(index=False):
        source = unlabelled if set_name == "test" else labelled
        stack = read_stack(source.loc[stack_id, IMAGE_COLUMN])
        image = (
            dataset.raw / ("imagesTs" if set_name == "test" else "imagesTr") / f"{case}{CHANNEL_SUFFIX}{FILE_ENDING}"
        )
        write_like(stack.array, stack.geometry, _new(image))
        images.append(str(image))
        if set_name != "test":
            truth = read_stack(labelled.loc[stack_id, SEGMENTATION_COLUMN])
            mask = brain_mask_from_labels(truth.array, brain_labels)
            write_mask(mask, stack.geometry, _new(dataset.raw / "labelsTr" / f"{case}{FILE_ENDING}"))
    cases = cases.assign(image=images)
    trained = cases[cases["set"] != "test"]
    write_json(
        dataset.raw / "dataset.json",
        {
            "name": dataset_name,
            "description": "brain masks of fetal MR slice stacks, written by fetal_keras from cohort CSVs",
            "channel_names": {"0": "T2"},
            "labels": {"background": 0, "brain": 1},
            "numTraining": len(trained),
            "file_ending": FILE_ENDING,
        },
    )
    with atomic_output(dataset.raw / CASES_FILE) as temporary:
        cases.to_csv(temporary, index=False)
    if fold == "0":
        split = {set_name: list(trained.loc[trained["set"] == set_name, "case"]) for set_name in ("train", "val")}
        dataset.preprocessed.mkdir(parents=True, exist_ok=True)
        write_json(dataset.preprocessed / "splits_final.json", [split])
    return dataclasses.replace(dataset, cases=cases)


def _new(path: Path) -> Path:
    """``path`` with its folder made; refused if a file is there (two stacks must not share a case name)."""
    if path.exists():
        raise FileExistsError(f"{path} exists already.")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
