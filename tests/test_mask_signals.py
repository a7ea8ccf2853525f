"""The QC measurements of a mask against its stack: each on a constructed case whose answer is known."""

import numpy as np
import pytest
from scipy import ndimage

from fetal_keras.deploy.mask_signals import (
    bright_rim_share,
    dropped_share,
    in_plane_solidity,
    outside_head_share,
    slice_hole_share,
)
from fetal_keras.simulate import SimulationSettings, simulate_stack
from fetal_keras.simulate.cohort import simulate_subject

SPACING = (1.0, 1.0, 3.0)


def _disk(radius: float, size: int = 96, slices: int = 5) -> np.ndarray:
    y, x = np.mgrid[:size, :size] - size / 2
    return np.repeat((np.hypot(y, x) <= radius)[None], slices, axis=0)


def _head_image(brain: np.ndarray, skull_mm: float = 3.0) -> np.ndarray:
    """Bright brain edge (CSF), a dark skull ring just outside, brighter scalp and fluid beyond."""
    outside = ndimage.distance_transform_edt(~brain, sampling=(100.0, 1.0, 1.0))
    image = np.where(brain, 0.9, np.where(outside <= skull_mm, 0.1, 0.7))
    return image + np.random.default_rng(0).normal(0.0, 0.02, brain.shape)


def test_a_mask_on_the_brain_boundary_has_a_bright_rim_and_one_past_it_or_on_flat_tissue_has_none():
    brain = _disk(25)
    image = _head_image(brain)
    assert bright_rim_share(image, brain, SPACING) > 0.95
    grown = _disk(35)  # past the skull into the surroundings: no step from bright to dark at its outline
    assert bright_rim_share(image, grown, SPACING) < 0.05
    flat = np.random.default_rng(1).normal(0.5, 0.02, brain.shape)
    flat[:, :16, :16] = 1.0  # bright fluid in a corner: the stack's intensity range is not the noise's
    assert bright_rim_share(flat, brain, SPACING) < 0.05
    assert bright_rim_share(image, np.zeros_like(brain), SPACING) == 0.0


@pytest.mark.slow
def test_the_true_mask_of_a_simulated_stack_lies_on_a_bright_rim_more_than_a_grown_one():
    settings = SimulationSettings(subjects=1, seed=5, ga_range_weeks=(28.0, 28.0), motion=False)
    stack = simulate_stack(settings, simulate_subject(settings, 0), 0)
    spacing = stack.geometry.spacing_mm
    mask = stack.mask.astype(bool)
    grown = ndimage.binary_dilation(mask, np.ones((1, 3, 3)), iterations=int(round(12 / spacing[0])))
    true_share = bright_rim_share(stack.image, mask, spacing)
    assert true_share > 0.5
    assert bright_rim_share(stack.image, grown, spacing) < true_share - 0.2


def test_solidity_is_high_for_a_disk_and_lower_with_a_lobe_hanging_on():
    disk = _disk(25)
    assert in_plane_solidity(disk, SPACING) > 0.95
    with_lobe = disk | np.roll(_disk(12), (0, 0, 34), axis=(0, 1, 2))  # a small disk touching the big one
    assert in_plane_solidity(with_lobe, SPACING) < in_plane_solidity(disk, SPACING) - 0.04
    assert in_plane_solidity(np.zeros_like(disk), SPACING) == 1.0


def test_slice_holes_are_the_holes_share_of_the_filled_area():
    disk = _disk(25)
    assert slice_hole_share(disk) == 0.0
    holed = disk & ~_disk(10)
    expected = _disk(10).sum() / disk.sum()
    assert slice_hole_share(holed) == pytest.approx(expected, rel=1e-6)


def test_outside_head_and_dropped_brain_shares():
    head, mask = _disk(20), _disk(25)
    assert outside_head_share(mask, head) == pytest.approx(1 - head.sum() / mask.sum())
    assert outside_head_share(head, mask) == 0.0
    probability = np.where(mask | np.roll(_disk(5), 40, axis=2), 0.9, 0.1)
    assert dropped_share(probability, mask) == pytest.approx(_disk(5).sum() / (mask.sum() + _disk(5).sum()))
    assert dropped_share(np.where(mask, 0.9, 0.1), mask) == 0.0
