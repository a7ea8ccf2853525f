import keras
import numpy as np
import pytest

from fetal_keras.deploy.inference import (
    AveragedPredictor,
    pad_in_plane,
    predict_brain_mask,
    predict_brain_probability,
    predict_sliding_window,
    slab_centres,
)


def _threshold_model():
    """A stride-8 'model' whose brain probability is sigmoid(10 * intensity) of each slice of the slab."""
    inputs = keras.Input((3, None, None, 1))
    pooled = keras.layers.MaxPooling3D((1, 8, 8), name="pool")(inputs)
    restored = keras.layers.UpSampling3D((1, 8, 8), name="up")(pooled)
    brain = keras.layers.Activation("sigmoid")(10.0 * (inputs + 0.0 * restored))
    return keras.Model(inputs, keras.layers.Concatenate()([1.0 - brain, brain]))


def test_pad_in_plane_to_the_stride():
    padded, size = pad_in_plane(np.ones((2, 13, 17)), 8)
    assert padded.shape == (2, 16, 24) and size == (13, 17)


def test_whole_stack_prediction_keeps_the_shape_and_averages_over_slabs():
    image = np.random.default_rng(0).normal(size=(5, 21, 30)).astype(np.float32)
    probability = predict_brain_probability(_threshold_model(), image, batch_size=2)
    assert probability.shape == image.shape
    np.testing.assert_allclose(probability, 1 / (1 + np.exp(-10 * image)), atol=1e-5)
    assert predict_brain_mask(_threshold_model(), image).dtype == np.uint8


def test_stacks_of_one_or_two_slices_are_predicted():
    for depth in (1, 2):
        image = np.random.default_rng(depth).normal(size=(depth, 16, 16)).astype(np.float32)
        assert predict_brain_probability(_threshold_model(), image).shape == (depth, 16, 16)


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5, 6, 7, 22])
def test_tiling_slabs_cover_every_slice_with_a_third_of_the_slabs(depth):
    centres = slab_centres(depth, slab_step=3)
    covered = {c + offset for c in centres for offset in (-1, 0, 1)} & set(range(depth))
    assert covered == set(range(depth))
    assert len(centres) == -(-depth // 3)
    assert len(slab_centres(depth)) == depth


def test_tiling_slabs_give_the_same_probabilities_for_a_slicewise_model():
    image = np.random.default_rng(5).normal(size=(7, 24, 16)).astype(np.float32)
    every = predict_brain_probability(_threshold_model(), image)
    tiled = predict_brain_probability(_threshold_model(), image, slab_step=3)
    np.testing.assert_allclose(tiled, every, atol=1e-5)
    with pytest.raises(ValueError, match="slab_step"):
        predict_brain_probability(_threshold_model(), image, slab_step=2)


def test_sliding_window_matches_whole_slices_for_a_voxelwise_model():
    image = np.random.default_rng(3).normal(size=(4, 150, 140)).astype(np.float32)
    whole = predict_brain_probability(_threshold_model(), image)
    windows = predict_sliding_window(_threshold_model(), image, batch_size=8)
    assert windows.shape == image.shape
    np.testing.assert_allclose(windows, whole, atol=1e-5)


def test_sliding_window_pads_stacks_smaller_than_a_window():
    image = np.random.default_rng(4).normal(size=(2, 40, 50)).astype(np.float32)
    assert predict_sliding_window(_threshold_model(), image).shape == (2, 40, 50)


def test_an_averaged_predictor_gives_the_mean_of_its_models_on_a_stride_they_all_accept():
    def pooled(stride: int, gain: float) -> keras.Model:
        inputs = keras.Input((3, None, None, 1))
        restored = keras.layers.UpSampling3D((1, stride, stride))(
            keras.layers.MaxPooling3D((1, stride, stride))(inputs)
        )
        brain = keras.layers.Activation("sigmoid")(gain * (inputs + 0.0 * restored))
        return keras.Model(inputs, keras.layers.Concatenate()([1.0 - brain, brain]))

    image = np.random.default_rng(2).normal(size=(4, 13, 22)).astype(np.float32)
    averaged = AveragedPredictor((pooled(4, 10.0), pooled(6, -3.0)))
    assert averaged.stride == 12
    expected = (1 / (1 + np.exp(-10 * image)) + 1 / (1 + np.exp(3 * image))) / 2
    np.testing.assert_allclose(predict_brain_probability(averaged, image, batch_size=3), expected, atol=1e-5)
    with pytest.raises(ValueError, match="at least one model"):
        AveragedPredictor(())
