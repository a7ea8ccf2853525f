import re

import keras
import numpy as np
import pytest
from keras import layers

from fetal_keras.models.networks import BilinearUpsamplingKernel, build_model, flops_per_slab, total_stride

DEFAULT_NAME = re.compile(
    r"^(conv3d|conv3d_transpose|batch_normalization|re_lu|add|concatenate|max_pooling3d|activation)(_\d+)?$"
)


@pytest.fixture(scope="module")
def fcn():
    return build_model("fetal_fcn")


@pytest.fixture(scope="module")
def unet():
    return build_model("unet")


def _trainable(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def test_fetal_fcn_reproduces_the_original_size(fcn):
    assert _trainable(fcn) == pytest.approx(0.72e6, rel=0.01)
    assert total_stride(fcn) == 8
    assert [layer.kernel_size for layer in fcn.layers if layer.name.endswith("unit0_conv")] == [
        (5, 5, 5),
        (5, 5, 5),
        (5, 5, 5),
        (3, 3, 3),
        (1, 1, 1),
    ]
    assert all(layer.max_value == 6.0 for layer in fcn.layers if isinstance(layer, layers.ReLU))


def test_fetal_fcn_upsampling_is_fixed_bilinear(fcn):
    upsampling = [layer for layer in fcn.layers if isinstance(layer, layers.Conv3DTranspose)]
    assert len(upsampling) == 3
    for layer in upsampling:
        assert not layer.trainable and not layer.trainable_weights
        kernel = layer.kernel.numpy()
        np.testing.assert_allclose(kernel[0, :, :, 0, 0], np.outer([0.25, 0.75, 0.75, 0.25], [0.25, 0.75, 0.75, 0.25]))
        assert np.all(kernel[0, :, :, 0, 1] == 0)


def test_bilinear_kernel_upsamples_a_constant_to_a_constant():
    layer = layers.Conv3DTranspose(
        1, (1, 4, 4), strides=(1, 2, 2), padding="same", use_bias=False, kernel_initializer=BilinearUpsamplingKernel()
    )
    upsampled = layer(np.ones((1, 1, 8, 8, 1), "float32")).numpy()
    np.testing.assert_allclose(upsampled[0, 0, 2:-2, 2:-2, 0], 1.0)


@pytest.mark.parametrize("preset", ["unet", "fetal_fcn"])
@pytest.mark.parametrize("in_plane", [(128, 128), (96, 200), (8, 16)])
def test_any_in_plane_size_divisible_by_the_stride(preset, in_plane, fcn, unet):
    model = {"unet": unet, "fetal_fcn": fcn}[preset]
    probabilities = model(np.random.default_rng(0).normal(size=(2, 3, *in_plane, 1)).astype("float32")).numpy()
    assert probabilities.shape == (2, 3, *in_plane, 2)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)


def _producer(layer):
    """The layer whose output is this layer's input."""
    return layer.input._keras_history.operation


@pytest.mark.parametrize("preset", ["unet", "fetal_fcn"])
def test_every_layer_named_and_every_relu_after_batch_norm(preset, fcn, unet):
    model = {"unet": unet, "fetal_fcn": fcn}[preset]
    assert not [layer.name for layer in model.layers if DEFAULT_NAME.match(layer.name)]
    relus = [layer for layer in model.layers if isinstance(layer, layers.ReLU)]
    assert relus and all(isinstance(_producer(relu), layers.BatchNormalization) for relu in relus)
    norms = [layer for layer in model.layers if isinstance(layer, layers.BatchNormalization)]
    assert all(isinstance(_producer(bn), layers.Conv3D) and not _producer(bn).use_bias for bn in norms)


def test_unet_is_several_times_cheaper_per_slab(fcn, unet):
    assert flops_per_slab(fcn) > 4 * flops_per_slab(unet)
    assert flops_per_slab(fcn) == pytest.approx(21e9, rel=0.05)


def test_saved_keras_file_reloads_in_safe_mode_with_the_same_outputs(tmp_path, fcn):
    fcn.save(tmp_path / "fcn.keras")
    reloaded = keras.saving.load_model(tmp_path / "fcn.keras", safe_mode=True)
    slab = np.random.default_rng(1).normal(size=(1, 3, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(reloaded(slab).numpy(), fcn(slab).numpy(), atol=1e-6)


def test_unknown_preset_is_rejected():
    with pytest.raises(ValueError, match="Unknown model preset 'resnet'"):
        build_model("resnet")
