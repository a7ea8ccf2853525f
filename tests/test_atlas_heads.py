"""Fetal heads built around the packaged fetal brain atlas (``--head-anatomy atlas``)."""

import dataclasses

import numpy as np
import pytest
import SimpleITK as sitk

from fetal_keras.simulate import SimulationSettings, simulate_stack
from fetal_keras.simulate.atlas import atlas_names, expected_brain_volume_ml, load_atlas_brain, nearest_atlas_brain
from fetal_keras.simulate.cohort import simulate_subject
from fetal_keras.simulate.growth import biparietal_diameter_mm, draw_head_biometry
from fetal_keras.simulate.head import build_head
from fetal_keras.simulate.tissues import BRAIN_TISSUES, Tissue


def _median_fetus_head(ga_weeks: float, seed: int):
    rng = np.random.default_rng(seed)
    biometry = dataclasses.replace(draw_head_biometry(ga_weeks, rng), bpd_mm=biparietal_diameter_mm(ga_weeks))
    return build_head(biometry, rng, 1.2, "atlas")


def test_the_package_ships_the_fifteen_atlas_ages_with_their_licence():
    names = atlas_names()
    assert len(names) == 15 and names[0] == "GA21_notoperated" and names[-1] == "GA34_operated"
    brain = load_atlas_brain("GA21_notoperated")
    assert 45 <= brain.volume_ml <= 55, "the atlas's README: about 52 ml at 21 weeks (with extra-axial CSF)"
    assert nearest_atlas_brain(37.0, np.random.default_rng(0)).name == "GA34_operated"
    assert {nearest_atlas_brain(25.2, np.random.default_rng(seed)).name for seed in range(8)} == {
        "GA25_notoperated",
        "GA25_operated",
    }
    from fetal_keras.simulate.atlas import ATLAS_FOLDER

    assert "CC0" in (ATLAS_FOLDER / "LICENSE.txt").read_text() and "Fidon" in (ATLAS_FOLDER / "README.md").read_text()


@pytest.mark.parametrize("ga_weeks", [18.0, 20.0, 24.0, 29.0, 33.0, 38.0])
def test_a_median_atlas_head_has_the_brain_volume_of_its_age(ga_weeks):
    """Within 15 % of the growth curve the atlas heads follow, inside and beyond the atlas's ages (21-34)."""
    head = _median_fetus_head(ga_weeks, seed=0)
    expected = expected_brain_volume_ml(ga_weeks)
    assert abs(head.brain_volume_ml / expected - 1.0) <= 0.15, (head.brain_volume_ml, expected)


def test_the_growth_curve_rises_with_age():
    volumes = [expected_brain_volume_ml(ga_weeks) for ga_weeks in (20.0, 24.0, 29.0, 33.0, 38.0)]
    assert all(later > earlier for earlier, later in zip(volumes, volumes[1:], strict=False)), volumes


def test_an_atlas_head_is_a_brain_inside_csf_skull_and_scalp():
    head = _median_fetus_head(28.0, seed=3)
    labels = head.labels
    brain = np.isin(labels, BRAIN_TISSUES)
    components = sitk.ConnectedComponent(sitk.GetImageFromArray(brain.astype(np.uint8)))
    assert sitk.GetArrayViewFromImage(components).max() == 1, "one intracranial volume"
    for tissue in (Tissue.VENTRICLE, Tissue.CORTEX, Tissue.WHITE_MATTER, Tissue.DEEP_GREY):
        assert (labels == tissue).any(), tissue.name
    # Outwards from the brain: extra-axial CSF, then skull, then scalp, then air at the grid's edge.
    assert (labels == Tissue.EXTRA_AXIAL_CSF).sum() > 0.02 * brain.sum()
    skull = labels == Tissue.SKULL
    brain_image = sitk.GetImageFromArray(brain.astype(np.uint8))
    grown = sitk.GetArrayFromImage(sitk.BinaryDilate(brain_image, [1, 1, 1], sitk.sitkCross))  # face neighbours
    assert not (grown.astype(bool) & (labels == Tissue.SCALP)).any(), "the scalp never touches the brain"
    assert skull.any() and (labels[0] == Tissue.AIR).all() and (labels[-1] == Tissue.AIR).all()
    assert np.allclose(head.biometry.brain_size_mm, head.brain_extent_mm()), "the biometry holds the built size"


def test_atlas_heads_differ_from_fetus_to_fetus_and_repeat_with_the_seed():
    first, again, other = (_median_fetus_head(30.0, seed) for seed in (5, 5, 6))
    np.testing.assert_array_equal(first.labels, again.labels)
    ventricles = [head.labels == Tissue.VENTRICLE for head in (first, other)]
    assert ventricles[0].shape != ventricles[1].shape or (ventricles[0] != ventricles[1]).any()


def test_a_simulated_stack_with_atlas_heads_has_a_brain_mask_where_the_brain_tissues_are():
    settings = SimulationSettings(subjects=1, seed=4, head_anatomy="atlas", ga_range_weeks=(26.0, 26.0))
    subject = simulate_subject(settings, 0)
    assert tuple(subject.record["biometry"]["brain_size_mm"]) == subject.scene.head.biometry.brain_size_mm
    stack = simulate_stack(settings, subject, 0)
    assert stack.mask.sum() > 0
    inside = np.isin(stack.tissue_labels[stack.mask > 0], BRAIN_TISSUES).mean()
    assert inside > 0.9, f"{inside:.2f} of the mask on brain tissue labels"


def test_an_unknown_head_anatomy_is_refused():
    with pytest.raises(ValueError, match="head_anatomy must be one of"):
        SimulationSettings(head_anatomy="adult")
    with pytest.raises(ValueError, match="head anatomy must be one of"):
        build_head(draw_head_biometry(30.0, np.random.default_rng(0)), np.random.default_rng(0), 1.2, "adult")
