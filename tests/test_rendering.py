"""The label-to-image generator: reproducible per seed, anatomy and brain left in place, random contrasts."""

import numpy as np
import pytest
import tensorflow as tf

from fetal_keras.rendering.config import RenderConfig
from fetal_keras.rendering.fields import blob_partition, gaussian_blur
from fetal_keras.rendering.label_to_image import (
    TISSUE_COUNT,
    distractor_labels,
    draw_contrast,
    render_slabs,
    render_steps,
)
from fetal_keras.simulate.tissues import BRAIN_TISSUES, Tissue

SIZE = 64


def _tissue_slabs(batch: int = 6) -> tf.Tensor:
    """A head (white matter in cortex, in fluid) in front of maternal muscle and fat, ``[b, 3, 64, 64]``."""
    y, x = np.mgrid[:SIZE, :SIZE]
    radius = np.hypot(y - 32, x - 32)
    slab = np.full((SIZE, SIZE), Tissue.MATERNAL_FAT)
    slab[x > 20] = Tissue.MATERNAL_MUSCLE
    slab[radius < 26] = Tissue.AMNIOTIC_FLUID
    slab[radius < 14] = Tissue.CORTEX
    slab[radius < 11] = Tissue.WHITE_MATTER
    return tf.constant(np.broadcast_to(slab, (batch, 3, SIZE, SIZE)).astype(np.int32))


def _seed(a: int) -> tf.Tensor:
    return tf.constant([a, 7], tf.int64)


def test_the_same_seed_renders_the_same_slabs_and_another_seed_others():
    tissue, config = _tissue_slabs(), RenderConfig()
    first = render_slabs(tissue, _seed(1), config).numpy()
    np.testing.assert_array_equal(first, render_slabs(tissue, _seed(1), config).numpy())
    assert not np.allclose(first, render_slabs(tissue, _seed(2), config).numpy())
    assert first.shape == (6, 3, SIZE, SIZE) and np.isfinite(first).all()
    np.testing.assert_allclose(first.mean(axis=(1, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(first.std(axis=(1, 2, 3)), 1.0, atol=1e-3)


def test_blobs_replace_only_the_maternal_background():
    tissue = _tissue_slabs()
    labels = render_steps(tissue, _seed(3), RenderConfig())["labels"].numpy()
    fetal_or_fluid = tissue.numpy() >= Tissue.AMNIOTIC_FLUID
    np.testing.assert_array_equal(labels[fetal_or_fluid], tissue.numpy()[fetal_or_fluid])
    maternal_labels = labels[~fetal_or_fluid]
    assert (maternal_labels >= TISSUE_COUNT).mean() > 0.2  # blobs cover a good part of the background
    assert (labels[:, 0] == labels[:, 2]).all()  # the same blobs through the slab


def test_body_surroundings_cover_the_fetal_body_with_blobs_and_clutter_but_never_the_head():
    config = RenderConfig(blobs_over_fetal_body=True, clutter_blobs=(10, 30))
    tissue = _tissue_slabs().numpy()
    tissue[:, :, :, :12] = Tissue.FETAL_SOFT_TISSUE  # a limb beside the head
    labels = render_steps(tf.constant(tissue), _seed(3), config)["labels"].numpy()
    head_or_fluid = tissue >= Tissue.SCALP
    head_or_fluid |= tissue == Tissue.AMNIOTIC_FLUID
    np.testing.assert_array_equal(labels[head_or_fluid], tissue[head_or_fluid])
    body = tissue == Tissue.FETAL_SOFT_TISSUE
    assert (labels[body] >= TISSUE_COUNT).mean() > 0.2
    clutter = labels >= TISSUE_COUNT + config.blobs[1]
    assert clutter.any() and labels.max() < TISSUE_COUNT + config.blobs[1] + config.clutter_blobs[1]
    image = render_slabs(tf.constant(tissue), _seed(3), config).numpy()
    assert np.isfinite(image).all()
    with pytest.raises(ValueError, match="clutter_blobs"):
        RenderConfig(clutter_blobs=(5, 2))


def test_distractors_are_round_brain_like_structures_beside_the_head_never_over_it():
    tissue = _tissue_slabs(batch=16)
    config = RenderConfig(distractors=(1, 3), distractor_size_px=(14.0, 30.0), distractor_rim_px=(1.0, 3.0))
    labels = render_steps(tissue, _seed(3), config)["labels"].numpy()
    core, wall = distractor_labels(config)
    head = np.isin(tissue.numpy(), [*BRAIN_TISSUES, Tissue.SKULL, Tissue.SCALP])
    np.testing.assert_array_equal(labels[head], tissue.numpy()[head])
    holds_one = (labels == core).any(axis=(1, 2, 3))
    assert holds_one.mean() >= 0.75 and (labels == wall).any()
    # Sections of an ellipsoid: the middle slice's section is never smaller than the outer slices'.
    areas = (labels == core).sum(axis=(2, 3))
    assert (areas[:, 1] >= np.minimum(areas[:, 0], areas[:, 2])).all()

    means = draw_contrast(_seed(4), tf.constant(64), config).numpy()
    brain_looks = means[:, [Tissue.WHITE_MATTER, Tissue.CORTEX, Tissue.DEEP_GREY, Tissue.VENTRICLE]]
    brain_looks = np.concatenate([brain_looks, means[:, [Tissue.EXTRA_AXIAL_CSF]]], axis=1)
    ratio = means[:, core, None] / np.maximum(brain_looks, 1e-6)
    assert ((ratio >= 0.9 - 1e-6) & (ratio <= 1.1 + 1e-6)).any(axis=1).all(), "each core looks like a brain tissue"
    np.testing.assert_array_equal(means[:, wall], means[:, Tissue.SKULL])
    assert np.unique(np.round(means[:, core], 3)).size > 32, "a new look per slab"


def test_blob_count_and_size_follow_the_config():
    index = blob_partition(_seed(4), tf.constant(20), 128, (3, 5), (20.0, 40.0), 0.0).numpy()
    assert index.min() >= -1 and index.max() <= 4
    counts = [len(np.unique(slab[slab >= 0])) for slab in index]
    assert max(counts) <= 5 and np.mean(counts) >= 2
    assert (blob_partition(_seed(4), tf.constant(2), 32, (0, 0), (20.0, 40.0), 0.3).numpy() == -1).all()


def test_a_flat_rendering_is_one_intensity_per_label_where_the_labels_are():
    """Without texture, noise and blur, every label region is one intensity: the image is the label map recoloured."""
    config = RenderConfig(spread_max=0.0, subclass_sd_max=0.0, blur_sigma_px=(0.0, 0.0), blobs=(0, 0))
    tissue = _tissue_slabs(40)
    image = render_slabs(tissue, _seed(5), config).numpy()
    labels = tissue.numpy()
    for value in np.unique(labels):
        per_slab_spread = np.array([image[b][labels[b] == value].std() for b in range(len(image))])
        assert per_slab_spread.max() < 1e-4
    brain = np.isin(labels, [int(t) for t in BRAIN_TISSUES])
    fluid_brighter = [image[b][labels[b] == Tissue.AMNIOTIC_FLUID][0] > image[b][brain[b]].mean() for b in range(40)]
    assert 5 < sum(fluid_brighter) < 35  # fluid is sometimes brighter, sometimes darker than brain


def test_t2_slabs_keep_the_t2_order_of_tissues():
    config = RenderConfig(t2_probability=1.0, spread_max=0.0, subclass_sd_max=0.0, blur_sigma_px=(0.0, 0.0))
    tissue = _tissue_slabs()
    image = render_slabs(tissue, _seed(6), config).numpy()
    labels = tissue.numpy()
    for b in range(len(image)):
        assert image[b][labels[b] == Tissue.AMNIOTIC_FLUID].mean() > image[b][labels[b] == Tissue.WHITE_MATTER].mean()
        assert image[b][labels[b] == Tissue.WHITE_MATTER].mean() > image[b][labels[b] == Tissue.CORTEX].mean()


def test_blur_keeps_a_constant_image_and_smooths_an_edge():
    image = tf.constant(np.broadcast_to((np.arange(32) >= 16).astype(np.float32), (2, 3, 32, 32)).copy())
    blurred = gaussian_blur(image, tf.constant([0.0, 1.5])).numpy()
    np.testing.assert_allclose(blurred[0], image.numpy()[0], atol=1e-5)
    assert 0.05 < blurred[1, 0, 0, 15] < 0.5 < blurred[1, 0, 0, 16] < 0.95
    np.testing.assert_allclose(gaussian_blur(tf.ones((1, 3, 16, 16)), tf.constant([2.0])).numpy(), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "changes",
    [
        {"t2_probability": 1.5},
        {"blobs": (5, 2)},
        {"blob_size_px": (0.0, 10.0)},
        {"subclasses": 0},
        {"blur_sigma_px": (2.0, 1.0)},
    ],
)
def test_invalid_render_ranges_are_refused(changes):
    with pytest.raises(ValueError):
        RenderConfig(**changes)


def test_air_stays_dark_and_foreground_normalisation_matches_deploys():
    from fetal_keras.data.preprocess import foreground_zscore

    tissue = _tissue_slabs(8).numpy()
    tissue[:, :, :, :6] = Tissue.AIR  # air at the edge of the field of view
    steps = render_steps(tf.constant(tissue), _seed(8), RenderConfig(normalisation="foreground"))
    painted = steps["painted"].numpy()
    assert painted[tissue == Tissue.AIR].mean() < 0.1 < painted[tissue != Tissue.AIR].mean()
    blurred, image = steps["blurred"].numpy(), steps["image"].numpy()
    for b in range(len(image)):
        np.testing.assert_allclose(image[b], foreground_zscore(blurred[b]), atol=0.05)
