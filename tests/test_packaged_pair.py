"""The packaged localiser + segmenter pair: its head box holds the brain on simulated stacks (its real-stack Dice:
test_packaged_pair_real_stacks.py, a file of its own so that the two run side by side)."""

import numpy as np
import pytest
from conftest import write_volume

from fetal_keras.data.io import read_stack
from fetal_keras.data.preprocess import prepare_stack
from fetal_keras.deploy.loading import load_predictor
from fetal_keras.deploy.predict import PredictOptions, _to_source_grid, locate_head
from fetal_keras.simulate import SimulationSettings, simulate_stack
from fetal_keras.simulate.cohort import simulate_subject

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pair():
    return load_predictor("pretrained:v2")


SIMULATED = SimulationSettings(subjects=1, seed=321, preset="realistic", ga_range_weeks=(24.0, 34.0))


@pytest.fixture(scope="module")
def simulated_subject():
    """One simulated fetus (a seed no training used), shared by its three stacks' tests."""
    return simulate_subject(SIMULATED, 0)


@pytest.mark.timeout(1200)  # a whole-abdomen stack simulated and localised: 100-200 s beside another test
@pytest.mark.parametrize("stack_index", [0, 1, 2])
def test_the_localisers_crop_holds_the_whole_brain_on_simulated_stacks(tmp_path, pair, simulated_subject, stack_index):
    """Simulated realistic stacks of a seed no training used: the segmenter's crop around the localiser's head
    covers every brain voxel (axial, coronal and sagittal stacks)."""
    predictor, preprocess, _ = pair
    stack = simulate_stack(SIMULATED, simulated_subject, stack_index)
    path = write_volume(tmp_path / "stack.nii.gz", stack.image, spacing=tuple(stack.plan.spacing_mm))
    head = locate_head(predictor, "stack", path, PredictOptions())
    assert head.any(), "the localiser found a head"
    crop = prepare_stack("stack", path, None, preprocess, head)
    covered = _to_source_grid(np.ones(crop.unpadded_image.shape), crop.geometry, read_stack(path).geometry, True)
    brain = stack.mask > 0
    assert covered[brain].min() == 1.0, f"{(covered[brain] < 1).sum()} brain voxels outside the crop"
