"""Small-cohort fine-tuning helpers: training stacks chosen by slice orientation, splits by stack, role configs."""

import numpy as np
import pandas as pd
import pytest
from conftest import synthetic_pair, write_volume

from fetal_keras.data.cohort import read_cohort
from fetal_keras.training.small_cohort import (
    one_stack_per_orientation,
    role_config,
    slice_orientation,
    stacks_by_orientation,
    write_fine_tuning_split,
)

# Direction matrices (row-major, columns = voxel axes) whose slice normal (third column) is x, y or z.
SAGITTAL = (0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0)
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def _cohort(tmp_path, directions) -> pd.DataFrame:
    rows = ["iFIND_id,image,segmentation"]
    for index, direction in enumerate(directions):
        image, labels = synthetic_pair(seed=index)
        write_volume(tmp_path / f"i{index}.nii.gz", image, direction=direction)
        write_volume(tmp_path / f"s{index}.nii.gz", labels, direction=direction)
        rows.append(f"run-{index},i{index}.nii.gz,s{index}.nii.gz")
    (tmp_path / "cohort.csv").write_text("\n".join(rows) + "\n")
    return read_cohort(tmp_path / "cohort.csv", require_segmentation=True)


def test_orientation_is_the_scanner_axis_nearest_the_slice_normal(tmp_path):
    cohort = _cohort(tmp_path, (AXIAL, SAGITTAL, CORONAL))
    assert [slice_orientation(path) for path in cohort["image"]] == ["axial", "sagittal", "coronal"]


def test_three_training_stacks_take_one_of_each_orientation_first(tmp_path):
    cohort = _cohort(tmp_path, (AXIAL, AXIAL, CORONAL, CORONAL, SAGITTAL, SAGITTAL))
    assert one_stack_per_orientation(cohort) == ["run-0", "run-2", "run-4"]
    only_axial = _cohort(tmp_path / "axial", (AXIAL,) * 4)
    assert one_stack_per_orientation(only_axial) == ["run-0", "run-1", "run-2"]
    with pytest.raises(ValueError, match="at least 4"):
        one_stack_per_orientation(only_axial.iloc[:3])


def test_stacks_are_grouped_by_orientation_in_cohort_order(tmp_path):
    cohort = _cohort(tmp_path, (AXIAL, CORONAL, AXIAL, SAGITTAL))
    assert stacks_by_orientation(cohort) == {"axial": ["run-0", "run-2"], "coronal": ["run-1"], "sagittal": ["run-3"]}


def test_the_split_is_by_stack_and_leaves_stacks_to_test_on(tmp_path):
    cohort = _cohort(tmp_path, (AXIAL, CORONAL, SAGITTAL))
    split = write_fine_tuning_split(cohort, ["run-1"], tmp_path / "split")
    assert list(read_cohort(split.train_csv)["iFIND_id"]) == ["run-1"]
    assert list(read_cohort(split.test_csv)["iFIND_id"]) == ["run-0", "run-2"]
    assert np.all([path.startswith(str(tmp_path)) for path in read_cohort(split.test_csv)["image"]])
    with pytest.raises(ValueError, match="not in the cohort"):
        write_fine_tuning_split(cohort, ["run-9"], tmp_path / "bad")
    with pytest.raises(ValueError, match="none is left to test on"):
        write_fine_tuning_split(cohort, ["run-0", "run-1", "run-2"], tmp_path / "bad")


def test_scratch_and_pretrained_differ_only_in_their_starting_weights(tmp_path):
    pretrained = role_config("train.csv", "test.csv", tmp_path / "a", "segmenter", "pretrained", 3.0)
    scratch = role_config("train.csv", "test.csv", tmp_path / "a", "segmenter", "scratch", 3.0)
    assert pretrained.init_from == "pretrained" and scratch.init_from is None
    assert pretrained.max_minutes == 3.0 and pretrained.normalisation == "foreground"
    assert {**vars(pretrained), "init_from": None} == vars(scratch)
