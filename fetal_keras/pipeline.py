"""``tf.data`` pipelines of ``[3, 128, 128]`` slabs (3 adjacent slices as depth) from prepared stacks.

Stacks are decoded and preprocessed once (``fetal_keras.data.preprocess``) and held in memory as one flat float16
image tensor and one uint8 label tensor. Each batch is drawn by vectorised TensorFlow ops only: pick stacks and
slab centres (class-balanced: a fraction centred on a random brain voxel, the rest on background), compute the
augmented sampling points (``fetal_keras.data.augment``), gather image (bilinear) and labels (nearest) there, then
augment intensities. Batch ``k`` depends only on ``(seed, k)``, so datasets are reproducible whatever the
parallelism.

Modes:
- :func:`training_dataset`: endless, augmented, shuffled, batched ``(slabs [b, 3, 128, 128, 1] float32,
  labels [b, 3, 128, 128] int32)``.
- :func:`patch_dataset`: one deterministic pass of unaugmented slabs, for the patch-level "pseudo Dice".
- :func:`whole_stack_dataset`: whole unpadded stacks on their own grid, for whole-volume Dice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import tensorflow as tf

from fetal_keras.data.augment import AugmentConfig, intensity, sampling_points
from fetal_keras.data.cohort import read_cohort
from fetal_keras.data.preprocess import PreparedStack
from fetal_keras.data.splits import ensure_disjoint
from fetal_keras.data.stack_bank import StackBank, build_stack_bank
from fetal_keras.rendering.config import RenderConfig
from fetal_keras.rendering.label_to_image import render_slabs


@dataclass(frozen=True)
class SamplingConfig:
    """How slabs are drawn from stacks.

    Attributes:
        slab_size: in-plane size of a slab (pixels); its depth is always 3 slices.
        slabs_per_stack: slabs drawn from each stack per pass over the cohort (original: 20).
        brain_fraction: fraction of those centred on a brain voxel, the rest on background (original: 0.5).
        background_tries: candidates drawn for a background centre; the first not on brain is used.
    """

    slab_size: int = 128
    slabs_per_stack: int = 20
    brain_fraction: float = 0.5
    background_tries: int = 4

    def __post_init__(self):
        if not 0.0 <= self.brain_fraction <= 1.0:
            raise ValueError(f"brain_fraction must be in [0, 1], got {self.brain_fraction}.")
        if self.slabs_per_stack < 1 or self.slab_size < 1:
            raise ValueError("slabs_per_stack and slab_size must be positive.")

    @property
    def brain_slabs_per_stack(self) -> int:
        """How many of a stack's slabs are centred on brain."""
        return int(round(self.slabs_per_stack * self.brain_fraction))


def _random_index(seed: tf.Tensor, count: tf.Tensor) -> tf.Tensor:
    """Uniform integers in [0, count) (int64), one per entry of ``count``."""
    draw = tf.random.stateless_uniform(tf.shape(count), seed, dtype=tf.float64)
    return tf.minimum(tf.cast(draw * tf.cast(count, tf.float64), tf.int64), count - 1)


def _centres(bank: StackBank, stacks: tf.Tensor, on_brain: tf.Tensor, seed: tf.Tensor, tries: int) -> tf.Tensor:
    """Slab centres ``[b, 3]`` (z, y, x): a random brain voxel, or the first of ``tries`` random non-brain voxels."""
    seeds = tf.random.experimental.stateless_split(seed, 1 + tries)
    brain_counts = tf.gather(bank.brain_counts, stacks)
    brain_pick = tf.gather(
        bank.brain_voxels, tf.gather(bank.brain_offsets, stacks) + _random_index(seeds[0], tf.maximum(brain_counts, 1))
    )
    sizes, offsets = tf.gather(bank.sizes, stacks), tf.gather(bank.offsets, stacks)
    candidates = tf.stack([_random_index(seeds[1 + k], sizes) for k in range(tries)], axis=1)
    is_background = tf.equal(tf.gather(bank.labels, offsets[:, None] + candidates), 0)
    first = tf.argmax(tf.cast(is_background, tf.int32), axis=1, output_type=tf.int64)
    background_pick = tf.gather(candidates, first, batch_dims=1)
    flat = tf.where(on_brain & (brain_counts > 0), brain_pick, background_pick)
    shape = tf.gather(bank.shapes, stacks)
    plane = shape[:, 1] * shape[:, 2]
    return tf.stack([flat // plane, (flat % plane) // shape[:, 2], flat % shape[:, 2]], axis=1)


def _clamp(centres: tf.Tensor, shape: tf.Tensor, size: int) -> tf.Tensor:
    """Clamp centres so that an unrotated slab lies inside the (padded) stack, as the original did."""
    low = tf.constant([1, size // 2, size // 2], tf.int64)
    high = shape - tf.constant([2, size - size // 2, size - size // 2], tf.int64)
    return tf.clip_by_value(centres, low, high)


def _read(bank: StackBank, stacks, z, y, x, bilinear: bool = True):
    """Image (bilinear, or nearest when points are on the grid) and labels (nearest) of each slab.

    Points outside the stack take the value of its nearest edge.
    """
    shape = tf.gather(bank.shapes, stacks)[:, None, None, None, :]
    height, width = shape[..., 1], shape[..., 2]
    y = tf.clip_by_value(y, 0.0, tf.cast(height - 1, tf.float32))
    x = tf.clip_by_value(x, 0.0, tf.cast(width - 1, tf.float32))
    # The top-left neighbour stays one pixel inside, so that the other three are always valid indices.
    y0 = tf.minimum(tf.cast(y, tf.int64), height - 2)
    x0 = tf.minimum(tf.cast(x, tf.int64), width - 2)
    wy, wx = y - tf.cast(y0, tf.float32), x - tf.cast(x0, tf.float32)
    top_left = tf.gather(bank.offsets, stacks)[:, None, None, None] + (z[:, :, None, None] * height + y0) * width + x0
    below, right = tf.cast(wy >= 0.5, tf.int64) * width, tf.cast(wx >= 0.5, tf.int64)
    nearest = top_left + below + right
    labels = tf.cast(tf.gather(bank.labels, nearest), tf.int32)
    if not bilinear:
        return tf.cast(tf.gather(bank.images, nearest), tf.float32), labels

    def value(offset):
        return tf.cast(tf.gather(bank.images, top_left + offset), tf.float32)

    a, b, c, d = value(0), value(1), value(width), value(width + 1)
    top, bottom = a + wx * (b - a), c + wx * (d - c)
    return top + wy * (bottom - top), labels


def make_sampler(
    bank: StackBank, sampling: SamplingConfig, augment: AugmentConfig, seed: int, render: RenderConfig | None = None
):
    """A function ``batch indices [b] -> (slabs [b, 3, s, s, 1] float32, labels [b, 3, s, s] int32)``.

    Indices are grouped in rounds of ``slabs_per_stack * stacks``: within a round every stack gives exactly
    ``slabs_per_stack`` slabs (``brain_slabs_per_stack`` centred on brain), in an order shuffled per round.
    With ``render``, the bank's images are tissue label maps: each slab's labels are read (nearest) and rendered
    with a fresh random contrast (``fetal_keras.rendering``) before the intensity augmentation.
    """
    size = sampling.slab_size
    per_round = sampling.slabs_per_stack * bank.count
    base_seed = tf.constant([seed, 0x5EED], tf.int64)
    augmented = augment != AugmentConfig.none()
    smallest = bank.shapes.numpy().min(axis=0)
    if smallest[0] < 3 or min(smallest[1:]) < size:
        raise ValueError(
            f"A stack of the bank is smaller than a 3 x {size} x {size} slab ({tuple(smallest)} at the least): "
            "prepare the stacks with PreprocessConfig(min_shape) at least the slab size."
        )

    def sample(indices: tf.Tensor):
        indices = tf.cast(indices, tf.int64)
        round_seeds = tf.map_fn(
            lambda r: tf.random.experimental.stateless_fold_in(base_seed, r),
            indices // per_round,
            fn_output_signature=tf.TensorSpec((2,), tf.int64),
        )
        orders = tf.map_fn(
            lambda s: tf.argsort(tf.random.stateless_uniform((per_round,), s)),
            round_seeds,
            fn_output_signature=tf.TensorSpec((per_round,), tf.int32),
        )
        slots = tf.cast(tf.gather(orders, indices % per_round, batch_dims=1), tf.int64)
        stacks = slots // sampling.slabs_per_stack
        on_brain = slots % sampling.slabs_per_stack < sampling.brain_slabs_per_stack
        seeds = tf.random.experimental.stateless_split(
            tf.random.experimental.stateless_fold_in(base_seed, indices[0] + 1), 4
        )
        centres = _clamp(
            _centres(bank, stacks, on_brain, seeds[0], sampling.background_tries), tf.gather(bank.shapes, stacks), size
        )
        z, y, x = sampling_points(centres, seeds[1], augment, size)
        image, labels = _read(bank, stacks, z, y, x, bilinear=augment.moves_points and render is None)
        if render is not None:
            image = render_slabs(tf.cast(tf.round(image), tf.int32), seeds[3], render)
        if augmented:
            image = intensity(image, seeds[2], augment)
        return image[..., tf.newaxis], labels

    return sample


def _sampled(indices: tf.data.Dataset, sample) -> tf.data.Dataset:
    """Map batches of indices to slabs."""
    return indices.map(sample, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def training_dataset(
    stacks: Sequence[PreparedStack] | StackBank,
    batch_size: int = 10,
    sampling: SamplingConfig | None = None,
    augment: AugmentConfig | None = None,
    seed: int = 42,
    first_batch: int = 0,
    render: RenderConfig | None = None,
) -> tf.data.Dataset:
    """Endless dataset of augmented, class-balanced batches (original: batch 10).

    ``stacks`` is a list of prepared stacks or, for large cohorts, a bank from ``stack_bank.load_stack_bank``;
    with ``render`` their images are tissue label maps rendered on the fly (see :func:`make_sampler`).

    Every ``slabs_per_stack * len(stacks)`` slabs form one round in which each stack gives exactly
    ``slabs_per_stack`` slabs, ``brain_slabs_per_stack`` of them centred on brain (if it has any), in an order
    shuffled over the whole round (the original needed a shuffle buffer of 64 because it read stack by stack).
    Batches are drawn whole, with vectorised TensorFlow ops; batch ``k`` depends only on ``seed`` and ``k``, so a
    resumed run continues the same sequence by starting at ``first_batch`` (nothing is computed for the skipped ones).
    """
    sampling = sampling or SamplingConfig()
    bank = stacks if isinstance(stacks, StackBank) else build_stack_bank(stacks)
    sample = make_sampler(bank, sampling, augment or AugmentConfig(), seed, render)
    return _sampled(tf.data.Dataset.counter(start=first_batch * batch_size).batch(batch_size), sample)


def patch_dataset(
    stacks: Sequence[PreparedStack], batch_size: int = 10, sampling: SamplingConfig | None = None, seed: int = 0
) -> tf.data.Dataset:
    """One deterministic pass of unaugmented slabs (``slabs_per_stack`` per stack), for patch-level Dice."""
    sampling = sampling or SamplingConfig()
    sample = make_sampler(build_stack_bank(stacks), sampling, AugmentConfig.none(), seed)
    return _sampled(tf.data.Dataset.range(sampling.slabs_per_stack * len(stacks)).batch(batch_size), sample)


def whole_stack_dataset(stacks: Sequence[PreparedStack]) -> tf.data.Dataset:
    """Whole stacks without padding, on their own grid: ``(image [z, y, x, 1] float32, labels [z, y, x] int32, index)``.

    ``index`` points into ``stacks``, whose ``geometry`` is the grid to write predictions on.
    """

    def generate():
        for index, stack in enumerate(stacks):
            labels = stack.unpadded_labels
            labels = np.zeros(stack.unpadded_image.shape, np.int32) if labels is None else labels.astype(np.int32)
            yield stack.unpadded_image.astype(np.float32)[..., None], labels, np.int32(index)

    signature = (
        tf.TensorSpec((None, None, None, 1), tf.float32),
        tf.TensorSpec((None, None, None), tf.int32),
        tf.TensorSpec((), tf.int32),
    )
    return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(1)


def read_train_and_validation(train_csv, val_csv) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the training and validation cohorts and refuse them if they share a stack, subject or image file."""
    train, validation = read_cohort(train_csv, True), read_cohort(val_csv, True)
    ensure_disjoint({f"train ({train_csv})": train, f"validation ({val_csv})": validation})
    return train, validation
