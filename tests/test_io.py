import dataclasses
import gzip

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import OBLIQUE, synthetic_pair, write_volume

from fetal_keras.data.io import StackReadError, read_geometry, read_stack, write_like, write_mask

PERMUTED = (0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0)
IMPROPER = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0)


def _random_rotation(seed: int) -> tuple[float, ...]:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return tuple((q * np.sign(np.diag(r))).ravel())


@pytest.mark.parametrize("direction", [OBLIQUE, PERMUTED, IMPROPER, _random_rotation(1), _random_rotation(2)])
@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_mask_round_trip_keeps_geometry_bit_for_bit(tmp_path, direction, suffix):
    image, labels = synthetic_pair()
    path = write_volume(tmp_path / f"stack{suffix}", image, (0.781, 0.781, 4.4), (-12.3, 45.6, 7.89), direction)
    stack = read_stack(path)

    write_mask(labels > 0, stack.geometry, tmp_path / f"mask{suffix}")
    mask = read_stack(tmp_path / f"mask{suffix}")

    assert mask.geometry.size == stack.geometry.size
    assert mask.geometry.spacing_mm == stack.geometry.spacing_mm
    assert mask.geometry.origin_mm == stack.geometry.origin_mm
    assert mask.geometry.direction == stack.geometry.direction
    assert mask.array.dtype == np.uint8
    np.testing.assert_array_equal(mask.array, labels > 0)


def test_mask_keeps_qform_and_sform_codes(tmp_path):
    image, labels = synthetic_pair()
    path = write_volume(tmp_path / "stack.nii.gz", image, direction=OBLIQUE)
    header = bytearray(gzip.decompress(path.read_bytes()))
    header[252:254] = np.int16(2).tobytes()  # qform_code ALIGNED_ANAT, as some scanners write
    path.write_bytes(gzip.compress(bytes(header)))
    stack = read_stack(path)

    write_mask(labels > 0, stack.geometry, tmp_path / "mask.nii.gz")
    mask = read_stack(tmp_path / "mask.nii.gz")

    assert stack.geometry.metadata["qform_code_name"] == "NIFTI_XFORM_ALIGNED_ANAT"
    assert mask.geometry.metadata["qform_code_name"] == "NIFTI_XFORM_ALIGNED_ANAT"
    assert mask.geometry.metadata["sform_code_name"] == stack.geometry.metadata["sform_code_name"]


def test_a_changed_geometry_is_written_not_the_stale_header(tmp_path):
    image, labels = synthetic_pair()
    stack = read_stack(write_volume(tmp_path / "stack.nii.gz", image, direction=OBLIQUE))
    resampled = dataclasses.replace(stack.geometry, spacing_mm=(2.0, 2.0, 6.0))

    write_mask(labels > 0, resampled, tmp_path / "mask.nii.gz")

    assert read_stack(tmp_path / "mask.nii.gz").geometry.spacing_mm == (2.0, 2.0, 6.0)


def test_array_is_z_y_x_with_slices_first(tmp_path):
    image, _ = synthetic_pair(shape=(7, 12, 10))
    stack = read_stack(write_volume(tmp_path / "s.nii.gz", image))
    assert stack.array.shape == (7, 12, 10) == stack.geometry.shape_zyx
    assert stack.geometry.size == (10, 12, 7)
    assert stack.geometry.slice_thickness_mm == 3.0
    assert stack.array.dtype == np.int16


def test_read_geometry_matches_read_stack(tmp_path):
    image, _ = synthetic_pair()
    path = write_volume(tmp_path / "s.nii.gz", image, direction=OBLIQUE)
    assert read_geometry(path) == read_stack(path).geometry


def test_non_nifti_output_keeps_geometry(tmp_path):
    image, labels = synthetic_pair()
    stack = read_stack(write_volume(tmp_path / "s.mha", image, direction=OBLIQUE))
    write_like(labels, stack.geometry, tmp_path / "labels.mha")
    assert read_geometry(tmp_path / "labels.mha") == stack.geometry


def test_four_d_file_with_one_volume_is_a_stack(tmp_path):
    image = sitk.JoinSeries([sitk.GetImageFromArray(synthetic_pair()[0])])
    image = sitk.JoinSeries([image])
    sitk.WriteImage(image, str(tmp_path / "one_volume.nii.gz"))
    assert read_stack(tmp_path / "one_volume.nii.gz").array.shape == (5, 12, 10)


@pytest.mark.parametrize(
    ("make_file", "message"),
    [
        (lambda p: p.write_bytes(b"this is not an image"), "cannot be read"),
        (lambda p: p.write_bytes(gzip.compress(b"\x00" * 400)), "cannot be read"),
        (lambda p: write_volume(p, np.zeros((4, 5), np.int16)), "2D image"),
        (lambda p: sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 3, 4, 5)), isVector=False), str(p)), "4D image"),
        (lambda p: sitk.WriteImage(sitk.Image([4, 4, 4], sitk.sitkVectorFloat32, 3), str(p)), "3 components"),
    ],
    ids=["not-an-image", "garbage-gzip", "2d", "4d", "vector"],
)
def test_unusable_files_raise_naming_the_file(tmp_path, make_file, message):
    path = tmp_path / "bad.nii.gz"
    make_file(path)
    with pytest.raises(StackReadError, match=message) as raised:
        read_stack(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
@pytest.mark.parametrize("kept", [0.1, 0.5, 0.95])
def test_truncated_file_raises(tmp_path, suffix, kept):
    """SimpleITK itself reads truncated NIfTI files silently, filling the missing voxels with garbage."""
    image, _ = synthetic_pair(shape=(20, 40, 40))
    path = write_volume(tmp_path / f"full{suffix}", image)
    truncated = tmp_path / f"truncated{suffix}"
    truncated.write_bytes(path.read_bytes()[: int(path.stat().st_size * kept)])
    with pytest.raises(StackReadError, match=f"truncated{suffix}.*truncated"):
        read_stack(truncated)


def test_multi_member_gzip_is_not_mistaken_for_truncation(tmp_path):
    image, _ = synthetic_pair(shape=(20, 40, 40))
    raw = write_volume(tmp_path / "s.nii", image).read_bytes()
    path = tmp_path / "two_members.nii.gz"
    path.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    np.testing.assert_array_equal(read_stack(path).array, image)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_inf_are_refused_although_simpleitk_reads_them_as_zero(tmp_path, dtype):
    image = synthetic_pair()[0].astype(dtype)
    image[2, 3, 4], image[1, 1, 1], image[0, 0, 0] = np.nan, np.inf, -np.inf
    path = write_volume(tmp_path / "nan.nii.gz", image)
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[2, 3, 4] == 0
    with pytest.raises(StackReadError, match="nan.nii.gz holds 1 NaN and 2 infinite"):
        read_stack(path)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.nii.gz"):
        read_stack(tmp_path / "nowhere.nii.gz")


def test_write_mask_rejects_wrong_shape_and_values(tmp_path):
    image, labels = synthetic_pair()
    stack = read_stack(write_volume(tmp_path / "s.nii.gz", image))
    with pytest.raises(ValueError, match="does not match"):
        write_mask(np.zeros((5, 12, 11), np.uint8), stack.geometry, tmp_path / "m.nii.gz")
    with pytest.raises(ValueError, match="only 0 and 1"):
        write_mask(labels, stack.geometry, tmp_path / "m.nii.gz")
    assert not list(tmp_path.glob("*m.nii.gz*"))


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    image, labels = synthetic_pair()
    stack = read_stack(write_volume(tmp_path / "s.nii.gz", image))

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("fetal_keras.data.io.copy_spatial_fields", fail)
    with pytest.raises(OSError, match="disk full"):
        write_mask(labels > 0, stack.geometry, tmp_path / "m.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.nii.gz"]
