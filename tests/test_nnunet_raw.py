"""A cohort CSV as an nnU-Net raw dataset (benchmarks/bench_peer.py), checked without nnU-Net or torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from conftest import write_volume

from fetal_keras.data.nnunet_raw import NnunetDataset, case_name, nnunet_environment, write_nnunet_raw_dataset

BENCH_PEER = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_peer.py"
GEOMETRY = {"spacing": (0.8, 0.8, 3.5), "origin": (-20.0, 5.0, 7.5)}


def _subset(csv: Path, ids: list[str], name: str) -> Path:
    """The rows ``ids`` of a cohort CSV as a new CSV beside it (same relative paths)."""
    table = pd.read_csv(csv)
    path = csv.with_name(name)
    table[table["iFIND_id"].isin(ids)].to_csv(path, index=False)
    return path


@pytest.fixture
def cohort_csvs(write_cohort):
    """train (3 stacks), val (1 other), test (2 others) CSVs of one tiny cohort."""
    csv = write_cohort(6, **GEOMETRY)
    ids = [f"sub-{i:02d}" for i in range(6)]
    return _subset(csv, ids[:3], "train.csv"), _subset(csv, ids[3:4], "val.csv"), _subset(csv, ids[4:], "test.csv")


def test_raw_dataset_files_json_and_split(tmp_path, cohort_csvs):
    train, val, test = cohort_csvs
    dataset = write_nnunet_raw_dataset(tmp_path / "nn", train, val, test, dataset_id=7, dataset_name="Tiny")

    raw = tmp_path / "nn" / "nnUNet_raw" / "Dataset007_Tiny"
    assert dataset.raw == raw and dataset.name == "Dataset007_Tiny" and dataset.fold == "0"
    assert sorted(path.name for path in (raw / "imagesTr").iterdir()) == [f"sub-{i:02d}_0000.nii.gz" for i in range(4)]
    assert sorted(path.name for path in (raw / "labelsTr").iterdir()) == [f"sub-{i:02d}.nii.gz" for i in range(4)]
    assert sorted(path.name for path in (raw / "imagesTs").iterdir()) == ["sub-04_0000.nii.gz", "sub-05_0000.nii.gz"]
    description = json.loads((raw / "dataset.json").read_text())
    assert description["channel_names"] == {"0": "T2"}
    assert description["labels"] == {"background": 0, "brain": 1}
    assert description["numTraining"] == 4 and description["file_ending"] == ".nii.gz"
    split = json.loads((tmp_path / "nn" / "nnUNet_preprocessed" / "Dataset007_Tiny" / "splits_final.json").read_text())
    assert split == [{"train": ["sub-00", "sub-01", "sub-02"], "val": ["sub-03"]}]
    assert list(dataset.test_cases()["iFIND_id"]) == ["sub-04", "sub-05"]

    source = pd.read_csv(train)
    image = sitk.ReadImage(str(train.parent / source["image"][0]))
    copied = sitk.ReadImage(str(raw / "imagesTr" / "sub-00_0000.nii.gz"))
    label = sitk.ReadImage(str(raw / "labelsTr" / "sub-00.nii.gz"))
    assert np.array_equal(sitk.GetArrayFromImage(copied), sitk.GetArrayFromImage(image))
    for written in (copied, label):
        assert written.GetSpacing() == pytest.approx(image.GetSpacing())
        assert written.GetOrigin() == pytest.approx(image.GetOrigin())
        assert written.GetDirection() == pytest.approx(image.GetDirection())
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(train.parent / source["segmentation"][0])))
    assert set(np.unique(sitk.GetArrayFromImage(label))) == {0, 1}
    assert np.array_equal(sitk.GetArrayFromImage(label) == 1, truth > 0)  # every non-zero label is brain by default

    reloaded = NnunetDataset.load(raw)
    assert (reloaded.dataset_id, reloaded.name, reloaded.fold) == (7, "Dataset007_Tiny", "0")
    pd.testing.assert_frame_equal(reloaded.cases, dataset.cases)


def test_validation_on_training_stacks_trains_fold_all(tmp_path, cohort_csvs):
    train, _, test = cohort_csvs
    val = _subset(train, ["sub-01"], "val_in_train.csv")
    dataset = write_nnunet_raw_dataset(tmp_path / "nn", train, val, test)
    assert dataset.fold == "all" and dataset.name == "Dataset501_FetalBrain"
    assert not (dataset.preprocessed / "splits_final.json").exists()
    assert json.loads((dataset.raw / "dataset.json").read_text())["numTraining"] == 3
    assert NnunetDataset.load(dataset.raw).fold == "all"


def test_brain_labels_choose_the_mask(tmp_path, cohort_csvs):
    train, _, _ = cohort_csvs
    dataset = write_nnunet_raw_dataset(tmp_path / "nn", train, brain_labels=(9,))
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(dataset.raw / "labelsTr" / "sub-00.nii.gz")))
    assert label.sum() == 3  # the three voxels labelled 9 (synthetic_pair), not the brain (2)
    assert not (dataset.raw / "imagesTs").exists()


def test_refusals(tmp_path, cohort_csvs, write_cohort):
    train, val, test = cohort_csvs
    partly = pd.concat([pd.read_csv(train).head(1), pd.read_csv(val)])
    partly.to_csv(train.with_name("partly.csv"), index=False)
    with pytest.raises(ValueError, match="must all be training stacks .* or none"):
        write_nnunet_raw_dataset(tmp_path / "a", train, train.with_name("partly.csv"))
    with pytest.raises(ValueError, match="also training stacks"):
        write_nnunet_raw_dataset(tmp_path / "b", train, test_csv=train)
    with pytest.raises(ValueError, match="1 to 999"):
        write_nnunet_raw_dataset(tmp_path / "c", train, dataset_id=1000)
    with pytest.raises(ValueError, match="letters and digits"):
        write_nnunet_raw_dataset(tmp_path / "c", train, dataset_name="fetal_brain")
    write_nnunet_raw_dataset(tmp_path / "d", train)
    with pytest.raises(FileExistsError, match="exists already"):
        write_nnunet_raw_dataset(tmp_path / "d", train)

    clash = write_cohort(2, folder="clash", ids=["a b", "a-b"])
    with pytest.raises(ValueError, match="a b, a-b"):
        write_nnunet_raw_dataset(tmp_path / "e", clash)

    mismatched = write_cohort(2, folder="mismatched")
    segmentation = mismatched.parent / "segmentations" / "sub-01.nii.gz"
    write_volume(segmentation, np.zeros((5, 12, 10), np.uint8), spacing=(2.0, 2.0, 2.0))
    with pytest.raises(ValueError, match="sub-01.nii.gz.*grid differs"):
        write_nnunet_raw_dataset(tmp_path / "f", mismatched)
    assert not (tmp_path / "f" / "nnUNet_raw").exists()  # refused before anything is written

    corrupt = _subset(test, ["sub-04"], "corrupt_test.csv")
    (corrupt.parent / pd.read_csv(corrupt)["image"][0]).write_bytes(b"not a NIfTI file")
    with pytest.raises(ValueError, match="sub-04"):
        write_nnunet_raw_dataset(tmp_path / "g", train, test_csv=corrupt)
    assert not (tmp_path / "g" / "nnUNet_raw").exists()  # a bad test stack too, before anything is written


def test_case_names_and_environment(tmp_path):
    assert case_name("sub-01_run-2") == "sub-01_run-2"
    assert case_name("sub 01/run.2") == "sub-01-run-2"
    environment = nnunet_environment(tmp_path)
    assert environment == {name: str(tmp_path.resolve() / name) for name in environment}
    assert sorted(environment) == ["nnUNet_preprocessed", "nnUNet_raw", "nnUNet_results"]


@pytest.mark.slow
def test_bench_peer_says_how_to_install_nnunet(tmp_path, cohort_csvs):
    train, val, test = cohort_csvs
    command = [sys.executable, str(BENCH_PEER), "--train-csv", str(train), "--val-csv", str(val)]
    command += ["--test-csv", str(test), "--minutes", "1", "--out", str(tmp_path / "out")]
    command += ["--systems", "nnunet_2d", "--nnunet-python", sys.executable + "-missing"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode != 0
    assert "pip install -e '.[peers]'" in done.stderr
    assert not (tmp_path / "out").exists()
