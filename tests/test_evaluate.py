"""Metrics on hand-checkable shapes, empty cases, and the evaluate command."""

import json
import math

import numpy as np
import pytest

from fetal_keras.cli.main import main
from fetal_keras.data.io import read_stack, write_mask
from fetal_keras.evaluation.evaluate import mask_metrics
from fetal_keras.files import output_paths

SPACING = (2.0, 1.0, 3.0)  # x, y, z in mm: anisotropic on purpose


def _cube(shift=(0, 0, 0), shape=(12, 12, 12)):
    mask = np.zeros(shape, np.uint8)
    z, y, x = (2 + s for s in shift)
    mask[z : z + 5, y : y + 5, x : x + 5] = 1
    return mask


def test_identical_masks_are_perfect():
    metrics = mask_metrics(_cube(), _cube(), SPACING)
    assert metrics["dice"] == metrics["jaccard"] == metrics["sensitivity"] == metrics["precision"] == 1.0
    assert metrics["hd95_mm"] == metrics["assd_mm"] == 0.0
    assert metrics["true_volume_ml"] == pytest.approx(125 * 6.0 / 1000)


@pytest.mark.parametrize(("axis", "step_mm"), [(0, 3.0), (1, 1.0), (2, 2.0)])
def test_cubes_offset_by_one_voxel(axis, step_mm):
    shift = [0, 0, 0]
    shift[axis] = 1
    metrics = mask_metrics(_cube(tuple(shift)), _cube(), SPACING)
    assert metrics["dice"] == pytest.approx(2 * 100 / 250)
    assert metrics["jaccard"] == pytest.approx(100 / 150)
    assert metrics["sensitivity"] == metrics["precision"] == pytest.approx(0.8)
    assert metrics["hd95_mm"] == pytest.approx(step_mm), "the shifted faces are one voxel, i.e. one spacing, apart"
    assert 0 < metrics["assd_mm"] < step_mm


def test_empty_cases_are_explicit():
    empty = np.zeros((12, 12, 12), np.uint8)
    both = mask_metrics(empty, empty, SPACING)
    assert both["dice"] == 1.0 and both["hd95_mm"] == 0.0 and math.isnan(both["sensitivity"])
    missed = mask_metrics(empty, _cube(), SPACING)
    assert missed["dice"] == 0.0 and missed["sensitivity"] == 0.0 and math.isnan(missed["hd95_mm"])
    assert math.isnan(missed["precision"]) and missed["predicted_volume_ml"] == 0.0
    spurious = mask_metrics(_cube(), empty, SPACING)
    assert spurious["dice"] == 0.0 and math.isnan(spurious["sensitivity"]) and spurious["precision"] == 0.0


def test_evaluate_command_writes_metrics_and_summary_and_reports_failures(tmp_path, write_cohort, capsys):
    csv = write_cohort(3)
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    for index in range(2):
        truth = read_stack(csv.parent / "segmentations" / f"sub-{index:02d}.nii.gz")
        write_mask(truth.array > 0, truth.geometry, output_paths(predictions, f"sub-{index:02d}")["mask"])

    code = main(
        ["evaluate", "--csv", str(csv), "--pred-dir", str(predictions), "--out", str(tmp_path / "m.csv"), "--quiet"]
    )

    assert code == 1, "one stack has no prediction"
    summary = json.loads((tmp_path / "m_summary.json").read_text())
    assert (summary["evaluated"], summary["failed"], summary["dice"]["mean"]) == (2, 1, 1.0)
    out = capsys.readouterr().out
    assert "Dice 1.000 +/- 0.000" in out and "not evaluated: sub-02" in out
    assert "sub-02_mask.nii.gz does not exist" in (tmp_path / "m.csv").read_text()
