import gzip
import re

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import OBLIQUE, synthetic_pair, write_volume

from fetal_keras.data.check import CheckOptions, check_cohort
from fetal_keras.data.problems import Severity


def _defective_cohort(root):
    """A cohort CSV whose every row but the first has one defect; returns (csv, {line: expected message})."""
    image, labels = synthetic_pair()
    good_labels = write_volume(root / "good_seg.nii.gz", labels)
    copies = iter(range(100))

    def good_image():
        """A fresh copy of the good image: rows sharing one image file would add 'same image' warnings."""
        return write_volume(root / f"good_{next(copies)}.nii.gz", image)

    truncated = root / "truncated.nii.gz"
    truncated.write_bytes(good_image().read_bytes()[:150])
    (root / "text.nii.gz").write_bytes(gzip.compress(b"iFIND_id,image\n"))
    nan_image = image.astype(np.float32)
    nan_image[2, 3, 4] = np.nan
    nan_image[1, 1, 1] = np.inf
    with_seven = labels.copy()
    with_seven[3, 5, 5] = 7
    rows = [
        ("good", good_image(), good_labels, None),
        ("missing", root / "missing.nii.gz", good_labels, "does not exist"),
        ("truncated", truncated, good_labels, "truncated"),
        ("not-nifti", root / "text.nii.gz", good_labels, "cannot be read as an image"),
        ("flat-2d", write_volume(root / "2d.nii.gz", image[0]), "", "2D image"),
        ("four-d", root / "4d.nii.gz", "", "4D image"),
        ("size", good_image(), write_volume(root / "small_seg.nii.gz", labels[:, :, :9]), "size"),
        ("origin", good_image(), write_volume(root / "moved_seg.nii.gz", labels, origin=(0, 0, 5.0)), "origin"),
        ("direction", good_image(), write_volume(root / "rot_seg.nii.gz", labels, direction=OBLIQUE), "direction"),
        ("nan", write_volume(root / "nan.nii.gz", nan_image), good_labels, "1 NaN and 1 infinite"),
        ("zeros", write_volume(root / "zeros.nii.gz", np.zeros_like(image)), good_labels, "same intensity 0"),
        ("label-7", good_image(), write_volume(root / "seven_seg.nii.gz", with_seven), r"label values \[7\]"),
        ("fractional", good_image(), write_volume(root / "frac_seg.nii.gz", labels * 0.5), "non-integer"),
        ("empty-mask", good_image(), write_volume(root / "empty_seg.nii.gz", labels * 0), "empty brain mask"),
        ("good", good_image(), good_labels, "duplicate iFIND_id"),
        (
            "two-slices",
            write_volume(root / "two.nii.gz", image[:2]),
            write_volume(root / "two_seg.nii.gz", labels[:2]),
            "only 2 slice",
        ),
        (
            "thin-slices",
            write_volume(root / "iso.nii.gz", image, spacing=(1.0, 1.0, 0.5)),
            write_volume(root / "iso_seg.nii.gz", labels, spacing=(1.0, 1.0, 0.5)),
            "not the thickest",
        ),
    ]
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 3, 4, 5)), isVector=False), str(root / "4d.nii.gz"))
    csv = root / "defects.csv"
    csv.write_text("iFIND_id,image,segmentation\n" + "".join(f"{i},{im},{seg}\n" for i, im, seg, _ in rows))
    expected = {line: message for line, (*_, message) in enumerate(rows, start=2) if message}
    expected[2] = "duplicate iFIND_id"
    return csv, expected


def test_check_lists_every_defect_by_line_and_file(tmp_path):
    csv, expected = _defective_cohort(tmp_path)
    options = CheckOptions(purpose="train", allowed_labels=(0, 2, 9))

    problems = check_cohort(csv, options, progress=False)

    by_line = {}
    for problem in problems:
        by_line.setdefault(problem.line, []).append(problem)
    assert set(by_line) == set(expected), [p.describe() for p in problems]
    for line, message in expected.items():
        assert any(re.search(message, p.message) for p in by_line[line]), (line, [p.describe() for p in by_line[line]])
    assert all(p.file for p in problems if "iFIND_id" not in p.message and "segmentation given" not in p.message)
    warnings = {p.line for p in problems if p.severity is Severity.WARNING}
    assert warnings == {15, 17, 18}
    assert {p.line for p in problems if p.severity is Severity.ERROR} == set(expected) - {15, 17, 18}
    assert by_line[18][0].describe().startswith(f"{csv} line 18 (iFIND_id 'thin-slices'), file ")


def test_rows_without_segmentation_are_errors_for_training_only(tmp_path):
    image, _ = synthetic_pair()
    path = write_volume(tmp_path / "s.nii.gz", image)
    csv = tmp_path / "c.csv"
    csv.write_text(f"iFIND_id,image,segmentation\na,{path},\n")
    assert [p.message for p in check_cohort(csv, progress=False)] == [
        "no segmentation given (needed for training and evaluation)"
    ]
    assert check_cohort(csv, CheckOptions(purpose="predict"), progress=False) == []


def test_empty_mask_is_fine_for_prediction(tmp_path, write_cohort):
    csv = write_cohort(1)
    empty = write_volume(tmp_path / "empty.nii.gz", synthetic_pair()[1] * 0)
    csv.write_text(f"iFIND_id,image,segmentation\na,images/sub-00.nii.gz,{empty}\n")
    assert len(check_cohort(csv, CheckOptions(purpose="train"), progress=False)) == 1
    assert check_cohort(csv, CheckOptions(purpose="predict"), progress=False) == []


def test_clean_cohort_has_no_problems(write_cohort):
    csv = write_cohort(3, direction=OBLIQUE)
    assert check_cohort(csv, CheckOptions(brain_labels=(2,), allowed_labels=(0, 2, 9)), progress=False) == []


def test_brain_labels_choose_what_an_empty_mask_means(write_cohort):
    csv = write_cohort(1)
    assert check_cohort(csv, CheckOptions(brain_labels=(2,)), progress=False) == []
    (problem,) = check_cohort(csv, CheckOptions(brain_labels=(5,)), progress=False)
    assert "no voxel with labels [5]" in problem.message


def test_same_image_on_two_rows_is_a_warning(write_cohort):
    csv = write_cohort(1)
    csv.write_text(csv.read_text() + "sub-99,images/sub-00.nii.gz,segmentations/sub-00.nii.gz\n")
    (problem,) = check_cohort(csv, progress=False)
    assert (problem.line, problem.severity, problem.message) == (3, Severity.WARNING, "same image file as line 2")


def test_unreadable_csv_is_one_problem(tmp_path):
    (problem,) = check_cohort(tmp_path / "absent.csv", progress=False)
    assert problem.line is None and "does not exist" in problem.message


def test_invalid_purpose_is_rejected():
    with pytest.raises(ValueError, match="purpose"):
        CheckOptions(purpose="fit")
