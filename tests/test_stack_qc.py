"""The per-stack QC score: each reason fires on a stack made to show it, and none on a good simulated stack."""

import numpy as np
import pytest
from scipy import ndimage

from fetal_keras.deploy.mask_signals import outside_head_share
from fetal_keras.deploy.stack_qc import QcSettings, stack_qc
from fetal_keras.simulate import SimulationSettings, simulate_stack
from fetal_keras.simulate.cohort import simulate_subject


@pytest.fixture(scope="module")
def good():
    """A simulated stack's true brain mask, its spacing and a confident probability (0.97 inside, soft outline)."""
    settings = SimulationSettings(subjects=1, seed=5, ga_range_weeks=(28.0, 28.0), motion=False)
    stack = simulate_stack(settings, simulate_subject(settings, 0), 0)
    mask = stack.mask.astype(bool)
    probability = np.clip(ndimage.gaussian_filter(mask.astype(float), (0.0, 0.7, 0.7)) * 1.05, 0.0, 0.99)
    return mask, stack.geometry.spacing_mm, probability


def test_a_good_stack_raises_nothing_and_the_score_is_deterministic(good):
    mask, spacing, probability = good
    first = stack_qc(mask, spacing, probability, np.zeros(mask.shape), mask)
    assert first.reasons == () and first.score == 0.0 and not first.flag, first.values
    assert stack_qc(mask, spacing, probability, np.zeros(mask.shape), mask) == first


def _slices_with_brain(mask):
    return np.flatnonzero(mask.any(axis=(1, 2)))


@pytest.mark.parametrize(
    "reason",
    [
        "small_volume",
        "large_volume",
        "fov_border_in_plane",
        "cut_through_plane",
        "slice_gaps",
        "area_jumps",
        "low_confidence",
        "tta_disagreement",
        "member_disagreement",
        "elongated_shape",
        "localiser_disagreement",
        "concave_outline",
        "outside_localiser_head",
    ],
)
def test_each_reason_fires_on_a_stack_made_to_show_it(good, reason):
    mask, spacing, probability = good
    mask, probability = mask.copy(), probability.copy()
    spread, head, flagged, members = np.zeros(mask.shape), mask.copy(), [], ()
    present = _slices_with_brain(mask)
    if reason == "small_volume":  # 2 middle slices of the brain only
        keep = np.zeros(mask.shape[0], bool)
        keep[present[len(present) // 2] : present[len(present) // 2] + 1] = True
        mask &= keep[:, None, None]
        head = mask.copy()
    elif reason == "large_volume":  # the brain grown by 45 mm in-plane
        mask = ndimage.binary_dilation(mask, np.ones((1, 3, 3)), iterations=int(45 / spacing[0]))
        probability, head = np.where(mask, 0.97, 0.0), mask.copy()
    elif reason == "fov_border_in_plane":  # the field of view cut through the brain's right half
        columns = np.flatnonzero(mask.any(axis=(0, 1)))
        cut = (columns[0] + columns[-1]) // 2
        mask, probability, head = mask[:, :, :cut], probability[:, :, :cut], head[:, :, :cut]
        spread = spread[:, :, :cut]
    elif reason == "cut_through_plane":  # the slab starts in the middle of the brain
        middle = present[len(present) // 2]
        mask, probability, head, spread = (array[middle:] for array in (mask, probability, head, spread))
    elif reason == "slice_gaps":
        mask[present[len(present) // 2]] = False
    elif reason == "area_jumps":
        flagged = list(present[::2])
    elif reason == "low_confidence":
        probability = np.where(mask, 0.6, 0.0)
    elif reason == "tta_disagreement":
        spread = np.where(mask, 0.25, 0.0)
    elif reason == "member_disagreement":  # two averaged models, one sure of the brain, one sure it is not there
        members = (probability, np.where(mask, 0.2, 0.0))
        probability = np.mean(members, axis=0)
    elif reason == "elongated_shape":  # a long thin bar instead of a brain
        mask = np.zeros_like(mask)
        mask[present[0] : present[-1] + 1, 50:56, 10:-10] = True
        probability, head = np.where(mask, 0.97, 0.0), mask.copy()
    elif reason == "localiser_disagreement":  # the localiser's head is a tenth of the mask
        head = np.zeros_like(mask)
        head[present[len(present) // 2]] = mask[present[len(present) // 2]]
    elif reason == "concave_outline":  # a copy of the brain hanging on at its side, as the fetal trunk does
        columns = np.flatnonzero(mask.any(axis=(0, 1)))
        mask = mask | np.roll(mask, (len(columns) * 3 // 4, len(columns) * 3 // 4), axis=(1, 2))
        probability, head = np.where(mask, 0.97, 0.0), mask.copy()
    elif reason == "outside_localiser_head":  # the localiser's head is the brain's inner half (in-plane)
        head = ndimage.binary_erosion(mask, np.ones((1, 3, 3)), iterations=int(8 / spacing[0]))
    qc = stack_qc(mask, spacing, probability, spread, head, flagged, member_probabilities=members)
    assert reason in qc.reasons, (qc.reasons, qc.values)
    assert qc.flag and qc.score >= QcSettings().flag_score, (qc.score, qc.values)


def test_an_empty_mask_is_flagged_with_its_own_reason(good):
    mask, spacing, _ = good
    qc = stack_qc(np.zeros_like(mask), spacing)
    assert qc.flag and qc.score == 1.0 and qc.reasons == ("no_brain_found",)


def test_a_good_mask_a_little_outside_a_tight_localiser_head_is_not_flagged(good):
    """A fine-tuned pair's localiser may mark a tighter head than the brain: good masks of such pairs lie up to about
    half outside it (docs/qc.md), which alone must not flag them."""
    mask, spacing, probability = good
    head = mask.copy()
    while outside_head_share(mask, head) < 0.3:
        head = ndimage.binary_erosion(head, np.ones((1, 3, 3)))
    qc = stack_qc(mask, spacing, probability, np.zeros(mask.shape), head)
    assert 0.3 <= qc.values["outside_localiser_head"] < 0.5, qc.values
    assert "outside_localiser_head" not in qc.reasons and not qc.flag, (qc.reasons, qc.score)


def test_two_sure_models_that_differ_at_the_edge_are_not_read_as_one_unsure_model(good):
    """An averaged pair (``--average-with-packaged``): each model sure of itself, one marking the brain a voxel
    wider than the other. Their mean is 0.5 on that ring, inside the mask; measured on the models' own
    probabilities the mask is surer than their mean says, and their spread stays under its start."""
    brain, spacing, _ = good
    members = tuple(
        np.where(region, 0.99, 0.01) for region in (brain, ndimage.binary_dilation(brain, np.ones((1, 3, 3))))
    )
    mean = np.mean(members, axis=0)
    mask = mean >= 0.5
    as_one = stack_qc(mask, spacing, mean, None, mask)
    as_members = stack_qc(mask, spacing, mean, None, mask, member_probabilities=members)
    assert as_members.values["low_confidence"] < as_one.values["low_confidence"], (as_members.values, as_one.values)
    assert as_members.reasons == () and not as_members.flag, as_members.values


def test_the_models_of_a_weighted_mean_count_in_the_member_measures_as_in_its_probability(good):
    """A weighted mean (``--fine-tuned-weight 0.25``): the model that has three quarters of the say is sure, the
    other is not. Equal weights would read the mask as half unsure; weighted, it is mostly the sure model's."""
    brain, spacing, _ = good
    sure, unsure = np.where(brain, 0.99, 0.01), np.where(brain, 0.6, 0.01)
    mask = brain > 0
    equal = stack_qc(mask, spacing, (sure + unsure) / 2, None, mask, member_probabilities=(unsure, sure))
    members = {"member_probabilities": (unsure, sure)}
    weighted = stack_qc(mask, spacing, 0.25 * unsure + 0.75 * sure, None, mask, **members, member_weights=(0.25, 0.75))
    assert equal.values["low_confidence"] == pytest.approx(0.5)
    assert weighted.values["low_confidence"] == pytest.approx(0.25)
    # The weighted spread: sqrt(0.25 * 0.75) * 0.39 against 0.5 * 0.39 for equal weights.
    assert weighted.values["member_disagreement"] == pytest.approx(np.sqrt(0.25 * 0.75) * 0.39)
    assert equal.values["member_disagreement"] == pytest.approx(0.5 * 0.39)
    scaled = stack_qc(mask, spacing, None, None, mask, **members, member_weights=(1.0, 3.0))
    assert scaled.values["low_confidence"] == weighted.values["low_confidence"], "weights need not sum to 1"


def test_a_mask_a_quarter_unsure_and_nothing_else_odd_is_flagged(good):
    """The failure the limits were last moved for: a mask of plausible size and shape that the model is unsure of
    on about a quarter of its voxels (confident under-segmentations of unusual contrast read 0.23-0.24; good masks
    of both development sets at most 0.21-0.23). Under the earlier limits (0.2-0.4) it scored 0.2."""
    mask, spacing, probability = good
    unsure = probability.copy()
    sure = np.flatnonzero(mask & (probability >= 0.8))
    wanted = int(0.24 * mask.sum()) - int((probability[mask] < 0.8).sum())
    unsure.flat[np.random.default_rng(0).choice(sure, wanted, replace=False)] = 0.6
    qc = stack_qc(mask, spacing, unsure, None, mask)
    assert qc.values["low_confidence"] == pytest.approx(0.24, abs=0.002), qc.values
    assert qc.reasons == ("low_confidence",) and qc.flag, qc
