"""Batch-norm statistics re-estimated on the stack being masked (AdaBN, Li et al. 2016): a cheap test-time
adaptation to a scanner or contrast the training never saw.

Every batch normalisation of a trained model normalises with the mean and variance it saw in training (simulated
stacks here). Within :func:`stack_statistics`, the model normalises with those of the stack being masked instead:
one forward pass over the stack's tiling slabs in training mode, with the moving-average momentum at 0, sets each
layer's statistics to the stack's; the model's own statistics are restored afterwards, whatever happens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras
import numpy as np

from fetal_keras.deploy.inference import AveragedPredictor, pad_in_plane, slab_centres, slab_slices
from fetal_keras.models.networks import total_stride


def _batch_norms(model) -> list[keras.layers.BatchNormalization]:
    if not isinstance(model, keras.Model):
        raise ValueError(
            "Re-estimating batch-norm statistics on a stack needs a Keras model (a .keras file, a run folder or a "
            f"packaged model), not {type(model).__name__}: an exported SavedModel has its statistics frozen in."
        )
    return [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]


@contextlib.contextmanager
def stack_statistics(model, image: np.ndarray) -> Iterator[None]:
    """Within the block, ``model``'s batch normalisations use the mean and variance of the whitened stack ``image``
    (``[z, y, x]``), measured over its tiling slabs (every slice once).

    An ``AveragedPredictor``'s models each use the stack's statistics.

    Raises:
        ValueError: if ``model`` is not a Keras model (e.g. a SavedModel predictor).
    """
    if isinstance(model, AveragedPredictor):
        with contextlib.ExitStack() as stack:
            for member in model.members:
                stack.enter_context(stack_statistics(member, image))
            yield
        return
    layers = _batch_norms(model)
    saved = [(layer.momentum, [weight.numpy() for weight in layer.non_trainable_weights]) for layer in layers]
    padded, _ = pad_in_plane(image.astype(np.float32), total_stride(model))
    index = slab_slices(padded.shape[0])[slab_centres(padded.shape[0], 3)]
    try:
        for layer in layers:
            layer.momentum = 0.0
        model(padded[index][..., None], training=True)
        yield
    finally:
        for layer, (momentum, weights) in zip(layers, saved, strict=True):
            layer.momentum = momentum
            for variable, value in zip(layer.non_trainable_weights, weights, strict=True):
                variable.assign(value)
