import numpy as np
import pytest
from conftest import OBLIQUE, synthetic_pair, write_volume

from fetal_keras.data.cohort import read_cohort
from fetal_keras.data.preprocess import (
    PreprocessConfig,
    foreground_zscore,
    label_maps_as_images,
    load_stacks,
    pad_to,
    prepare_stack,
    whiten,
)


def test_whitening_is_whole_volume_zero_mean_unit_std():
    image = np.random.default_rng(0).gamma(2.0, 100.0, size=(4, 20, 20))
    white = whiten(image)
    assert white.dtype == np.float32
    assert abs(white.mean()) < 1e-5 and white.std() == pytest.approx(1.0, abs=1e-4)
    clipped = whiten(np.concatenate([image.ravel(), [1e9]]), clip_percentiles=(0.5, 99.5))
    assert clipped.max() < 10


def test_small_stacks_are_padded_with_background_not_rejected(tmp_path):
    image, labels = synthetic_pair(shape=(2, 50, 60))
    write_volume(tmp_path / "i.nii.gz", image)
    write_volume(tmp_path / "s.nii.gz", labels)
    stack = prepare_stack("small", tmp_path / "i.nii.gz", tmp_path / "s.nii.gz", PreprocessConfig())
    assert stack.image.shape == stack.labels.shape == (3, 128, 128)
    assert stack.image.dtype == np.float16 and stack.labels.dtype == np.uint8
    assert stack.unpadded_image.shape == (2, 50, 60)
    assert stack.labels.sum() == (labels > 0).sum()
    assert stack.image.min() == stack.unpadded_image.min(), "padding takes the darkest (background) value"


def test_pad_to_keeps_the_original_region():
    padded, region = pad_to(np.ones((1, 4, 200)), (3, 8, 8), 0.0)
    assert padded.shape == (3, 8, 200) and padded[region].sum() == 800 and padded.sum() == 800


def test_in_plane_resampling_keeps_slices_and_field_of_view(tmp_path):
    image, labels = synthetic_pair(shape=(5, 40, 30))
    write_volume(tmp_path / "i.nii.gz", image, spacing=(0.5, 0.5, 4.0), direction=OBLIQUE)
    write_volume(tmp_path / "s.nii.gz", labels, spacing=(0.5, 0.5, 4.0), direction=OBLIQUE)
    config = PreprocessConfig(target_spacing_mm=1.0, min_shape=(1, 1, 1))
    stack = prepare_stack("r", tmp_path / "i.nii.gz", tmp_path / "s.nii.gz", config)
    assert stack.image.shape == (5, 20, 15)
    assert stack.geometry.spacing_mm == (1.0, 1.0, 4.0)
    assert stack.source_geometry.spacing_mm == (0.5, 0.5, 4.0)
    first_edge = np.array(stack.geometry.origin_mm) - np.array(OBLIQUE).reshape(3, 3) @ [0.5, 0.5, 0]
    source_edge = np.array(stack.source_geometry.origin_mm) - np.array(OBLIQUE).reshape(3, 3) @ [0.25, 0.25, 0]
    np.testing.assert_allclose(first_edge, source_edge, atol=1e-5)
    assert set(np.unique(stack.labels)) == {0, 1}


def test_brain_labels_choose_the_foreground(tmp_path):
    image, labels = synthetic_pair()
    write_volume(tmp_path / "i.nii.gz", image)
    write_volume(tmp_path / "s.nii.gz", labels)
    everything = prepare_stack("a", tmp_path / "i.nii.gz", tmp_path / "s.nii.gz", PreprocessConfig())
    brain_only = prepare_stack("a", tmp_path / "i.nii.gz", tmp_path / "s.nii.gz", PreprocessConfig(brain_labels=(2,)))
    assert everything.labels.sum() == brain_only.labels.sum() + 3


def test_bad_rows_raise_naming_line_and_file(tmp_path, write_cohort):
    csv = write_cohort(2)
    write_volume(csv.parent / "segmentations" / "sub-01.nii.gz", synthetic_pair()[1], origin=(0, 0, 9.0))
    with pytest.raises(
        ValueError, match=r"line 3 \(iFIND_id 'sub-01'\).*sub-01.nii.gz does not match the grid.*origin"
    ):
        load_stacks(csv, PreprocessConfig(), progress=False)
    write_volume(csv.parent / "images" / "sub-00.nii.gz", np.zeros((5, 12, 10), np.int16))
    with pytest.raises(ValueError, match="line 2.*same intensity"):
        load_stacks(csv, PreprocessConfig(), progress=False)


def test_training_on_label_maps_needs_a_labels_column_with_every_row(write_cohort):
    csv = write_cohort(2)
    table = read_cohort(csv, require_segmentation=True)
    with pytest.raises(ValueError, match="no 'labels' column"):
        label_maps_as_images(table, csv)
    with_labels = table.assign(labels=[table["segmentation"].iloc[0], ""])
    with pytest.raises(ValueError, match=r"no tissue label map on line 3 \(sub-01\)"):
        label_maps_as_images(with_labels, csv)
    complete = table.assign(labels=table["segmentation"])
    assert list(label_maps_as_images(complete, csv)["image"]) == list(table["segmentation"])


def test_foreground_normalisation_does_not_depend_on_how_much_air_surrounds_the_mother():
    rng = np.random.default_rng(0)
    body = rng.normal(400.0, 60.0, size=(4, 40, 40)).clip(50)
    wide = np.zeros((4, 120, 120))  # the same body in a field of view that is mostly air
    wide[:, 40:80, 40:80] = body
    narrow = foreground_zscore(body)
    in_wide = foreground_zscore(wide)[:, 40:80, 40:80]
    np.testing.assert_allclose(in_wide, narrow, atol=1e-4)
    assert abs(whiten(wide)[:, 40:80, 40:80].mean() - whiten(body).mean()) > 1.0  # the whole-stack z-score moves
    assert foreground_zscore(wide).min() >= -5.0 and np.isfinite(foreground_zscore(np.zeros((2, 4, 4)))).all()


def test_unknown_normalisation_is_refused():
    with pytest.raises(ValueError, match="normalisation must be one of"):
        PreprocessConfig(normalisation="minmax")
