"""A head at the image's edge: the segmenter's crop border is replicated on the sides that lost their margin."""

import numpy as np
from conftest import OBLIQUE, ThresholdPredictor, write_volume

from fetal_keras.data.io import read_stack
from fetal_keras.data.preprocess import PreprocessConfig
from fetal_keras.deploy.cut_margin import CUT_MARGIN_PADDING, pad_sides, sides_without_margin
from fetal_keras.deploy.localise import LocalisedSegmenter
from fetal_keras.deploy.predict import PredictOptions, predict_many


def test_only_the_sides_nearer_the_edge_than_the_margin_are_marked():
    focus = np.zeros((3, 50, 60), bool)
    focus[1, 20:30, 48:57] = True  # 3 voxels (3 mm) from the right edge, 20+ mm from every other
    assert sides_without_margin(focus, (3.0, 1.0, 1.0), 10.0) == ((False, False), (False, True))
    assert sides_without_margin(focus, (3.0, 1.0, 0.5), 10.0) == ((False, False), (False, True))
    assert sides_without_margin(focus, (3.0, 1.0, 1.0), 2.0) == ((False, False), (False, False))
    focus[1, 0:5, 0:3] = True
    assert sides_without_margin(focus, (3.0, 1.0, 1.0), 10.0) == ((True, False), (True, True))
    assert sides_without_margin(np.zeros_like(focus), (3.0, 1.0, 1.0), 10.0) == ((False, False), (False, False))


def test_the_border_is_replicated_and_the_region_crops_back_to_the_image():
    image = np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5)
    padded, region = pad_sides(image, ((True, False), (False, True)), voxels=3)
    assert padded.shape == (2, 7, 8)
    np.testing.assert_array_equal(padded[region], image)
    np.testing.assert_array_equal(padded[:, 0, :5], image[:, 0])  # the first row, replicated upward
    np.testing.assert_array_equal(padded[:, 3:, -1], image[:, :, -1])  # the last column, replicated rightward


class RecordingPredictor(ThresholdPredictor):
    """The pointwise ThresholdPredictor, remembering the in-plane size of every batch of slabs it sees."""

    def __init__(self):
        self.shapes = []

    def __call__(self, slabs, training=False):
        self.shapes.append(tuple(np.asarray(slabs).shape[2:4]))
        return super().__call__(slabs, training)


def test_a_head_cut_by_the_image_edge_is_segmented_on_a_padded_crop_and_written_on_the_stack_grid(tmp_path):
    z, y, x = np.indices((12, 80, 70))
    head = ((z - 6) * 3.0 / 24) ** 2 + ((y - 40) * 1.5 / 30) ** 2 + ((x - 66) * 1.5 / 30) ** 2 < 1  # cut at x = 69
    image = np.random.default_rng(0).normal(100, 5, z.shape) + 400 * head
    path = write_volume(tmp_path / "cut.nii.gz", image.astype(np.int16), (1.5, 1.5, 3.0), (5, -3, 2), OBLIQUE)
    preprocess = PreprocessConfig(target_spacing_mm=1.5, crop_margin_mm=10.0, min_shape=(3, 16, 16))
    masks, widths = {}, {}
    for padded in (True, False):
        segmenter = RecordingPredictor()
        pair = LocalisedSegmenter(ThresholdPredictor(), PreprocessConfig(target_spacing_mm=3.0), segmenter)
        options = PredictOptions(pad_cut_margin=padded)
        table = predict_many(pair, [("s", str(path))], tmp_path / str(padded), options, preprocess, progress=False)
        assert table["error"].tolist() == [""]
        written = read_stack(tmp_path / str(padded) / "s_mask.nii.gz")
        assert written.geometry == read_stack(path).geometry
        masks[padded], widths[padded] = written.array, {shape[1] for shape in segmenter.shapes}
    # Only the right side lost its margin: the crop is wider by the padding (to the stride), never taller.
    assert min(widths[True]) >= max(widths[False]) + CUT_MARGIN_PADDING - 8
    # A pointwise model gives the same mask either way: the padded columns are cut off again, nothing shifted.
    np.testing.assert_array_equal(masks[True], masks[False])
    assert 2 * (masks[True].astype(bool) & head).sum() / (masks[True].sum() + head.sum()) > 0.9
