"""Random smooth fields for the label-to-image generator, as stateless TensorFlow ops over a batch of slabs."""

from __future__ import annotations

import tensorflow as tf


def smooth_noise(seed: tf.Tensor, batch: tf.Tensor, channels: int, cells: int, size: int) -> tf.Tensor:
    """Smooth Gaussian noise ``[batch, channels, size, size]``, about unit variance: white noise on a
    ``cells x cells`` grid upsampled bicubically, so its features are about ``size / cells`` pixels wide."""
    coarse = tf.random.stateless_normal(tf.stack([batch * channels, cells, cells, 1]), seed)
    fine = tf.image.resize(coarse, (size, size), method="bicubic")
    return tf.reshape(fine, tf.stack([batch, channels, size, size]))


def blob_partition(seed: tf.Tensor, batch: tf.Tensor, size: int, blobs: tuple[int, int], diameter_px, roughness: float):
    """Random irregular blobs on a slab: index ``[batch, size, size]`` int32 of the topmost blob covering each
    pixel (0-based), -1 where none does.

    Each blob is an ellipse with a random centre (anywhere on the slab), diameters in ``diameter_px`` and
    orientation, whose outline is made irregular by smooth noise of relative amplitude ``roughness``; later
    blobs lie on top of earlier ones. Each slab has between ``blobs[0]`` and ``blobs[1]`` of them.
    """
    most = blobs[1]
    if most == 0:
        return -tf.ones(tf.stack([batch, size, size]), tf.int32)
    seeds = tf.random.experimental.stateless_split(seed, 6)
    shape = tf.stack([batch, most, 1, 1])
    centre_y = tf.random.stateless_uniform(shape, seeds[0], -0.1 * size, 1.1 * size)
    centre_x = tf.random.stateless_uniform(shape, seeds[1], -0.1 * size, 1.1 * size)
    radii = tf.random.stateless_uniform(tf.stack([2, batch, most, 1, 1]), seeds[2], *diameter_px) / 2.0
    angle = tf.random.stateless_uniform(shape, seeds[3], 0.0, 3.14159265)
    grid = tf.range(size, dtype=tf.float32)
    y, x = grid[None, None, :, None] - centre_y, grid[None, None, None, :] - centre_x
    along = (tf.cos(angle) * x + tf.sin(angle) * y) / radii[0]
    across = (-tf.sin(angle) * x + tf.cos(angle) * y) / radii[1]
    outline = roughness * smooth_noise(seeds[4], batch, most, 6, size)
    inside = along**2 + across**2 < (1.0 + outline) ** 2
    count = tf.random.stateless_uniform(tf.stack([batch, 1, 1, 1]), seeds[5], blobs[0], most + 1, dtype=tf.int32)
    inside &= tf.range(most)[None, :, None, None] < count
    # The topmost blob is the one with the largest index among those covering the pixel.
    ranks = tf.where(inside, tf.range(1, most + 1)[None, :, None, None], 0)
    return tf.reduce_max(ranks, axis=1) - 1


def gaussian_blur(image: tf.Tensor, sigma_px: tf.Tensor, radius: int = 4) -> tf.Tensor:
    """Blur the in-plane axes of ``image [batch, depth, y, x]`` with a separable Gaussian, one ``sigma_px``
    ``[batch]`` per slab (0: unchanged)."""
    offsets = tf.range(-radius, radius + 1, dtype=tf.float32)
    sigma = tf.maximum(sigma_px, 1e-3)[:, None]
    kernel = tf.exp(-0.5 * (offsets[None, :] / sigma) ** 2)
    kernel /= tf.reduce_sum(kernel, axis=1, keepdims=True)  # [batch, taps]
    channels_last = tf.transpose(image, (1, 2, 3, 0))  # the slabs become channels, each with its own kernel
    # Mirrored edges: zero padding would darken the border of every slab.
    padded = tf.pad(channels_last, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    taps = tf.transpose(kernel)  # [taps, batch]
    along_x = tf.nn.depthwise_conv2d(padded, taps[None, :, :, None], strides=(1, 1, 1, 1), padding="VALID")
    along_y = tf.nn.depthwise_conv2d(along_x, taps[:, None, :, None], strides=(1, 1, 1, 1), padding="VALID")
    return tf.transpose(along_y, (3, 0, 1, 2))


def round_distractors(seed: tf.Tensor, batch: tf.Tensor, size: int, count: tuple[int, int], diameter_px, rim_px):
    """Round structures of brain size on a slab of 3 slices, as sections of ellipsoids: ``(core, rim)``, each
    ``[batch, 3, size, size]`` bool, where a structure's fluid-filled core and its wall (``rim_px`` wide) are.

    Each slab has between ``count[0]`` and ``count[1]`` of them, with a random centre on the slab, diameters in
    ``diameter_px`` (aspect 0.7-1), orientation and wall width; on the slab's outer slices the section is smaller, as
    the slices cut the ellipsoid off its centre (by up to half its radius per slice).
    """
    most = count[1]
    seeds = tf.random.experimental.stateless_split(seed, 8)
    shape = tf.stack([batch, most, 1, 1, 1])
    centre_y = tf.random.stateless_uniform(shape, seeds[0], 0.0, float(size))
    centre_x = tf.random.stateless_uniform(shape, seeds[1], 0.0, float(size))
    radius = tf.random.stateless_uniform(shape, seeds[2], *diameter_px) / 2.0
    aspect = tf.random.stateless_uniform(shape, seeds[3], 0.7, 1.0)
    angle = tf.random.stateless_uniform(shape, seeds[4], 0.0, 3.14159265)
    step = tf.random.stateless_uniform(shape, seeds[5], 0.0, 0.5) * radius
    offsets = tf.constant([-1.0, 0.0, 1.0])[None, None, :, None, None] * step
    section = tf.sqrt(tf.maximum(radius**2 - offsets**2, 0.0))  # [b, most, 3, 1, 1]
    grid = tf.range(size, dtype=tf.float32)
    y, x = grid[None, None, None, :, None] - centre_y, grid[None, None, None, None, :] - centre_x
    along = tf.cos(angle) * x + tf.sin(angle) * y
    across = (-tf.sin(angle) * x + tf.cos(angle) * y) / aspect
    distance = tf.sqrt(along**2 + across**2)  # [b, most, 1, size, size]
    wall = tf.random.stateless_uniform(shape, seeds[6], *rim_px)
    drawn = tf.random.stateless_uniform(tf.stack([batch, 1, 1, 1, 1]), seeds[7], count[0], most + 1, dtype=tf.int32)
    present = tf.range(most)[None, :, None, None, None] < drawn
    core = tf.reduce_any(present & (distance < section), axis=1)
    outline = tf.reduce_any(present & (section > 0.0) & (distance < section + wall), axis=1)
    return core, outline & ~core
