"""Tiny synthetic NIfTI stacks, cohorts and BIDS datasets written in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real_unlabelled"

OBLIQUE = (1.0, 0.0, 0.0, 0.0, 0.9191353496172178, -0.3939418793750879, 0.0, 0.3939418854146319, 0.9191353522057694)


def write_volume(
    path: Path,
    array_zyx: np.ndarray,
    spacing=(1.0, 1.0, 3.0),
    origin=(0.0, 0.0, 0.0),
    direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
) -> Path:
    """Write ``array_zyx`` as an image file with the given geometry (x, y, z order)."""
    image = sitk.GetImageFromArray(array_zyx)
    if array_zyx.ndim == 3:  # 2D/4D files (for error tests) keep SimpleITK's default geometry
        image.SetSpacing(spacing)
        image.SetOrigin(origin)
        image.SetDirection(direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def synthetic_pair(shape=(5, 12, 10), seed=0) -> tuple[np.ndarray, np.ndarray]:
    """An int16 image with a bright ellipsoid and its uint8 label map (value 2 = brain, 9 = elsewhere)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    centre = np.array(shape) / 2
    inside = ((z - centre[0]) / (shape[0] / 3)) ** 2 + ((y - centre[1]) / (shape[1] / 4)) ** 2 + (
        (x - centre[2]) / (shape[2] / 4)
    ) ** 2 < 1
    image = (rng.normal(100, 10, shape) + 200 * inside).astype(np.int16)
    labels = np.where(inside, 2, 0).astype(np.uint8)
    labels[0, 0, :3] = 9
    return image, labels


class ThresholdPredictor:
    """Brain probability = sigmoid(4 x intensity) for every voxel: equivariant to flips, stride 8."""

    stride = 8

    def __call__(self, slabs, training=False):
        brain = 1.0 / (1.0 + np.exp(-4.0 * np.asarray(slabs)))
        return np.concatenate([1.0 - brain, brain], axis=-1)


@pytest.fixture
def write_cohort(tmp_path):
    """Factory: write ``n`` labelled stacks and a cohort CSV with relative paths; return the CSV path."""

    def make(n: int = 4, folder: str = "cohort", ids: list[str] | None = None, **geometry) -> Path:
        root = tmp_path / folder
        ids = ids or [f"sub-{i:02d}" for i in range(n)]
        lines = ["iFIND_id,image,segmentation"]
        for i, stack_id in enumerate(ids):
            image, labels = synthetic_pair(seed=i)
            write_volume(root / "images" / f"{stack_id}.nii.gz", image, **geometry)
            write_volume(root / "segmentations" / f"{stack_id}.nii.gz", labels, **geometry)
            lines.append(f"{stack_id},images/{stack_id}.nii.gz,segmentations/{stack_id}.nii.gz")
        csv = root / "cohort.csv"
        csv.write_text("\n".join(lines) + "\n")
        return csv

    return make


def tiny_train_config(train_csv: str, val_csv: str, run_dir, **changes):
    """A TrainConfig for a network and a run small enough for CPU tests (seconds per epoch)."""
    from fetal_keras.models.train_config import TrainConfig

    settings = dict(
        base_filters=2,
        epochs=2,
        steps_per_epoch=2,
        batch_size=2,
        slabs_per_stack=2,
        validation_slabs_per_stack=1,
        augmentation="none",
        seed=1,
    )
    return TrainConfig(train_csv, val_csv, str(run_dir), **(settings | changes))


def tiny_model_folder(folder: Path, task: str, **settings) -> Path:
    """A run folder holding an untrained tiny network as its ``checkpoints/best.keras`` and its ``config.json``
    (``task`` "localiser" or "segmenter", other TrainConfig settings changed); returns the checkpoint's path."""
    from fetal_keras.models.networks import build_model
    from fetal_keras.models.train_config import TrainConfig

    folder.mkdir(parents=True)
    TrainConfig("t.csv", "v.csv", str(folder), task=task, **settings).save(folder / "config.json")
    (folder / "checkpoints").mkdir()
    build_model("unet", base_filters=2).save(folder / "checkpoints" / "best.keras")
    return folder / "checkpoints" / "best.keras"


@pytest.fixture
def train_val_csvs(write_cohort):
    """A 5-stack cohort split into train.csv (3 stacks) and val.csv (2 stacks); returns both paths as strings."""
    csv_path = write_cohort(5)
    rows = csv_path.read_text().splitlines()
    (csv_path.parent / "train.csv").write_text("\n".join(rows[:4]) + "\n")
    (csv_path.parent / "val.csv").write_text("\n".join([rows[0]] + rows[4:]) + "\n")
    return str(csv_path.parent / "train.csv"), str(csv_path.parent / "val.csv")


BIDS_STACKS = (  # (folder, name): several subjects, sessions and runs, an acquisition entity
    ("sub-01/ses-1/anat", "sub-01_ses-1_run-1_T2w"),
    ("sub-01/ses-1/anat", "sub-01_ses-1_run-2_T2w"),
    ("sub-01/ses-2/anat", "sub-01_ses-2_run-1_T2w"),
    ("sub-02/anat", "sub-02_acq-haste_run-1_T2w"),
    ("sub-02/anat", "sub-02_acq-haste_run-2_T2w"),
    ("sub-03/anat", "sub-03_T2w"),
)
# Masks of all stacks but sub-02's run 2, in both layouts in use: BIDS' and MIALSRTK's (suffix kept).
BIDS_MASKS = (
    ("sub-01/ses-1/anat", "sub-01_ses-1_run-1_desc-brain_mask"),
    ("sub-01/ses-1/anat", "sub-01_ses-1_run-2_T2w_desc-brain_mask"),
    ("sub-01/ses-2/anat", "sub-01_ses-2_run-1_desc-brain_mask"),
    ("sub-02/anat", "sub-02_acq-haste_run-1_T2w_desc-brain_mask"),
    ("sub-03/anat", "sub-03_desc-brain_mask"),
)


def _bids_description(folder: Path, derivative: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    content = {"Name": folder.name, "BIDSVersion": "1.10.0"}
    if derivative:
        content |= {"DatasetType": "derivative", "GeneratedBy": [{"Name": "manual"}]}
    (folder / "dataset_description.json").write_text(json.dumps(content))


@pytest.fixture
def bids_dataset(tmp_path) -> Path:
    """A small BIDS dataset with a derivatives folder of manual masks and a few stray files."""
    root = tmp_path / "dataset"
    _bids_description(root)
    (root / "participants.tsv").write_text("participant_id\nsub-01\nsub-02\nsub-03\n")
    for index, (folder, name) in enumerate(BIDS_STACKS):
        image, labels = synthetic_pair(seed=index)
        write_volume(root / folder / f"{name}.nii.gz", image)
        (root / folder / f"{name}.json").write_text("{}")
    for folder, name in BIDS_MASKS:
        stack = next(
            stack
            for stack_folder, stack in BIDS_STACKS
            if stack_folder == folder and name.startswith(stack.removesuffix("_T2w"))
        )
        _, labels = synthetic_pair(seed=BIDS_STACKS.index((folder, stack)))
        write_volume(root / "derivatives" / "manual_masks" / folder / f"{name}.nii.gz", (labels == 2).astype(np.uint8))
    _bids_description(root / "derivatives" / "manual_masks", derivative=True)
    (root / "sub-01" / "ses-1" / "anat" / "notes.txt").write_text("scanned twice")
    (root / "sub-02" / "anat" / "sub-02_run-1_T1w.nii.gz").write_bytes(b"not read: another suffix")
    return root
