"""``tf.data`` pipelines of ``[3, 128, 128]`` slabs (3 adjacent slices as depth) from prepared stacks.

Stacks are decoded and preprocessed once (``fetal_keras.preprocess``) and held in memory as one flat float16
image tensor and one uint8 label tensor. Each training element is drawn by TensorFlow ops only: pick a stack and
a slab centre (class-balanced: a fraction centred on a random brain voxel, the rest on background), gather a crop
around it, augment (``fetal_keras.augment``). Element ``i`` depends only on ``(seed, i)``, so datasets are
reproducible whatever the parallelism.

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

from fetal_keras.augment import AugmentConfig, flip, intensity, slice_transforms, transform_slab
from fetal_keras.cohort import read_cohort
from fetal_keras.preprocess import PreparedStack
from fetal_keras.splits import ensure_disjoint


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


class StackBank:
    """Every prepared stack concatenated into flat tensors, with what is needed to index into them."""

    def __init__(self, stacks: Sequence[PreparedStack]):
        if not stacks:
            raise ValueError("No stacks to sample from.")
        missing = [stack.stack_id for stack in stacks if stack.labels is None]
        if missing:
            raise ValueError(f"Stacks without a segmentation cannot be sampled for training: {missing[:5]}")
        shapes = np.array([stack.image.shape for stack in stacks], dtype=np.int64)
        sizes = shapes.prod(axis=1)
        brain = [np.flatnonzero(stack.labels).astype(np.int64) for stack in stacks]
        self.ids = [stack.stack_id for stack in stacks]
        self.count = len(stacks)
        self.shapes = tf.constant(shapes)
        self.offsets = tf.constant(np.concatenate([[0], np.cumsum(sizes)[:-1]]))
        self.sizes = tf.constant(sizes)
        self.brain_counts = tf.constant(np.array([len(b) for b in brain], dtype=np.int64))
        self.brain_offsets = tf.constant(
            np.concatenate([[0], np.cumsum([len(b) for b in brain])[:-1]]).astype(np.int64)
        )
        self.brain_voxels = tf.constant(np.concatenate(brain))
        self.images = tf.constant(np.concatenate([stack.image.ravel() for stack in stacks]))
        self.labels = tf.constant(np.concatenate([stack.labels.ravel() for stack in stacks]))


def _random_index(seed: tf.Tensor, count: tf.Tensor, shape=()) -> tf.Tensor:
    """Uniform integers in [0, count) (int64)."""
    draw = tf.random.stateless_uniform(shape, seed, minval=0.0, maxval=1.0, dtype=tf.float64)
    return tf.minimum(tf.cast(draw * tf.cast(count, tf.float64), tf.int64), count - 1)


def _centre(bank: StackBank, stack: tf.Tensor, on_brain: tf.Tensor, seed: tf.Tensor, tries: int) -> tf.Tensor:
    """Flat index (within its stack) of a slab centre: a random brain voxel, or a random background voxel."""
    brain_seed, background_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    brain_pick = bank.brain_voxels[
        bank.brain_offsets[stack] + _random_index(brain_seed, tf.maximum(bank.brain_counts[stack], 1))
    ]
    candidates = _random_index(background_seed, bank.sizes[stack], (tries,))
    is_background = tf.equal(tf.gather(bank.labels, bank.offsets[stack] + candidates), 0)
    background_pick = candidates[tf.argmax(tf.cast(is_background, tf.int32), output_type=tf.int64)]
    use_brain = on_brain & (bank.brain_counts[stack] > 0)
    return tf.where(use_brain, brain_pick, background_pick)


def _crop(bank: StackBank, stack: tf.Tensor, centre: tf.Tensor, crop: int, slab: int):
    """Gather a ``[3, crop, crop]`` image and label region around ``centre``, edges replicated."""
    shape = bank.shapes[stack]
    depth, height, width = shape[0], shape[1], shape[2]
    z, rest = centre // (height * width), centre % (height * width)
    y, x = rest // width, rest % width
    z = tf.clip_by_value(z, 1, depth - 2)
    y = tf.clip_by_value(y, slab // 2, height - (slab - slab // 2))
    x = tf.clip_by_value(x, slab // 2, width - (slab - slab // 2))
    steps = tf.range(crop, dtype=tf.int64) - crop // 2
    zz = (z + tf.range(-1, 2, dtype=tf.int64))[:, None, None]
    yy = tf.clip_by_value(y + steps, 0, height - 1)[None, :, None]
    xx = tf.clip_by_value(x + steps, 0, width - 1)[None, None, :]
    flat = bank.offsets[stack] + (zz * height + yy) * width + xx
    return tf.gather(bank.images, flat), tf.gather(bank.labels, flat)


def make_sampler(bank: StackBank, sampling: SamplingConfig, augment: AugmentConfig, seed: int):
    """A function ``i -> (slab [3, s, s, 1] float32, labels [3, s, s] int32)`` built from TensorFlow ops."""
    slab = sampling.slab_size
    crop = augment.crop_size(slab)
    per_round = sampling.slabs_per_stack * bank.count
    base_seed = tf.constant([seed, 0x5EED], tf.int64)

    def sample(index: tf.Tensor):
        index = tf.cast(index, tf.int64)
        round_seed = tf.random.experimental.stateless_fold_in(base_seed, index // per_round)
        order = tf.argsort(tf.random.stateless_uniform((bank.count,), round_seed))
        slot = index % per_round
        stack = tf.cast(tf.gather(order, slot // sampling.slabs_per_stack), tf.int64)
        on_brain = slot % sampling.slabs_per_stack < sampling.brain_slabs_per_stack
        seeds = tf.random.experimental.stateless_split(
            tf.random.experimental.stateless_fold_in(base_seed, index + 1), 4
        )
        centre = _centre(bank, stack, on_brain, seeds[0], sampling.background_tries)
        image, labels = _crop(bank, stack, centre, crop, slab)
        image = tf.cast(image, tf.float32)
        if augment.is_geometric:
            transforms = slice_transforms(seeds[1], augment, crop, slab)
            image = transform_slab(image, transforms, slab, "BILINEAR")
            labels = transform_slab(labels, transforms, slab, "NEAREST")
        if augment.flip_probability:
            image, labels = flip(image, labels, seeds[2], augment.flip_probability)
        if augment != AugmentConfig.none():
            image = intensity(image, seeds[3], augment)
        image = tf.ensure_shape(image, (3, slab, slab))
        labels = tf.ensure_shape(tf.cast(labels, tf.int32), (3, slab, slab))
        return image[..., tf.newaxis], labels

    return sample


def training_dataset(
    stacks: Sequence[PreparedStack],
    batch_size: int = 10,
    sampling: SamplingConfig | None = None,
    augment: AugmentConfig | None = None,
    seed: int = 42,
    shuffle_buffer: int = 64,
) -> tf.data.Dataset:
    """Endless dataset of augmented, class-balanced, shuffled batches (original: batch 10, shuffle buffer 64).

    Every ``slabs_per_stack * len(stacks)`` elements form one round in which each stack gives exactly
    ``slabs_per_stack`` slabs, ``brain_slabs_per_stack`` of them centred on brain (if it has any).
    """
    sampling = sampling or SamplingConfig()
    sample = make_sampler(StackBank(stacks), sampling, augment or AugmentConfig(), seed)
    dataset = tf.data.Dataset.counter().map(sample, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if shuffle_buffer > 1:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def patch_dataset(
    stacks: Sequence[PreparedStack], batch_size: int = 10, sampling: SamplingConfig | None = None, seed: int = 0
) -> tf.data.Dataset:
    """One deterministic pass of unaugmented slabs (``slabs_per_stack`` per stack), for patch-level Dice."""
    sampling = sampling or SamplingConfig()
    sample = make_sampler(StackBank(stacks), sampling, AugmentConfig.none(), seed)
    dataset = tf.data.Dataset.range(sampling.slabs_per_stack * len(stacks))
    dataset = dataset.map(sample, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


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
