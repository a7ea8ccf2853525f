"""The label-to-image generator: a slab of tissue labels becomes an image with a contrast never seen before.

One short chain of named steps, each drawing its parameters from :class:`RenderConfig` with a stateless seed,
so batch k is reproducible and a notebook can show every step (``render_steps``):

1. ``add_background_blobs``: 8-16 random non-anatomical shapes replace the maternal tissues under them (and,
   optionally, the fetal body outside the head, with many small clutter shapes on top), each with a label of its
   own, so that no background intensity or texture can stand for brain.
   Optionally (``RenderConfig.distractors``) brain-sized fluid-filled round structures with a wall follow, over
   anything but the head: two labels of their own (core, wall).
2. ``draw_contrast``: a mean per label, uniform over the intensity range (amniotic fluid as often darker as
   brighter than brain), or the realistic T2 contrast (jittered) for a minority of slabs; air stays dark. A
   distractor's core takes the mean of one of the brain's tissues (jittered), its wall the skull's.
3. ``paint_labels``: every label split into sub-classes by a smooth texture field, each with its own offset,
   plus within-label voxel noise.
4. ``gaussian_blur``: in-plane resolution loss.
5. ``normalise``: per slab, the rule deploy applies to whole stacks (z-score, or z-score over the foreground); the
   acquisition's bias field, gamma, noise and slice drop-out follow in ``fetal_keras.data.augment.intensity``, as for
   pre-rendered images.

Labels are the simulator's ``Tissue`` values (``[batch, 3, y, x]`` int32); blobs take labels ``len(Tissue)``
and up, distractors the last two. The brain mask, the training target, is not changed by any step.
"""

from __future__ import annotations

import tensorflow as tf

from fetal_keras.data.preprocess import FOREGROUND_CLIP, FOREGROUND_FRACTION
from fetal_keras.rendering.config import RenderConfig
from fetal_keras.rendering.fields import blob_partition, gaussian_blur, round_distractors, smooth_noise
from fetal_keras.simulate.tissues import BRAIN_TISSUES, T2_SIGNAL, Tissue

TISSUE_COUNT = len(Tissue)
# Blobs cover the mother; the fetus, the amniotic fluid around it and the air outside her stay as they are.
_MATERNAL = [t for t in Tissue if Tissue.AIR < t < Tissue.AMNIOTIC_FLUID or t == Tissue.MATERNAL_FLUID]
# With ``blobs_over_fetal_body`` they also cover the fetus outside its head (scalp, skull and brain stay).
_FETAL_BODY = [Tissue.FETAL_SOFT_TISSUE, Tissue.FETAL_LUNG, Tissue.FETAL_LIVER, Tissue.FETAL_FLUID, Tissue.FETAL_BONE]
# Distractors never cover the head; their core looks like one of these brain tissues.
_HEAD = [*BRAIN_TISSUES, Tissue.SKULL, Tissue.SCALP]
_BRAIN_LOOKS = [Tissue.WHITE_MATTER, Tissue.CORTEX, Tissue.DEEP_GREY, Tissue.VENTRICLE, Tissue.EXTRA_AXIAL_CSF]


def label_count(config: RenderConfig) -> int:
    """Number of labels a rendered slab can hold: the tissues, one per blob and one per clutter shape, and two
    for distractors (core and wall) when there are any."""
    return TISSUE_COUNT + config.blobs[1] + config.clutter_blobs[1] + (2 if config.distractors[1] else 0)


def distractor_labels(config: RenderConfig) -> tuple[int, int]:
    """The labels of distractor cores and walls: the last two of ``label_count``."""
    count = label_count(config)
    return count - 2, count - 1


def add_distractors(labels: tf.Tensor, tissue: tf.Tensor, seed: tf.Tensor, config: RenderConfig) -> tf.Tensor:
    """``labels`` with ``config.distractors`` round structures (``fields.round_distractors``) over anything but the
    head's tissues (``tissue``: the labels before any shape was added)."""
    if config.distractors[1] == 0:
        return labels
    core, rim = round_distractors(
        seed,
        tf.shape(labels)[0],
        labels.shape[-1],
        config.distractors,
        config.distractor_size_px,
        config.distractor_rim_px,
    )
    outside_head = ~tf.reduce_any(tf.equal(tissue[..., None], tf.constant(_HEAD, tf.int32)), axis=-1)
    core_label, rim_label = distractor_labels(config)
    labels = tf.where(core & outside_head, core_label, labels)
    return tf.where(rim & outside_head, rim_label, labels)


def add_background_blobs(tissue: tf.Tensor, seed: tf.Tensor, config: RenderConfig) -> tf.Tensor:
    """Tissue labels ``[b, 3, y, x]`` with blobs, then clutter shapes, over the background (the same shapes on all
    3 slices): the maternal tissues, and the fetal body outside the head if ``config.blobs_over_fetal_body``."""
    size, batch = tissue.shape[-1], tf.shape(tissue)[0]
    seeds = tf.random.experimental.stateless_split(seed, 2)
    covered = _MATERNAL + (_FETAL_BODY if config.blobs_over_fetal_body else [])
    background = tf.reduce_any(tf.equal(tissue[..., None], tf.constant(covered, tf.int32)), axis=-1)
    labels = tissue
    first_label = TISSUE_COUNT
    for shapes, size_px, shape_seed in (
        (config.blobs, config.blob_size_px, seed),  # the first set keeps the seed it always had
        (config.clutter_blobs, config.clutter_size_px, seeds[1]),
    ):
        if shapes[1] == 0:
            continue
        index = blob_partition(shape_seed, batch, size, shapes, size_px, config.blob_roughness)[:, None]
        labels = tf.where(background & (index >= 0), first_label + index, labels)
        first_label += shapes[1]
    return labels


def draw_contrast(seed: tf.Tensor, batch: tf.Tensor, config: RenderConfig) -> tf.Tensor:
    """Mean intensity of every label for each slab, ``[b, labels]``."""
    seeds = tf.random.experimental.stateless_split(seed, 4)
    labels = label_count(config)
    random_means = tf.random.stateless_uniform(tf.stack([batch, labels]), seeds[0], *config.mean_range)
    t2 = tf.constant([T2_SIGNAL[tissue] for tissue in Tissue], tf.float32)
    jitter = tf.exp(tf.random.stateless_normal(tf.stack([batch, TISSUE_COUNT]), seeds[1]) * config.t2_jitter)
    t2_means = tf.concat([t2[None] * jitter, random_means[:, TISSUE_COUNT:]], axis=1)  # blobs stay random
    use_t2 = tf.random.stateless_uniform(tf.stack([batch, 1]), seeds[2]) < config.t2_probability
    means = tf.where(use_t2, t2_means, random_means)
    air = tf.random.stateless_uniform(tf.stack([batch, 1]), seeds[3], 0.0, config.air_max)
    means = tf.concat([air, means[:, 1:]], axis=1)  # Tissue.AIR is label 0
    if config.distractors[1] == 0:
        return means
    looks = tf.random.experimental.stateless_split(tf.random.experimental.stateless_fold_in(seed, 5), 2)
    brain = tf.gather(means, _BRAIN_LOOKS, axis=1)
    chosen = tf.random.stateless_uniform(tf.stack([batch]), looks[0], 0, len(_BRAIN_LOOKS), dtype=tf.int32)
    jitter = tf.random.stateless_uniform(tf.stack([batch]), looks[1], 0.9, 1.1)
    core = tf.gather(brain, chosen, batch_dims=1) * jitter
    return tf.concat([means[:, :-2], core[:, None], means[:, Tissue.SKULL, None]], axis=1)


def paint_labels(labels: tf.Tensor, means: tf.Tensor, seed: tf.Tensor, config: RenderConfig) -> tf.Tensor:
    """Image ``[b, 3, y, x]``: each label's mean, its sub-class offset where a smooth texture field puts each
    pixel, and within-label Gaussian noise."""
    shape = tf.shape(labels)
    batch, size = shape[0], labels.shape[-1]
    seeds = tf.random.experimental.stateless_split(seed, 5)
    count, subclasses = label_count(config), config.subclasses
    texture = smooth_noise(seeds[0], batch, 1, config.texture_cells, size)
    # Equally likely sub-classes: quantiles of the (about standard normal) texture field.
    quantiles = [tf.math.ndtri(k / subclasses) for k in range(1, subclasses)]
    subclass = tf.zeros_like(texture, tf.int32)
    for quantile in quantiles:
        subclass += tf.cast(texture > quantile, tf.int32)
    subclass_sd = tf.random.stateless_uniform(tf.stack([batch, 1, 1]), seeds[1], 0.0, config.subclass_sd_max)
    offsets = tf.random.stateless_normal(tf.stack([batch, count, subclasses]), seeds[2]) * subclass_sd
    spread = tf.random.stateless_uniform(tf.stack([batch, count]), seeds[3], 0.0, config.spread_max)
    flat_labels = tf.reshape(labels, tf.stack([batch, -1]))
    flat_subclass = tf.reshape(tf.broadcast_to(subclass, shape), tf.stack([batch, -1]))
    value = tf.gather(means, flat_labels, batch_dims=1)
    value += tf.gather(
        tf.reshape(offsets, tf.stack([batch, -1])), flat_labels * subclasses + flat_subclass, batch_dims=1
    )
    noise = tf.random.stateless_normal(tf.shape(flat_labels), seeds[4]) * tf.gather(spread, flat_labels, batch_dims=1)
    return tf.reshape(value + noise, shape)


def normalise(image: tf.Tensor, method: str) -> tf.Tensor:
    """Each slab of ``image [b, ...]`` normalised as deploy normalises whole stacks
    (``fetal_keras.data.preprocess.normalise_intensity``): ``"zscore"`` over the slab, or ``"foreground"``: z-score
    over the pixels brighter than ``FOREGROUND_FRACTION`` of the slab's 99.5th percentile, clipped."""
    shape = tf.shape(image)
    flat = tf.reshape(image, tf.stack([shape[0], -1]))
    if method == "foreground":
        rank = tf.cast(tf.round(0.995 * tf.cast(tf.shape(flat)[1] - 1, tf.float32)), tf.int32)
        high = tf.gather(tf.sort(flat, axis=1), rank, axis=1)
        weight = tf.cast(flat > FOREGROUND_FRACTION * high[:, None], tf.float32)
        weight = tf.where(tf.reduce_sum(weight, axis=1, keepdims=True) >= 2.0, weight, tf.ones_like(weight))
    else:
        weight = tf.ones_like(flat)
    count = tf.reduce_sum(weight, axis=1, keepdims=True)
    mean = tf.reduce_sum(flat * weight, axis=1, keepdims=True) / count
    variance = tf.reduce_sum(weight * (flat - mean) ** 2, axis=1, keepdims=True) / count
    normalised = (flat - mean) / tf.sqrt(variance + 1e-8)
    if method == "foreground":
        normalised = tf.clip_by_value(normalised, -FOREGROUND_CLIP, FOREGROUND_CLIP)
    return tf.reshape(normalised, shape)


def render_steps(tissue: tf.Tensor, seed: tf.Tensor, config: RenderConfig) -> dict[str, tf.Tensor]:
    """Every intermediate of :func:`render_slabs`, by step name (for figures and tests)."""
    seeds = tf.random.experimental.stateless_split(seed, 4)
    tissue = tf.cast(tissue, tf.int32)
    labels = add_distractors(
        add_background_blobs(tissue, seeds[0], config),
        tissue,
        tf.random.experimental.stateless_fold_in(seed, 9),
        config,
    )
    means = draw_contrast(seeds[1], tf.shape(tissue)[0], config)
    painted = paint_labels(labels, means, seeds[2], config)
    sigma = tf.random.stateless_uniform(tf.shape(tissue)[:1], seeds[3], *config.blur_sigma_px)
    blurred = gaussian_blur(painted, sigma)
    return {"labels": labels, "painted": painted, "blurred": blurred, "image": normalise(blurred, config.normalisation)}


def render_slabs(tissue: tf.Tensor, seed: tf.Tensor, config: RenderConfig) -> tf.Tensor:
    """Render slabs of tissue labels ``[b, 3, y, x]`` (int) as images ``[b, 3, y, x]`` float32 with a fresh random
    contrast per slab; the same ``seed`` (stateless, ``[2]``) always gives the same images."""
    return render_steps(tissue, seed, config)["image"]
