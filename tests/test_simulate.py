"""The stack simulator: determinism, geometry, anatomy, motion and masks that follow it."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from fetal_keras.data.check import check_cohort
from fetal_keras.data.io import read_stack
from fetal_keras.simulate import PRESETS, SimulationSettings, simulate_cohort, simulate_stack
from fetal_keras.simulate.cohort import simulate_subject
from fetal_keras.simulate.growth import biparietal_diameter_mm
from fetal_keras.simulate.motion import draw_motion, interleaved_order
from fetal_keras.simulate.tissues import BRAIN_TISSUES, Tissue

SETTINGS = SimulationSettings(subjects=2, seed=3)
# Brain tissues = 1, everything else = 0: the clean image then shows exactly what the brain mask should cover.
BRAIN_ONLY = {tissue.name: float(tissue in BRAIN_TISSUES) for tissue in Tissue}


@pytest.fixture(scope="module")
def subject():
    return simulate_subject(SETTINGS, 0)


@pytest.fixture(scope="module")
def stacks(subject):
    return [simulate_stack(SETTINGS, subject, k) for k in range(3)]


def test_same_seed_same_stack_other_seed_other_stack(subject, stacks):
    again = simulate_stack(SETTINGS, simulate_subject(SETTINGS, 0), 0)
    np.testing.assert_array_equal(again.image, stacks[0].image)
    np.testing.assert_array_equal(again.mask, stacks[0].mask)
    other_seed = SimulationSettings(subjects=2, seed=4)
    assert simulate_subject(other_seed, 0).record["ga_weeks"] != subject.record["ga_weeks"]


def test_stack_geometry_and_types_within_the_preset(stacks):
    preset = PRESETS["small"]
    for stack in stacks:
        nx, ny, nz = stack.plan.size
        assert stack.image.shape == stack.mask.shape == (nz, ny, nx)
        assert stack.image.dtype == np.uint16 and stack.mask.dtype == np.uint8
        assert set(np.unique(stack.mask)) == {0, 1}
        assert (
            preset["in_plane_mm"][0] <= stack.plan.spacing_mm[0] == stack.plan.spacing_mm[1] <= preset["in_plane_mm"][1]
        )
        assert preset["thickness_mm"][0] <= stack.plan.spacing_mm[2] <= preset["thickness_mm"][1]
        assert preset["matrix"][0] <= min(nx, ny) and max(nx, ny) <= preset["matrix"][1]
        assert preset["slices"][0] <= nz <= preset["slices"][1]
        direction = stack.plan.direction
        np.testing.assert_allclose(direction.T @ direction, np.eye(3), atol=1e-9)
        assert sorted(stack.record["slice_order"]) == list(range(nz))
        assert stack.record["slice_order"][:2] in ([0, 2], [0, 3], [nz - 1, nz - 3], [nz - 1, nz - 4], [nz - 2, nz - 4])


def test_three_stacks_are_roughly_orthogonal(stacks):
    normals = [stack.plan.direction[:, 2] for stack in stacks]
    assert [stack.plan.orientation for stack in stacks] == ["axial", "coronal", "sagittal"]
    for a in range(3):
        for b in range(a + 1, 3):
            assert abs(normals[a] @ normals[b]) < 0.5


def test_brain_size_follows_gestational_age():
    for ga in (21.0, 37.0):
        settings = SimulationSettings(subjects=1, seed=0, ga_range_weeks=(ga, ga))
        record = simulate_subject(settings, 0).record
        assert record["biometry"]["bpd_mm"] == pytest.approx(biparietal_diameter_mm(ga), rel=0.2)
    assert biparietal_diameter_mm(20) == pytest.approx(47, abs=3) and biparietal_diameter_mm(38) == pytest.approx(
        92, abs=3
    )


def test_head_anatomy_has_every_layer_and_a_plausible_brain(subject):
    head = subject.scene.head
    present = set(np.unique(head.labels))
    for tissue in (
        Tissue.CORTEX,
        Tissue.WHITE_MATTER,
        Tissue.VENTRICLE,
        Tissue.EXTRA_AXIAL_CSF,
        Tissue.SKULL,
        Tissue.SCALP,
    ):
        assert tissue in present
    width, length, _ = head.brain_extent_mm()
    biometry = head.biometry
    assert width == pytest.approx(biometry.brain_size_mm[0], rel=0.2)
    assert length == pytest.approx(biometry.brain_size_mm[1], rel=0.2)
    assert 30 < head.brain_volume_ml < 500
    brain = np.isin(head.labels, BRAIN_TISSUES)
    outer = ndimage.binary_dilation(brain, iterations=2) & ~brain
    assert not np.isin(head.labels[outer], [Tissue.AIR]).any(), "the brain is wrapped in CSF, skull and scalp"


def test_mask_follows_the_anatomy_each_slice_saw(subject):
    """With brain = 1 and all else = 0 and no artefacts, the image thresholded at 0.5 is the mask, under motion."""
    settings = SimulationSettings(subjects=2, seed=3, artefacts=False)
    stack = simulate_stack(settings, subject, 2, contrast=BRAIN_ONLY)
    assert stack.record["motion_level"] > 0
    shown = stack.image / stack.record["artefacts"]["gain"] >= 0.5
    dice = 2 * (shown & (stack.mask == 1)).sum() / (shown.sum() + stack.mask.sum())
    assert dice > 0.97


def test_tissue_labels_show_the_same_anatomy_as_the_image_and_mask(stacks):
    """The label map is drawn at each slice's centre under the same motion: its brain tissues are the mask but for
    through-plane partial volume, and the brightest tissue of the T2 image (fluid) sits where the labels say."""
    for stack in stacks:
        assert set(np.unique(stack.tissue_labels)) <= {int(tissue) for tissue in Tissue}
        brain = np.isin(stack.tissue_labels, [int(tissue) for tissue in BRAIN_TISSUES])
        assert 2 * (brain & (stack.mask == 1)).sum() / (brain.sum() + stack.mask.sum()) > 0.9
        csf, skull = stack.tissue_labels == Tissue.EXTRA_AXIAL_CSF, stack.tissue_labels == Tissue.SKULL
        assert stack.mask[csf].mean() > 0.8, "the mask is the intracranial volume: it holds the extra-axial CSF"
        assert stack.mask[skull].mean() < 0.2, "and stops at the skull"
        fluid = stack.tissue_labels == Tissue.AMNIOTIC_FLUID
        maternal_muscle = stack.tissue_labels == Tissue.MATERNAL_MUSCLE
        if fluid.sum() > 100 and maternal_muscle.sum() > 100:
            assert np.median(stack.image[fluid]) > 2 * np.median(stack.image[maternal_muscle])


def test_motion_displaces_slices_and_switching_it_off_changes_nothing_else(subject):
    moving = simulate_stack(SETTINGS, subject, 1)
    still = simulate_stack(SimulationSettings(subjects=2, seed=3, motion=False), subject, 1)
    assert still.record["motion_level"] == 0 and not np.any(still.record["motion_per_slice"])
    assert moving.plan.record() == still.plan.record()
    assert moving.record["contrast"] == still.record["contrast"]
    shifts = []
    for position in range(moving.mask.shape[0]):
        if moving.mask[position].sum() > 50 and still.mask[position].sum() > 50:
            a, b = ndimage.center_of_mass(moving.mask[position]), ndimage.center_of_mass(still.mask[position])
            shifts.append(np.hypot(a[0] - b[0], a[1] - b[1]) * moving.plan.spacing_mm[0])
    assert len(shifts) >= 3 and max(shifts) > 1.0, shifts


def test_motion_is_bounded_and_follows_acquisition_order():
    rng = np.random.default_rng(0)
    order = interleaved_order(40, rng)
    motion = draw_motion(order, 1.0, rng)
    assert np.abs(motion[:, :3]).max() <= 20 and np.abs(motion[:, 3:]).max() <= 10
    in_time = motion[order]
    assert np.abs(np.diff(in_time, axis=0)).mean() < np.abs(np.diff(motion, axis=0)).mean(), "correlated in time"
    assert not draw_motion(order, 0.0, rng).any()


def test_domain_randomisation_draws_other_contrasts(subject):
    randomised = simulate_stack(SimulationSettings(subjects=2, seed=3, domain_randomisation=True), subject, 0)
    regular = simulate_stack(SETTINGS, subject, 0)
    assert regular.record["contrast"]["AMNIOTIC_FLUID"] > regular.record["contrast"]["CORTEX"]
    assert randomised.record["contrast"] != regular.record["contrast"]


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError, match="preset"):
        SimulationSettings(preset="huge")
    with pytest.raises(ValueError, match="18-38"):
        SimulationSettings(ga_range_weeks=(15, 30))


@pytest.mark.slow
def test_written_cohort_is_valid_and_regenerates_exactly(tmp_path):
    settings = SimulationSettings(subjects=2, stacks_per_subject=2, seed=7)
    csv = simulate_cohort(settings, tmp_path / "sim", workers=2)

    assert check_cohort(csv, progress=False) == []
    record = json.loads((tmp_path / "sim" / "simulation.json").read_text())
    assert record["settings"]["seed"] == 7 and len(record["subjects"]) == 2
    stack_record = record["subjects"][1]["stacks"][1]
    assert len(stack_record["motion_per_slice"]) == stack_record["plan"]["size"][2]

    written = read_stack(tmp_path / "sim" / "images" / f"{stack_record['id']}.nii.gz")
    regenerated = simulate_stack(settings, simulate_subject(settings, 1), 1)
    np.testing.assert_array_equal(written.array, regenerated.image)
    labels = read_stack(tmp_path / "sim" / "labels" / f"{stack_record['id']}.nii.gz")
    np.testing.assert_array_equal(labels.array, regenerated.tissue_labels)
    assert labels.geometry.differences(written.geometry) == []
    assert (pd.read_csv(csv)["labels"] == [f"labels/{row}.nii.gz" for row in pd.read_csv(csv)["iFIND_id"]]).all()
    assert record["tissue_labels"]["AMNIOTIC_FLUID"] == Tissue.AMNIOTIC_FLUID
    assert written.geometry.spacing_mm == pytest.approx(regenerated.plan.spacing_mm, rel=1e-6)
    np.testing.assert_allclose(written.geometry.direction, regenerated.plan.direction.ravel(), atol=1e-6)
    with pytest.raises(FileExistsError, match="--overwrite"):
        simulate_cohort(settings, tmp_path / "sim")


def test_a_labels_only_bank_has_the_same_anatomy_without_images_and_ids_of_its_own(subject, stacks, tmp_path):
    bank = dataclasses.replace(SETTINGS, labels_only=True)
    stack = simulate_stack(bank, subject, 0)
    assert stack.image is None
    np.testing.assert_array_equal(stack.tissue_labels, stacks[0].tissue_labels)  # the same random stream
    np.testing.assert_array_equal(stack.mask, np.isin(stack.tissue_labels, BRAIN_TISSUES))
    assert simulate_stack(bank, simulate_subject(bank, 1), 0).plan.orientation == "coronal"  # cycles over fetuses

    csv = simulate_cohort(
        dataclasses.replace(bank, subjects=2, stacks_per_subject=1, first_subject=300), tmp_path / "bank", workers=1
    )
    table = pd.read_csv(csv)
    assert table["subject"].tolist() == ["sub-300", "sub-301"]
    assert (table["image"] == table["labels"]).all() and table["labels_only"].all()
    assert not (tmp_path / "bank" / "images").exists()
    assert check_cohort(csv, progress=False) == []


@pytest.mark.parametrize("target", [(0, 0, 1), (0, 0, -1), (0.3, -0.2, 0.9), (-0.5, -0.5, -0.70710678)])
@pytest.mark.parametrize("source", [(0, 0, 1), (0.5, 0.5, 0.70710678)])
def test_rotation_between_maps_one_direction_onto_another(source, target):
    from fetal_keras.simulate.shapes import rotation_between

    rotation = rotation_between(source, target)
    source, target = np.asarray(source, float), np.asarray(target, float)
    np.testing.assert_allclose(rotation @ (source / np.linalg.norm(source)), target / np.linalg.norm(target), atol=1e-9)
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-9)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
