"""Whole-stack inference with a slab model, shared by validation callbacks and deploy.

Fully convolutional: each slab is 3 adjacent whole slices (padded in-plane to the network's stride multiple and
cropped back), one slab per slice, and every slice's brain probability is the mean over the (up to 3) slabs that
contain it. Slices beyond the first and last are replicated to fill the edge slabs but never predicted. With
``slab_step=3`` the slabs tile the stack instead (about a third of the network evaluations; every slice predicted
once, from one slab, the last slab overlapping its neighbour when the depth is not a multiple of 3).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from fetal_keras.models.networks import total_stride

# One compiled inference function per Keras model, for any batch and slice size (traced once: eager layer-by-layer
# calls took about twice as long for the small networks of a pair).
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SLABS = tf.TensorSpec([None, 3, None, None, 1], tf.float32)


def _inference_function(model):
    """``model``'s inference as a compiled function of ``[b, 3, y, x, 1]`` slabs (other predictors as they are)."""
    if not isinstance(model, keras.Model):
        return lambda slabs: model(slabs, training=False)
    function = _COMPILED.get(model)
    if function is None:
        reference = weakref.ref(model)  # the function must not keep the model alive
        function = tf.function(lambda slabs: reference()(slabs, training=False), input_signature=[_SLABS])
        _COMPILED[model] = function
    return function


@dataclass(frozen=True)
class AveragedPredictor:
    """Several slab models deployed as one: each slab's brain probability is the mean of theirs, equal or weighted
    (e.g. a fine-tuned model with the packaged one it started from, so that a few labelled stacks cannot pull the
    prediction far from what the many simulated ones taught). The models must share their preprocessing; slabs are
    padded to a multiple of every model's stride."""

    members: tuple
    # Each model's weight in the mean (normalised to sum to 1); None: equal weights.
    weights: tuple[float, ...] | None = None

    def __post_init__(self):
        if not self.members:
            raise ValueError("an averaged predictor needs at least one model.")
        if self.weights is not None:
            if len(self.weights) != len(self.members) or min(self.weights) < 0 or sum(self.weights) <= 0:
                raise ValueError(
                    f"an averaged predictor needs one weight >= 0 per model, not all 0: {len(self.members)} models, "
                    f"weights {self.weights}."
                )
            object.__setattr__(self, "weights", tuple(float(w) / sum(self.weights) for w in self.weights))

    @property
    def stride(self) -> int:
        """The least multiple of the members' in-plane strides."""
        return math.lcm(*(model_stride(member) for member in self.members))

    def __call__(self, slabs, training: bool = False):
        outputs = [keras.ops.convert_to_numpy(_inference_function(member)(slabs)) for member in self.members]
        return np.average(outputs, axis=0, weights=self.weights)


def model_stride(model) -> int:
    """The in-plane multiple ``model``'s input sizes must have: its ``stride`` attribute, or its pooling strides."""
    return model.stride if hasattr(model, "stride") else total_stride(model)


def pad_in_plane(image: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad ``[z, y, x]`` at the bottom/right with its minimum so y and x are multiples of ``multiple``."""
    height, width = image.shape[1:]
    padded_height, padded_width = -(-height // multiple) * multiple, -(-width // multiple) * multiple
    padding = ((0, 0), (0, padded_height - height), (0, padded_width - width))
    return np.pad(image, padding, constant_values=float(image.min())), (height, width)


def slab_centres(depth: int, slab_step: int = 1) -> np.ndarray:
    """Centre slice of every slab for a stack of ``depth`` slices: each slice (step 1) or tiles of 3 (step 3)."""
    if slab_step == 1:
        return np.arange(depth)
    if slab_step != 3:
        raise ValueError(f"slab_step must be 1 (every slice) or 3 (tiling slabs), not {slab_step}")
    return np.unique(np.concatenate([np.arange(1, depth - 1, 3), [max(depth - 2, 0)]]))


def slab_slices(depth: int) -> np.ndarray:
    """``[z, 3]``: the slices of the slab centred on each slice of a ``depth``-slice stack, edge slices repeated."""
    return np.clip(np.arange(depth)[:, None] + np.arange(-1, 2)[None, :], 0, depth - 1)


def predict_brain_probability(model, image: np.ndarray, batch_size: int = 4, slab_step: int = 1) -> np.ndarray:
    """Brain probability of every voxel of a whitened stack.

    Args:
        model: a slab model (``[b, 3, y, x, 1]`` -> ``[b, 3, y, x, 2]`` softmax): a Keras model, or any callable
            with a ``stride`` attribute (e.g. ``fetal_keras.deploy.loading.SavedModelPredictor``).
        image: ``[z, y, x]`` whitened stack (as ``fetal_keras.data.preprocess`` prepares it), any size.
        batch_size: slabs per forward pass.
        slab_step: 1 (a slab around every slice, averaged) or 3 (non-overlapping slabs, about 3x faster).

    Returns:
        ``[z, y, x]`` float32 probabilities in [0, 1].
    """
    centres_of_slabs = slab_centres(image.shape[0], slab_step)
    stride = model_stride(model)
    padded, (height, width) = pad_in_plane(image.astype(np.float32), stride)
    depth = padded.shape[0]
    index = slab_slices(depth)
    total = np.zeros(padded.shape, np.float32)
    count = np.zeros(depth, np.float32)
    infer = _inference_function(model)
    for start in range(0, len(centres_of_slabs), batch_size):
        centres = centres_of_slabs[start : start + batch_size]
        slabs = padded[index[centres]][..., None]
        # A direct call, not predict_on_batch: under a distribution strategy that pads batches to the replicas.
        probabilities = keras.ops.convert_to_numpy(infer(slabs))[..., 1]
        for centre, slab in zip(centres, probabilities, strict=True):
            for position, slice_index in enumerate(range(centre - 1, centre + 2)):
                if 0 <= slice_index < depth:
                    total[slice_index] += slab[position]
                    count[slice_index] += 1
    return (total / count[:, None, None])[:, :height, :width]


def predict_brain_mask(model, image: np.ndarray, batch_size: int = 4) -> np.ndarray:
    """Binary brain mask ``[z, y, x]`` uint8 (probability >= 0.5) of a whitened stack."""
    return (predict_brain_probability(model, image, batch_size) >= 0.5).astype(np.uint8)


def predict_sliding_window(
    model,
    image: np.ndarray,
    window: tuple[int, int, int] = (3, 128, 128),
    stride: tuple[int, int, int] = (1, 64, 64),
    batch_size: int = 16,
) -> np.ndarray:
    """The original deploy scheme: ``[3, 128, 128]`` windows every ``(1, 64, 64)`` voxels, probabilities averaged.

    Kept for comparison with :func:`predict_brain_probability` (several times more network evaluations). The stack is
    padded with its minimum to at least one window and cropped back.

    Returns:
        ``[z, y, x]`` float32 brain probabilities.
    """
    shape = image.shape
    padding = [(0, max(w - n, 0)) for n, w in zip(shape, window, strict=True)]
    padded = np.pad(image.astype(np.float32), padding, constant_values=float(image.min()))
    starts = [
        sorted(set(list(range(0, n - w + 1, s)) + [n - w]))
        for n, w, s in zip(padded.shape, window, stride, strict=True)
    ]
    corners = [(z, y, x) for z in starts[0] for y in starts[1] for x in starts[2]]
    total = np.zeros(padded.shape, np.float32)
    count = np.zeros(padded.shape, np.float32)
    for first in range(0, len(corners), batch_size):
        batch = corners[first : first + batch_size]
        slabs = np.stack([padded[z : z + window[0], y : y + window[1], x : x + window[2]] for z, y, x in batch])
        probabilities = keras.ops.convert_to_numpy(model(slabs[..., None], training=False))[..., 1]
        for (z, y, x), probability in zip(batch, probabilities, strict=True):
            total[z : z + window[0], y : y + window[1], x : x + window[2]] += probability
            count[z : z + window[0], y : y + window[1], x : x + window[2]] += 1
    return (total / count)[: shape[0], : shape[1], : shape[2]]
