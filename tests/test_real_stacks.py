"""The two real unlabelled stacks (oblique and permuted direction cosines) from ../shared."""

import numpy as np
import pytest
from conftest import REAL_DATA

from fetal_keras.data.check import CheckOptions, check_cohort
from fetal_keras.data.io import read_stack, write_mask

REAL_STACKS = ["fetus_03.nii.gz", "fetus_04.nii.gz"]

pytestmark = pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real unlabelled stacks not found at {REAL_DATA}")


@pytest.mark.parametrize("name", REAL_STACKS)
def test_real_stack_mask_round_trip_is_identical(tmp_path, name):
    stack = read_stack(REAL_DATA / name)
    brightish = stack.array > np.percentile(stack.array, 90)

    write_mask(brightish, stack.geometry, tmp_path / name)
    mask = read_stack(tmp_path / name)

    assert mask.geometry.size == stack.geometry.size
    assert mask.geometry.spacing_mm == stack.geometry.spacing_mm
    assert mask.geometry.origin_mm == stack.geometry.origin_mm
    assert mask.geometry.direction == stack.geometry.direction
    assert mask.geometry.metadata["qform_code_name"] == stack.geometry.metadata["qform_code_name"]
    np.testing.assert_array_equal(mask.array, brightish)


def test_real_stacks_read_with_slices_first():
    shapes = {name: read_stack(REAL_DATA / name).array.shape for name in REAL_STACKS}
    assert shapes == {"fetus_03.nii.gz": (44, 256, 256), "fetus_04.nii.gz": (40, 256, 256)}


def test_real_stacks_pass_check_for_prediction(tmp_path):
    csv = tmp_path / "real.csv"
    csv.write_text("iFIND_id,image,segmentation\n" + "".join(f"{n[:8]},{REAL_DATA / n},\n" for n in REAL_STACKS))
    assert check_cohort(csv, CheckOptions(purpose="predict"), progress=False) == []
