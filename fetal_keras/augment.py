"""On-the-fly, seeded slab augmentation as TensorFlow ops (runs inside ``Dataset.map``, no Python on the hot path).

Geometric: one in-plane rotation and scaling per slab, plus **slice-wise motion**: each of the 3 slices gets its
own small extra in-plane shift and rotation, as fetal motion displaces every slice of a real stack independently.
Geometric transforms are applied identically to image (bilinear) and labels (nearest). Then the original's 3-axis
flips and Gaussian intensity offset, and gamma, contrast, a smooth bias field, Gaussian noise and occasional
slice intensity drop-out. Every random draw is stateless, from a per-sample seed, so a dataset is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation ranges (all in pixels of the stack's grid, degrees, or whitened intensity units).

    ``AugmentConfig.none()`` switches everything off; ``AugmentConfig.original()`` is the original recipe
    (intensity offset and 3-axis flips only).
    """

    rotation_deg: float = 180.0
    scale_range: tuple[float, float] = (0.85, 1.15)
    slice_shift_px: float = 3.0
    slice_rotation_deg: float = 4.0
    flip_probability: float = 0.5
    offset_sigma: float = 1.0
    gamma_log_sigma: float = 0.25
    contrast_range: tuple[float, float] = (0.8, 1.2)
    bias_amplitude: float = 0.3
    noise_sigma_max: float = 0.1
    slice_dropout_probability: float = 0.05

    @classmethod
    def none(cls) -> AugmentConfig:
        """No augmentation (validation)."""
        return cls(0.0, (1.0, 1.0), 0.0, 0.0, 0.0, 0.0, 0.0, (1.0, 1.0), 0.0, 0.0, 0.0)

    @classmethod
    def original(cls) -> AugmentConfig:
        """The original recipe: Gaussian intensity offset (sigma 1) and a flip along each axis with p = 0.5."""
        return cls(0.0, (1.0, 1.0), 0.0, 0.0, 0.5, 1.0, 0.0, (1.0, 1.0), 0.0, 0.0, 0.0)

    @property
    def is_geometric(self) -> bool:
        """Whether slabs are rotated, scaled or moved (and so need a margin around the output)."""
        return bool(
            self.rotation_deg or self.scale_range != (1.0, 1.0) or self.slice_shift_px or self.slice_rotation_deg
        )

    def crop_size(self, output_size: int) -> int:
        """In-plane size of the crop that any transform of an ``output_size`` slab can be read from."""
        if not self.is_geometric:
            return output_size
        half_diagonal = output_size / 2 * math.sqrt(2) / min(self.scale_range)
        return int(math.ceil(2 * (half_diagonal + 3 * self.slice_shift_px + 2)))


def _seeds(seed: tf.Tensor, count: int) -> tf.Tensor:
    """``count`` independent stateless seeds ``[count, 2]`` from one."""
    return tf.random.experimental.stateless_split(seed, num=count)


def _uniform(seed, shape=(), low=0.0, high=1.0):
    return tf.random.stateless_uniform(shape, seed, minval=low, maxval=high)


def slice_transforms(seed: tf.Tensor, config: AugmentConfig, crop: int, output: int) -> tf.Tensor:
    """Projective transforms ``[3, 8]`` (output pixel -> crop pixel) for the 3 slices of one slab."""
    seeds = _seeds(seed, 4)
    angle = _uniform(seeds[0], (), -1.0, 1.0) * config.rotation_deg
    angle += tf.random.stateless_normal((3,), seeds[1]) * config.slice_rotation_deg
    angle = angle * (math.pi / 180.0)
    scale = _uniform(seeds[2], (), *config.scale_range)
    shift = tf.random.stateless_normal((3, 2), seeds[3]) * config.slice_shift_px
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    centre_out, centre_in = (output - 1) / 2.0, (crop - 1) / 2.0
    a2 = centre_in + shift[:, 0] - (cos * centre_out - sin * centre_out)
    b2 = centre_in + shift[:, 1] - (sin * centre_out + cos * centre_out)
    zeros = tf.zeros_like(cos)
    return tf.stack([cos, -sin, a2, sin, cos, b2, zeros, zeros], axis=1)


def transform_slab(crop: tf.Tensor, transforms: tf.Tensor, output: int, interpolation: str) -> tf.Tensor:
    """Apply per-slice projective transforms to a ``[3, crop, crop]`` slab, giving ``[3, output, output]``."""
    images = crop[..., tf.newaxis]
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.constant([output, output], tf.int32),
        fill_value=tf.cast(tf.reduce_min(images), tf.float32),
        interpolation=interpolation,
        fill_mode="NEAREST",
    )
    return warped[..., 0]


def flip(image: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor, probability: float):
    """Flip image and labels ``[3, y, x]`` along each axis with ``probability`` (the original's augmentation)."""
    draws = _uniform(seed, (3,))
    for axis in range(3):
        flipped = draws[axis] < probability
        image = tf.cond(flipped, lambda image=image, axis=axis: tf.reverse(image, [axis]), lambda image=image: image)
        labels = tf.cond(
            flipped, lambda labels=labels, axis=axis: tf.reverse(labels, [axis]), lambda labels=labels: labels
        )
    return image, labels


def intensity(image: tf.Tensor, seed: tf.Tensor, config: AugmentConfig) -> tf.Tensor:
    """Offset, gamma, contrast, bias field, noise and slice drop-out on a whitened ``[3, y, x]`` slab."""
    seeds = _seeds(seed, 8)
    floor = tf.reduce_min(image)
    span = tf.maximum(tf.reduce_max(image) - floor, 1e-3)
    unit = (image - floor) / span  # gamma and multiplicative effects need non-negative intensities
    gamma = tf.exp(tf.random.stateless_normal((), seeds[0]) * config.gamma_log_sigma)
    unit = tf.pow(unit, gamma) * _uniform(seeds[1], (), *config.contrast_range)
    size = tf.shape(image)
    y = tf.linspace(-1.0, 1.0, size[1])[:, tf.newaxis]
    x = tf.linspace(-1.0, 1.0, size[2])[tf.newaxis, :]
    c = tf.random.stateless_normal((5,), seeds[2]) * config.bias_amplitude / 2
    unit *= tf.exp(c[0] * x + c[1] * y + c[2] * x * x + c[3] * y * y + c[4] * x * y)[tf.newaxis]
    dropped = _uniform(seeds[3], (3,)) < config.slice_dropout_probability
    unit *= tf.where(dropped, _uniform(seeds[4], (3,), 0.3, 0.8), 1.0)[:, tf.newaxis, tf.newaxis]
    image = unit * span + floor
    image += tf.random.stateless_normal((), seeds[5]) * config.offset_sigma
    noise_sigma = _uniform(seeds[6], (), 0.0, config.noise_sigma_max)
    return image + tf.random.stateless_normal(size, seeds[7]) * noise_sigma
