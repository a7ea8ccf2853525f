import shutil

import pytest

from fetal_keras.data.cohort import load_table, read_cohort


def test_relative_paths_resolve_against_the_csv_folder_after_a_move(tmp_path, write_cohort):
    csv = write_cohort(2)
    moved = shutil.move(csv.parent, tmp_path / "elsewhere" / "cohort")
    table = read_cohort(f"{moved}/cohort.csv", require_segmentation=True)
    assert table["image"].tolist() == [f"{moved}/images/sub-00.nii.gz", f"{moved}/images/sub-01.nii.gz"]
    assert table["segmentation"].str.startswith(f"{moved}/segmentations/").all()


def test_index_is_the_csv_line_number_even_with_blank_lines(tmp_path, write_cohort):
    csv = write_cohort(2)
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0], "", lines[1], lines[2]]) + "\n")
    assert load_table(csv).index.tolist() == [3, 4]


def test_empty_segmentation_is_allowed_for_unlabelled_stacks(tmp_path, write_cohort):
    csv = write_cohort(1)
    csv.write_text("iFIND_id,image,segmentation\nsub-00,images/sub-00.nii.gz,\n")
    assert read_cohort(csv)["segmentation"].tolist() == [""]
    with pytest.raises(ValueError, match="line 2.*no segmentation given"):
        read_cohort(csv, require_segmentation=True)


def test_segmentation_column_is_optional_for_prediction_only(tmp_path, write_cohort):
    csv = write_cohort(1)
    csv.write_text("iFIND_id,image\nsub-00,images/sub-00.nii.gz\n")
    assert read_cohort(csv)["segmentation"].tolist() == [""]
    with pytest.raises(ValueError, match="lacks column.*'segmentation'"):
        read_cohort(csv, require_segmentation=True)


def test_byte_order_mark_and_spaces_are_tolerated(tmp_path, write_cohort):
    csv = write_cohort(1)
    csv.write_text("\ufeffiFIND_id, image ,segmentation\n sub-00 , images/sub-00.nii.gz ,segmentations/sub-00.nii.gz\n")
    assert read_cohort(csv, require_segmentation=True)["iFIND_id"].tolist() == ["sub-00"]


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        ("", ValueError, "is empty"),
        ("iFIND_id,image,segmentation\n", ValueError, "no rows"),
        (
            "id,image,segmentation\nsub-00,images/sub-00.nii.gz,\n",
            ValueError,
            "lacks column.*'iFIND_id'.*found columns 'id'",
        ),
        (
            "iFIND_id,image,segmentation\nsub-00,images/sub-00.nii.gz,\nsub-00,images/sub-01.nii.gz,\n",
            ValueError,
            r"line 2 \(iFIND_id 'sub-00'\).*duplicate iFIND_id, also on line\(s\) \[3\]",
        ),
        (
            "iFIND_id,image,segmentation\nsub-00,images/missing.nii.gz,\n",
            ValueError,
            "line 2.*missing.nii.gz.*does not exist",
        ),
        ("iFIND_id,image,segmentation\n,images/sub-00.nii.gz,\n", ValueError, "line 2.*empty iFIND_id"),
        ("iFIND_id,image,segmentation\nsub-00,,\n", ValueError, "line 2.*empty image path"),
    ],
    ids=["empty", "header-only", "wrong-column", "duplicate-ids", "missing-file", "empty-id", "empty-image"],
)
def test_bad_cohort_csv_raises_naming_the_problem(tmp_path, write_cohort, content, error, message):
    csv = write_cohort(2)
    csv.write_text(content)
    with pytest.raises(error, match=message):
        read_cohort(csv)


def test_missing_csv_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_cohort(tmp_path / "nope.csv")


def test_every_problem_is_listed_at_once(tmp_path, write_cohort):
    csv = write_cohort(3)
    csv.write_text(
        "iFIND_id,image,segmentation\na,images/missing.nii.gz,\na,images/sub-01.nii.gz,segmentations/missing.nii.gz\n"
    )
    with pytest.raises(ValueError) as raised:
        read_cohort(csv)
    assert "4 problem(s)" in str(raised.value)
