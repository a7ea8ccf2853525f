"""Batch-norm statistics re-estimated on the stack being masked (fetal_keras.deploy.stack_batch_norm)."""

import keras
import numpy as np
import pytest
from conftest import ThresholdPredictor

from fetal_keras.deploy.inference import AveragedPredictor
from fetal_keras.deploy.predict import PredictOptions, stack_probability
from fetal_keras.deploy.stack_batch_norm import stack_statistics
from fetal_keras.models.networks import build_model


def _statistics(model) -> list[np.ndarray]:
    return [weight.numpy().copy() for weight in model.non_trainable_weights]


def test_the_stack_sets_every_batch_norm_and_the_model_gets_its_own_back():
    model = build_model("unet", base_filters=2)
    before = _statistics(model)
    image = np.random.default_rng(0).normal(5.0, 3.0, (7, 24, 24)).astype(np.float32)
    first = model.get_layer("down0_a_bn")
    with stack_statistics(model, image):
        # The first batch norm now holds the mean of its input over the stack's slabs (the first convolution of the
        # stack), not its initial 0.
        assert np.abs(first.moving_mean.numpy()).max() > 1e-3
        assert first.momentum == 0.0
    assert first.momentum == pytest.approx(0.9)
    assert all(np.array_equal(a, b) for a, b in zip(before, _statistics(model), strict=True))


def test_inside_the_block_the_model_normalises_the_stack_with_the_stacks_own_statistics():
    """AdaBN's definition: on the stack's tiling slabs, inference inside the block equals a training-mode pass
    (batch statistics of those slabs); deploy's stack_probability uses it when asked, and only then."""
    model = build_model("unet", base_filters=2)
    image = np.random.default_rng(1).normal(4.0, 2.0, (6, 32, 32)).astype(np.float32)
    slabs = image[[[0, 1, 2], [3, 4, 5]]][..., None]
    with stack_statistics(model, image):
        inference = keras.ops.convert_to_numpy(model(slabs, training=False))
        adapted, _ = stack_probability(model, image, PredictOptions(slab_step=3))
    batch = keras.ops.convert_to_numpy(model(slabs, training=True))
    np.testing.assert_allclose(inference, batch, atol=1e-4)
    np.testing.assert_allclose(adapted, batch[..., 1].reshape(6, 32, 32), atol=1e-4)
    plain, _ = stack_probability(model, image, PredictOptions(slab_step=3))
    wired, _ = stack_probability(model, image, PredictOptions(slab_step=3, stack_batch_norm=True))
    np.testing.assert_allclose(wired, adapted, atol=1e-5)
    assert np.abs(plain - adapted).max() > 1e-3


def test_each_model_of_an_averaged_predictor_adapts_to_the_stack_and_gets_its_own_statistics_back():
    models = (build_model("unet", base_filters=2), build_model("unet", base_filters=2))
    before = [_statistics(model) for model in models]
    image = np.random.default_rng(3).normal(5.0, 3.0, (6, 24, 24)).astype(np.float32)
    with stack_statistics(AveragedPredictor(models), image):
        assert all(model.get_layer("down0_a_bn").momentum == 0.0 for model in models)
        assert all(np.abs(model.get_layer("down0_a_bn").moving_mean.numpy()).max() > 1e-3 for model in models)
    for model, statistics in zip(models, before, strict=True):
        assert all(np.array_equal(a, b) for a, b in zip(statistics, _statistics(model), strict=True))


def test_a_model_without_keras_batch_norms_to_adapt_is_refused_by_name():
    with pytest.raises(ValueError, match="Keras model"), stack_statistics(ThresholdPredictor(), np.zeros((3, 16, 16))):
        pass
