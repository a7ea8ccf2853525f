"""On-the-fly, seeded slab augmentation as TensorFlow ops, vectorised over a batch of slabs.

Geometric augmentation never resamples an image: it moves the points at which a slab is read from its stack.
Each slab gets one in-plane rotation and scaling and the original's flips along all three axes, and optionally a new
in-plane anatomy (``AugmentConfig.anatomy()``: a scale per axis, a shear and a smooth elastic deformation, as SynthSeg
varies its label maps); on top of that,
**slice-wise motion** gives each of its 3 slices its own small in-plane shift and rotation, as fetal motion
displaces every slice of a real stack independently. The image is read with bilinear and the labels with
nearest-neighbour interpolation at the same points, so they stay aligned. Intensity augmentation follows: the
original's Gaussian offset, then gamma, contrast, a smooth bias field, Gaussian noise and slice drop-out. All
randomness is stateless, from one seed per batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation ranges (pixels of the stack's grid, degrees, or whitened intensity units).

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
    axis_scale_range: tuple[float, float] = (1.0, 1.0)
    shear: float = 0.0
    elastic_px: float = 0.0

    @classmethod
    def anatomy(cls) -> AugmentConfig:
        """The default recipe plus a new in-plane anatomy for every slab: each in-plane axis scaled in
        ``axis_scale_range`` (0.75-1.3, on top of the shared scaling), a shear up to 0.15 and a smooth elastic
        displacement of about 3 pixels (standard deviation)."""
        return cls(axis_scale_range=(0.75, 1.3), shear=0.15, elastic_px=3.0)

    @classmethod
    def none(cls) -> AugmentConfig:
        """No augmentation (validation)."""
        return cls(0.0, (1.0, 1.0), 0.0, 0.0, 0.0, 0.0, 0.0, (1.0, 1.0), 0.0, 0.0, 0.0)

    @classmethod
    def original(cls) -> AugmentConfig:
        """The original recipe: Gaussian intensity offset (sigma 1) and a flip along each axis with p = 0.5."""
        return cls(0.0, (1.0, 1.0), 0.0, 0.0, 0.5, 1.0, 0.0, (1.0, 1.0), 0.0, 0.0, 0.0)

    @property
    def moves_points(self) -> bool:
        """Whether slabs are read off the voxel grid (rotation, scaling or slice motion), needing interpolation."""
        return bool(
            self.rotation_deg
            or self.scale_range != (1.0, 1.0)
            or self.slice_shift_px
            or self.slice_rotation_deg
            or self.axis_scale_range != (1.0, 1.0)
            or self.shear
            or self.elastic_px
        )


def _uniform(seed, shape, low=0.0, high=1.0):
    return tf.random.stateless_uniform(shape, seed, minval=low, maxval=high)


def _normal(seed, shape):
    return tf.random.stateless_normal(shape, seed)


def _white_noise(seed, shape: tf.Tensor) -> tf.Tensor:
    """Standard normal noise by the Box-Muller transform: twice as fast as ``stateless_normal`` on the CPU."""
    half = tf.concat([shape[:-1], [(shape[-1] + 1) // 2]], axis=0)
    uniform = tf.random.stateless_uniform(tf.concat([[2], half], axis=0), seed, minval=1e-7, maxval=1.0)
    radius, angle = tf.sqrt(-2.0 * tf.math.log(uniform[0])), (2.0 * math.pi) * uniform[1]
    return tf.concat([radius * tf.cos(angle), radius * tf.sin(angle)], axis=-1)[..., : shape[-1]]


_ELASTIC_CELLS = 4  # control points per side of the elastic displacement field


def _anatomy(seed: tf.Tensor, batch: tf.Tensor, config: AugmentConfig, v: tf.Tensor, u: tf.Tensor, size: int):
    """Per-axis scaling and shear of the slab offsets ``v, u`` ``[b, 1, size, size]``, and a smooth elastic
    displacement ``[b, 1, size, size]`` per axis (pixels): one new in-plane anatomy per slab, the same for its 3
    slices."""
    seeds = tf.random.experimental.stateless_split(tf.random.experimental.stateless_fold_in(seed, 7), 3)
    axis_scale = _uniform(seeds[0], (batch, 2, 1, 1, 1), *config.axis_scale_range)
    shear = _uniform(seeds[1], (batch, 2, 1, 1, 1), -1.0, 1.0) * config.shear
    v, u = (v + shear[:, 0] * u) / axis_scale[:, 0], (u + shear[:, 1] * v) / axis_scale[:, 1]
    coarse = _normal(seeds[2], (batch, _ELASTIC_CELLS, _ELASTIC_CELLS, 2)) * config.elastic_px
    field = tf.image.resize(coarse, (size, size), method="bicubic")  # [b, size, size, 2]
    return v, u, field[:, None, :, :, 0], field[:, None, :, :, 1]


def sampling_points(centres: tf.Tensor, seed: tf.Tensor, config: AugmentConfig, size: int):
    """Where each output pixel of each slab is read, and which slice each of its 3 slices comes from.

    Args:
        centres: ``[b, 3]`` int64 slab centres (z, y, x) in voxels.
        seed: stateless seed ``[2]``.
        config: augmentation ranges.
        size: in-plane slab size.

    Returns:
        ``(z [b, 3] int64, y [b, 3, size, size] float32, x [b, 3, size, size] float32)`` voxel coordinates.
    """
    batch = tf.shape(centres)[0]
    seeds = tf.random.experimental.stateless_split(seed, 6)
    angle = _uniform(seeds[0], (batch, 1), -1.0, 1.0) * config.rotation_deg
    angle = (angle + _normal(seeds[1], (batch, 3)) * config.slice_rotation_deg) * (math.pi / 180.0)
    scale = _uniform(seeds[2], (batch, 1), *config.scale_range)
    shift = _normal(seeds[3], (batch, 3, 2)) * config.slice_shift_px
    flips = _uniform(seeds[4], (batch, 3), 0.0, 1.0) < config.flip_probability
    sign = tf.where(flips, -1.0, 1.0)

    grid = tf.range(size, dtype=tf.float32) - float(size // 2)  # integer offsets: unrotated slabs are exact crops
    v = (grid[:, None] * tf.ones((1, size)))[None, None] * sign[:, 1, None, None, None]
    u = (tf.ones((size, 1)) * grid[None, :])[None, None] * sign[:, 2, None, None, None]
    shift_y, shift_x = shift[:, :, 0, None, None], shift[:, :, 1, None, None]
    if config.axis_scale_range != (1.0, 1.0) or config.shear or config.elastic_px:
        v, u, elastic_y, elastic_x = _anatomy(seed, batch, config, v, u, size)
        shift_y, shift_x = shift_y + elastic_y, shift_x + elastic_x
    cos = (tf.cos(angle) / scale)[..., None, None]
    sin = (tf.sin(angle) / scale)[..., None, None]
    centre = tf.cast(centres, tf.float32)
    y = centre[:, 1, None, None, None] + sin * u + cos * v + shift_y
    x = centre[:, 2, None, None, None] + cos * u - sin * v + shift_x
    depth_step = tf.where(flips[:, :1], tf.constant(-1, tf.int64), tf.constant(1, tf.int64))
    z = centres[:, :1] + depth_step * tf.range(-1, 2, dtype=tf.int64)[None, :]
    return z, y, x


def intensity(image: tf.Tensor, seed: tf.Tensor, config: AugmentConfig) -> tf.Tensor:
    """Offset, gamma, contrast, bias field, noise and slice drop-out on whitened slabs ``[b, 3, y, x]``."""
    shape = tf.shape(image)
    batch = shape[0]
    seeds = tf.random.experimental.stateless_split(seed, 8)
    per_slab = (batch, 1, 1, 1)
    floor = tf.reduce_min(image, axis=(1, 2, 3), keepdims=True)
    span = tf.maximum(tf.reduce_max(image, axis=(1, 2, 3), keepdims=True) - floor, 1e-3)
    unit = (image - floor) / span  # gamma and multiplicative effects need non-negative intensities
    gamma = tf.exp(_normal(seeds[0], per_slab) * config.gamma_log_sigma)
    # exp(gamma * log(x)) rather than tf.pow: the same values, several times faster on the CPU.
    unit = tf.exp(gamma * tf.math.log(unit + 1e-6)) * _uniform(seeds[1], per_slab, *config.contrast_range)
    y = tf.linspace(-1.0, 1.0, shape[2])[None, None, :, None]
    x = tf.linspace(-1.0, 1.0, shape[3])[None, None, None, :]
    c = tf.unstack(_normal(seeds[2], (5, batch, 1, 1, 1)) * (config.bias_amplitude / 2))
    unit *= tf.exp(c[0] * x + c[1] * y + c[2] * x * x + c[3] * y * y + c[4] * x * y)
    dropped = _uniform(seeds[3], (batch, 3, 1, 1)) < config.slice_dropout_probability
    unit *= tf.where(dropped, _uniform(seeds[4], (batch, 3, 1, 1), 0.3, 0.8), 1.0)
    image = unit * span + floor + _normal(seeds[5], per_slab) * config.offset_sigma
    noise_sigma = _uniform(seeds[6], per_slab, 0.0, config.noise_sigma_max)
    return image + _white_noise(seeds[7], shape) * noise_sigma
