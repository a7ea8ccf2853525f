import numpy as np
import pytest
from conftest import synthetic_pair, write_volume

from fetal_keras.data.io import read_geometry
from fetal_keras.data.preprocess import PreprocessConfig, load_stacks, prepare_stack, prepared_shape
from fetal_keras.data.stack_bank import build_stack_bank, load_stack_bank


@pytest.mark.parametrize("config", [PreprocessConfig(), PreprocessConfig(target_spacing_mm=0.7, min_shape=(1, 8, 8))])
@pytest.mark.parametrize("shape", [(5, 12, 10), (2, 150, 131)])
def test_prepared_shape_is_known_from_the_header(tmp_path, config, shape):
    image, labels = synthetic_pair(shape=shape)
    write_volume(tmp_path / "i.nii.gz", image, spacing=(0.9, 1.1, 3.0))
    write_volume(tmp_path / "s.nii.gz", labels, spacing=(0.9, 1.1, 3.0))
    prepared = prepare_stack("x", tmp_path / "i.nii.gz", tmp_path / "s.nii.gz", config)
    assert prepared_shape(read_geometry(tmp_path / "i.nii.gz"), config) == prepared.image.shape


def test_streamed_bank_equals_the_bank_of_loaded_stacks(write_cohort):
    csv = write_cohort(3)
    streamed = load_stack_bank(csv, PreprocessConfig(), progress=False)
    in_memory = build_stack_bank(load_stacks(csv, PreprocessConfig(), progress=False))
    assert streamed.ids == in_memory.ids == ("sub-00", "sub-01", "sub-02")
    for name in ("images", "labels", "shapes", "offsets", "brain_counts", "brain_voxels"):
        np.testing.assert_array_equal(getattr(streamed, name).numpy(), getattr(in_memory, name).numpy())
    assert streamed.images.dtype.name == "float16" and streamed.labels.dtype.name == "uint8"


def test_empty_cohort_has_no_bank():
    with pytest.raises(ValueError, match="No stacks"):
        build_stack_bank([])
