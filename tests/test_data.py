"""The tf.data pipeline: shapes, class balance, aligned augmentation, padding, determinism, modes."""

import dataclasses

import numpy as np
import pytest
from conftest import write_volume
from scipy import ndimage

from fetal_keras.data.augment import AugmentConfig, sampling_points
from fetal_keras.data.preprocess import PreprocessConfig, label_map_preprocess, load_stacks, prepare_stack
from fetal_keras.pipeline import (
    SamplingConfig,
    patch_dataset,
    read_train_and_validation,
    training_dataset,
    whole_stack_dataset,
)
from fetal_keras.rendering.config import RenderConfig
from fetal_keras.simulate.tissues import Tissue

GEOMETRIC_ONLY = AugmentConfig(
    flip_probability=0.5,
    offset_sigma=0.0,
    gamma_log_sigma=0.0,
    contrast_range=(1.0, 1.0),
    bias_amplitude=0.0,
    noise_sigma_max=0.0,
    slice_dropout_probability=0.0,
    slice_shift_px=6.0,
    slice_rotation_deg=10.0,
)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def _blob_stack(tmp_path, name="blob", shape=(8, 150, 140), seed=0):
    """A stack whose label is exactly ``image > 0.5`` of a smooth image: geometric augmentation must keep that."""
    rng = np.random.default_rng(seed)
    image = ndimage.gaussian_filter(rng.normal(size=shape), sigma=(1, 8, 8))
    image = (image - image.min()) / (image.max() - image.min())
    labels = (image > 0.5).astype(np.uint8)
    write_volume(tmp_path / f"{name}.nii.gz", image.astype(np.float32))
    write_volume(tmp_path / f"{name}_seg.nii.gz", labels)
    stack = prepare_stack(name, tmp_path / f"{name}.nii.gz", tmp_path / f"{name}_seg.nii.gz", PreprocessConfig())
    threshold = (0.5 - image.mean()) / (image.std() + 1e-8)
    return stack, threshold


@pytest.fixture(scope="module")
def cohort_stacks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cohort")
    return [_blob_stack(folder, f"s{i}", seed=i)[0] for i in range(3)]


def test_batches_have_the_model_shapes_and_dtypes(cohort_stacks):
    slabs, labels = next(iter(training_dataset(cohort_stacks, batch_size=4)))
    assert slabs.shape == (4, 3, 128, 128, 1) and slabs.dtype.name == "float32"
    assert labels.shape == (4, 3, 128, 128) and labels.dtype.name == "int32"
    assert set(np.unique(labels)) <= {0, 1}


@pytest.fixture(scope="module")
def central_brain_stacks(tmp_path_factory):
    """Stacks much larger than a slab with a brain in the middle, so clamping never moves a centre."""
    folder = tmp_path_factory.mktemp("central")
    z, y, x = np.indices((9, 300, 320))
    stacks = []
    for i in range(2):
        brain = ((y - 150) / 40.0) ** 2 + ((x - 160 - 10 * i) / 50.0) ** 2 < 1
        image = ndimage.gaussian_filter(brain * 100.0 + np.random.default_rng(i).normal(50, 5, brain.shape), 1)
        write_volume(folder / f"{i}.nii.gz", image.astype(np.float32))
        write_volume(folder / f"{i}_seg.nii.gz", brain.astype(np.uint8))
        stacks.append(prepare_stack(str(i), folder / f"{i}.nii.gz", folder / f"{i}_seg.nii.gz", PreprocessConfig()))
    return stacks


@pytest.mark.parametrize("brain_fraction", [0.5, 0.3])
def test_slab_centres_are_class_balanced(central_brain_stacks, brain_fraction):
    sampling = SamplingConfig(slabs_per_stack=20, brain_fraction=brain_fraction)
    dataset = training_dataset(central_brain_stacks, 20, sampling, AugmentConfig.none())
    centres = np.concatenate([labels[:, 1, 64, 64] for _, labels in dataset.take(6)])
    assert centres.mean() == pytest.approx(brain_fraction, abs=0.05)


def test_geometric_augmentation_keeps_image_and_labels_aligned(tmp_path):
    stack, threshold = _blob_stack(tmp_path)
    dataset = training_dataset([stack], 8, SamplingConfig(brain_fraction=0.5), GEOMETRIC_ONLY, seed=3)
    for slabs, labels in dataset.take(3):
        shown = slabs.numpy()[..., 0] > threshold
        truth = labels.numpy() == 1
        assert _dice(shown, truth) > 0.95


def test_a_new_anatomy_per_slab_keeps_image_and_labels_aligned(tmp_path):
    """Per-axis scaling, shear and an elastic warp move image and labels together (and do move them)."""
    stack, threshold = _blob_stack(tmp_path)
    anatomy = dataclasses.replace(GEOMETRIC_ONLY, axis_scale_range=(0.75, 1.3), shear=0.15, elastic_px=3.0)
    dataset = training_dataset([stack], 8, SamplingConfig(brain_fraction=0.5), anatomy, seed=3)
    for slabs, labels in dataset.take(3):
        assert _dice(slabs.numpy()[..., 0] > threshold, labels.numpy() == 1) > 0.95


def test_the_anatomy_augmentation_scales_each_axis_and_warps_smoothly():
    import tensorflow as tf

    centres = tf.constant([[5, 100, 100]] * 64, tf.int64)
    plain = AugmentConfig(rotation_deg=0.0, scale_range=(1.0, 1.0), slice_shift_px=0.0, slice_rotation_deg=0.0)
    warped = dataclasses.replace(plain, axis_scale_range=(0.75, 1.3), shear=0.15, elastic_px=3.0)
    _, y0, x0 = (t.numpy() for t in sampling_points(centres, tf.constant([4, 2], tf.int64), plain, 64))
    _, y, x = (t.numpy() for t in sampling_points(centres, tf.constant([4, 2], tf.int64), warped, 64))
    # Step between neighbouring pixels: 1 read pixel without, 1 / (axis scale) with (0.77-1.33 plus shear and warp).
    steps_y, steps_x = (
        np.abs(np.diff(y[:, 0], axis=1)).mean(axis=(1, 2)),
        np.abs(np.diff(x[:, 0], axis=2)).mean(axis=(1, 2)),
    )
    assert np.allclose(np.abs(np.diff(y0[:, 0], axis=1)), 1.0) and np.allclose(np.abs(np.diff(x0[:, 0], axis=2)), 1.0)
    assert steps_y.min() < 0.9 and steps_y.max() > 1.15 and steps_x.min() < 0.9 and steps_x.max() > 1.15
    assert not np.allclose(steps_y, steps_x), "each axis has its own scale"
    assert np.abs(np.diff(y[:, 0], n=2, axis=1)).max() < 0.5, "smooth: no tears between neighbouring pixels"
    np.testing.assert_allclose(y[:, 0], y[:, 2], atol=1e-4)  # the same anatomy for the slab's three slices


def test_slabs_rendered_from_tissue_labels_stay_aligned_with_the_brain_mask(tmp_path):
    _, y, x = np.indices((6, 150, 140))
    brain = ((y - 75) / 30.0) ** 2 + ((x - 70) / 40.0) ** 2 < 1
    tissue = np.where(brain, Tissue.WHITE_MATTER, Tissue.MATERNAL_MUSCLE).astype(np.uint8)
    write_volume(tmp_path / "labels.nii.gz", tissue)
    write_volume(tmp_path / "seg.nii.gz", brain.astype(np.uint8))
    config = label_map_preprocess(PreprocessConfig())
    stack = prepare_stack("t", tmp_path / "labels.nii.gz", tmp_path / "seg.nii.gz", config)
    np.testing.assert_array_equal(stack.unpadded_image, tissue)  # label values, not whitened
    flat_t2 = RenderConfig(1.0, spread_max=0.0, subclass_sd_max=0.0, blobs=(0, 0), blur_sigma_px=(0.0, 0.0))
    dataset = training_dataset([stack], 8, SamplingConfig(), GEOMETRIC_ONLY, seed=3, render=flat_t2)
    for slabs, labels in dataset.take(2):
        image = slabs.numpy()[..., 0]
        middle = (image.min(axis=(1, 2, 3), keepdims=True) + image.max(axis=(1, 2, 3), keepdims=True)) / 2
        assert _dice(image > middle, labels.numpy() == 1) > 0.99  # white matter is brighter than muscle on T2


def test_slice_wise_motion_moves_each_slice_differently():
    import tensorflow as tf

    seed, centres = tf.constant([1, 2], tf.int64), tf.constant([[5, 100, 100]], tf.int64)
    still = AugmentConfig(slice_shift_px=0.0, slice_rotation_deg=0.0)
    _, y, x = (t.numpy() for t in sampling_points(centres, seed, still, 128))
    assert np.allclose(y[0, 0], y[0, 1]) and np.allclose(x[0, 1], x[0, 2])
    z, y, x = (t.numpy() for t in sampling_points(centres, seed, AugmentConfig(), 128))
    assert not np.allclose(y[0, 0], y[0, 1]) and sorted(z[0]) == [4, 5, 6]


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_without_geometric_augmentation_slabs_are_exact_crops(central_brain_stacks, axis):
    """A stack whose voxels hold their own z, y or x index shows whether slabs are contiguous, unflipped crops."""
    template = central_brain_stacks[0]
    coordinate = np.indices(template.image.shape)[axis].astype(np.float16)
    stack = dataclasses.replace(template, image=coordinate)
    slabs, _ = next(iter(patch_dataset([stack], 6, SamplingConfig(slabs_per_stack=6))))
    for slab in slabs.numpy()[..., 0]:
        steps = np.diff(slab, axis=axis)
        np.testing.assert_array_equal(steps, 1.0)


def test_same_seed_same_batches_other_seed_other_batches(cohort_stacks):
    def first(seed):
        return next(iter(training_dataset(cohort_stacks, 4, seed=seed)))[0].numpy()

    np.testing.assert_array_equal(first(5), first(5))
    assert not np.array_equal(first(5), first(6))


def test_small_stacks_are_padded_and_sampled(tmp_path, write_cohort):
    stacks = load_stacks(write_cohort(2), PreprocessConfig(), progress=False)
    slabs, labels = next(iter(training_dataset(stacks, 4)))
    assert slabs.shape == (4, 3, 128, 128, 1) and labels.numpy().sum() > 0


def test_patch_mode_is_one_deterministic_pass(cohort_stacks):
    sampling = SamplingConfig(slabs_per_stack=4)
    first = [s.numpy() for s, _ in patch_dataset(cohort_stacks, 5, sampling)]
    again = [s.numpy() for s, _ in patch_dataset(cohort_stacks, 5, sampling)]
    assert sum(len(batch) for batch in first) == 12
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_whole_stack_mode_returns_each_stack_on_its_own_grid(tmp_path, write_cohort):
    stacks = load_stacks(write_cohort(2), PreprocessConfig(), progress=False)
    for image, labels, index in whole_stack_dataset(stacks):
        stack = stacks[int(index)]
        assert image.shape == (5, 12, 10, 1) and labels.shape == (5, 12, 10)
        assert stack.geometry == stack.source_geometry and stack.geometry.shape_zyx == (5, 12, 10)
        np.testing.assert_array_equal(labels.numpy(), stack.unpadded_labels)


def test_train_and_validation_may_not_share_a_subject(write_cohort, tmp_path):
    csv = write_cohort(4)
    rows = csv.read_text().splitlines()
    (csv.parent / "train.csv").write_text("\n".join(rows[:4]) + "\n")
    (csv.parent / "val.csv").write_text("\n".join([rows[0], rows[3], rows[4]]) + "\n")
    with pytest.raises(ValueError, match="Subject leak: train .* and validation .* share 1 iFIND_id"):
        read_train_and_validation(csv.parent / "train.csv", csv.parent / "val.csv")
    (csv.parent / "val.csv").write_text("\n".join([rows[0], rows[4]]) + "\n")
    train, validation = read_train_and_validation(csv.parent / "train.csv", csv.parent / "val.csv")
    assert len(train) == 3 and len(validation) == 1


def test_unlabelled_stacks_cannot_be_sampled(tmp_path, write_cohort):
    csv = write_cohort(1)
    csv.write_text("iFIND_id,image,segmentation\nsub-00,images/sub-00.nii.gz,\n")
    stacks = load_stacks(csv, PreprocessConfig(), require_labels=False, progress=False)
    with pytest.raises(ValueError, match="has no segmentation"):
        training_dataset(stacks)


def test_white_noise_is_standard_normal():
    import tensorflow as tf

    from fetal_keras.data.augment import _white_noise

    noise = _white_noise(tf.constant([3, 4], tf.int64), tf.constant([50, 3, 64, 63])).numpy()
    assert noise.shape == (50, 3, 64, 63)
    assert abs(noise.mean()) < 0.01 and abs(noise.std() - 1.0) < 0.01
    assert abs(np.mean(np.abs(noise) > 1.96) - 0.05) < 0.005


def test_slabs_larger_than_the_padded_stacks_are_refused(write_cohort):
    stacks = load_stacks(write_cohort(1), PreprocessConfig(min_shape=(3, 64, 64)), progress=False)
    with pytest.raises(ValueError, match="smaller than a 3 x 128 x 128 slab"):
        training_dataset(stacks)
