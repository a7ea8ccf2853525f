"""Localise, then segment: crops around the head, the head's component, the pair's deploy and loading."""

import json

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import OBLIQUE, ThresholdPredictor, tiny_model_folder, write_volume

from fetal_keras.data.io import StackGeometry, read_stack
from fetal_keras.data.preprocess import PreprocessConfig, crop_region, prepare_stack
from fetal_keras.deploy.inference import AveragedPredictor
from fetal_keras.deploy.loading import load_pair, load_predictor
from fetal_keras.deploy.localise import LocalisedSegmenter, head_component, keep_component_at_focus
from fetal_keras.deploy.predict import PredictOptions, _to_source_grid, predict_many
from fetal_keras.models.pretrained import read_pair_file, read_pair_weights, write_pair_file
from fetal_keras.models.train_config import TrainConfig


def test_crop_region_adds_the_margin_grows_to_the_minimum_and_stays_inside():
    focus = np.zeros((20, 200, 150), np.uint8)
    focus[8:12, 50:110, 60:80] = 1
    region = crop_region(focus, (3.0, 1.0, 1.0), margin_mm=6.0, min_shape=(3, 64, 64))
    assert region[0] == slice(6, 14)  # 2 slices of 3 mm either side
    assert region[1] == slice(44, 116)  # 60 + 2 x 6 pixels, above the minimum
    assert region[2] == slice(38, 102)  # 20 + 2 x 6 = 32 grown about its centre to 64
    edge = np.zeros_like(focus)
    edge[0:2, 190:200, 0:5] = 1
    region = crop_region(edge, (3.0, 1.0, 1.0), margin_mm=0.0, min_shape=(3, 64, 256))
    assert region == (slice(0, 3), slice(136, 200), slice(0, 150))


def test_a_cropped_grid_is_where_simpletk_puts_the_same_region():
    image = sitk.Image([40, 30, 10], sitk.sitkFloat32)
    image.SetSpacing((0.8, 0.9, 3.5))
    image.SetOrigin((10.0, -20.0, 5.0))
    image.SetDirection(OBLIQUE)
    geometry = StackGeometry(image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection())
    region = (slice(2, 7), slice(5, 25), slice(11, 31))
    expected = sitk.RegionOfInterest(image, [20, 20, 5], [11, 5, 2])
    cropped = geometry.cropped(region)
    assert cropped.size == expected.GetSize()
    np.testing.assert_allclose(cropped.origin_mm, expected.GetOrigin(), atol=1e-9)
    assert cropped.spacing_mm == expected.GetSpacing() and cropped.direction == expected.GetDirection()


def _head_and_uterus(tmp_path):
    """A stack (1.5 mm, 3 mm slices, oblique) with a bright 110 ml 'head' and a larger bright 'uterus' far away."""
    z, y, x = np.indices((24, 200, 200))
    head = ((z - 12) * 3.0 / 30) ** 2 + ((y - 60) * 1.5 / 30) ** 2 + ((x - 60) * 1.5 / 30) ** 2 < 1
    uterus = (np.abs(z - 12) < 9) & (np.abs(y - 150) < 45) & (np.abs(x - 140) < 50)
    image = np.random.default_rng(0).normal(100, 5, z.shape) + 400 * (head | uterus)
    path = write_volume(tmp_path / "stack.nii.gz", image.astype(np.int16), (1.5, 1.5, 3.0), (5, -3, 2), OBLIQUE)
    return path, head, uterus


def test_the_pair_keeps_the_plausible_head_where_the_largest_component_would_be_the_uterus(tmp_path):
    path, head, uterus = _head_and_uterus(tmp_path)
    assert uterus.sum() * 1.5 * 1.5 * 3 / 1000 > 900 > head.sum() * 1.5 * 1.5 * 3 / 1000
    stacks = [("s", str(path))]
    segmenter_preprocess = PreprocessConfig(target_spacing_mm=1.0, crop_margin_mm=10.0, min_shape=(3, 64, 64))
    pair = LocalisedSegmenter(ThresholdPredictor(), PreprocessConfig(target_spacing_mm=3.0), ThresholdPredictor())

    single = predict_many(ThresholdPredictor(), stacks, tmp_path / "single", PredictOptions(), PreprocessConfig())
    paired = predict_many(pair, stacks, tmp_path / "pair", PredictOptions(tta=True), segmenter_preprocess)

    assert single["error"].tolist() == [""] and paired["error"].tolist() == [""]
    largest = read_stack(tmp_path / "single" / "s_mask.nii.gz").array
    assert (largest[uterus] == 1).mean() > 0.95 and largest[head].mean() < 0.05
    written = read_stack(tmp_path / "pair" / "s_mask.nii.gz")
    assert written.geometry == read_stack(path).geometry, "the mask has the stack's grid"
    mask = written.array.astype(bool)
    assert 2 * (mask & head).sum() / (mask.sum() + head.sum()) > 0.9
    assert not (mask & uterus).any()


def test_head_component_prefers_plausible_volume_then_evidence():
    probability = np.zeros((20, 60, 60), np.float32)
    probability[2:18, 2:58, 2:30] = 0.9  # 16 x 56 x 28 voxels of 27 mm3: 677 ml, plausible, strong
    probability[5:8, 40:43, 40:43] = 1.0  # 0.7 ml: a speck
    probability[5:15, 35:55, 35:55] = 0.6  # 108 ml, plausible, weaker
    chosen = head_component(probability, (3.0, 3.0, 3.0))
    assert chosen[10, 20, 10] == 1 and chosen[10, 45, 45] == 0
    chosen = head_component(probability, (3.0, 3.0, 3.0), plausible_ml=(50.0, 200.0))
    assert chosen[10, 45, 45] == 1 and chosen[10, 20, 10] == 0
    assert not head_component(np.zeros((4, 8, 8)), (1.0, 1.0, 1.0)).any()


def test_postprocessing_keeps_the_component_at_the_focus_not_the_largest():
    mask = np.zeros((6, 40, 40), np.uint8)
    mask[1:5, 2:20, 2:20] = 1
    mask[1:5, 25:35, 25:35] = 1
    mask[2, 29, 29] = 0  # a hole
    focus = np.zeros_like(mask)
    focus[2:4, 27:30, 27:30] = 1
    kept = keep_component_at_focus(mask, focus)
    assert kept[2, 30, 30] == 1 and kept[2, 29, 29] == 1 and kept[2, 10, 10] == 0
    assert keep_component_at_focus(mask, np.zeros_like(mask))[2, 10, 10] == 1, "no overlap: the largest"


def test_a_hole_open_to_the_next_slice_is_filled_only_slice_by_slice():
    """A bright ventricle left out on every slice of a mask is a tunnel, not a 3D hole: only the per-slice fill
    closes it; the mask's outline stays where it was."""
    mask = np.zeros((5, 30, 30), np.uint8)
    mask[:, 5:25, 5:25] = 1
    mask[:, 12:16, 12:16] = 0  # open through the first and last slices
    focus = np.ones_like(mask)
    assert keep_component_at_focus(mask, focus)[2, 14, 14] == 0
    filled = keep_component_at_focus(mask, focus, slice_holes=True)
    assert filled[:, 12:16, 12:16].all() and filled.sum() == 5 * 20 * 20


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_components_and_holes_on_the_masks_box_equal_those_on_the_whole_grid(seed):
    """Post-processing works on the mask's bounding box for speed: it must give what the whole grid gives."""
    from scipy import ndimage

    from fetal_keras.deploy.localise import _components_in, _components_without_bridges, _filled

    rng = np.random.default_rng(seed)
    mask = ndimage.gaussian_filter(rng.normal(size=(8, 64, 64)), 2.0) > 0.08
    mask[:, :10] = mask[:, -10:] = False  # a box smaller than the grid in-plane, touching its first and last slice
    mask[2:7, 30:42, 30:42], mask[4, 34:37, 34:37] = True, False  # and a hole closed in 3D
    spacing = (3.0, 1.0, 1.0)
    np.testing.assert_array_equal(_components_without_bridges(mask, spacing, 3.0), _components_in(mask, spacing, 3.0))
    whole = sitk.GetArrayFromImage(sitk.BinaryFillhole(sitk.GetImageFromArray(mask.astype(np.uint8))))
    np.testing.assert_array_equal(_filled(mask), whole)
    assert _filled(mask)[4, 35, 35] == 1


def test_a_thin_bridge_does_not_join_the_brain_to_what_it_touches():
    """A head mask joined to a trunk-like blob by a 3 mm neck through one slice: only the head is kept, with its own
    outline intact; without the spacing (no bridge cutting) both stay, as before."""
    y, x = np.mgrid[:100, :140]
    mask = np.zeros((8, 100, 140), np.uint8)
    mask[1:7] = np.hypot(y - 50, x - 40) < 30  # a 66 mm brain at 1.1 mm
    mask[2:6] |= (np.hypot(y - 50, x - 110) < 18).astype(np.uint8)  # something beside it
    mask[3, 49:52, 65:95] = 1  # the bridge: 3 pixels wide, one slice
    focus = np.zeros_like(mask)
    focus[3:5, 45:55, 35:45] = 1
    kept = keep_component_at_focus(mask, focus, (3.0, 1.1, 1.1))
    np.testing.assert_array_equal(kept[:, :, :70], mask[:, :, :70])  # the head whole, outline included
    assert not kept[:, :, 95:].any()
    assert keep_component_at_focus(mask, focus)[4, 50, 110] == 1
    probability = mask.astype(np.float32)
    head = head_component(probability, (3.0, 1.1, 1.1))
    assert head[4, 50, 40] == 1 and head[4, 50, 110] == 0
    speck = np.zeros((3, 20, 20), np.float32)
    speck[1, 5:7, 5:7] = 1.0  # thinner than the erosion: found all the same
    assert head_component(speck, (3.0, 1.1, 1.1), plausible_ml=(0.0, 1.0)).sum() == 4


def test_a_crop_maps_back_onto_the_stack_where_it_was_cut(tmp_path):
    path, head, _ = _head_and_uterus(tmp_path)
    config = PreprocessConfig(crop_margin_mm=6.0, min_shape=(3, 32, 32))
    prepared = prepare_stack("s", path, None, config, focus=head)
    assert prepared.image.shape[1] < 200 and prepared.image.shape[2] < 200
    ones = np.ones(prepared.unpadded_image.shape, np.float32)
    back = _to_source_grid(ones, prepared.geometry, read_stack(path).geometry, is_label=True)
    inside = np.argwhere(back > 0.5)
    assert back[head].min() == 1.0, "the crop holds the whole focus"
    assert (inside.min(0) == [np.nonzero(head)[i].min() - (2, 4, 4)[i] for i in range(3)]).all()


def test_tasks_fill_their_defaults_and_refuse_a_crop_for_other_tasks(tmp_path):
    localiser = TrainConfig("t.csv", "v.csv", "run", task="localiser")
    segmenter = TrainConfig("t.csv", "v.csv", "run", task="segmenter", target_spacing_mm=0.8)
    assert localiser.target_spacing_mm == 3.0 and localiser.preprocess.crop_margin_mm is None
    assert segmenter.target_spacing_mm == 0.8 and segmenter.preprocess.crop_margin_mm == 20.0
    assert TrainConfig.load(segmenter.save(tmp_path / "config.json")) == segmenter
    with pytest.raises(ValueError, match="segmenter's setting"):
        TrainConfig("t.csv", "v.csv", "run", crop_margin_mm=5.0)


def test_a_pair_folder_loads_both_roles_with_their_preprocessing_and_refuses_swapped_roles(tmp_path):
    localiser = tiny_model_folder(tmp_path / "loc", "localiser", normalisation="foreground")
    segmenter = tiny_model_folder(tmp_path / "seg", "segmenter", crop_margin_mm=15.0)
    (tmp_path / "pair.json").write_text(
        json.dumps({"localiser": "loc/checkpoints/best.keras", "segmenter": "seg/checkpoints/best.keras"})
    )
    pair, preprocess, description = load_predictor(tmp_path)
    assert isinstance(pair, LocalisedSegmenter) and "localiser" in description
    assert pair.localiser_preprocess.target_spacing_mm == 3.0
    assert pair.localiser_preprocess.normalisation == "foreground"
    assert preprocess.target_spacing_mm == 1.1 and preprocess.crop_margin_mm == 15.0
    _, single_preprocess, _ = load_predictor(segmenter)
    assert single_preprocess == preprocess, "a checkpoint deploys with its run's preprocessing"
    with pytest.raises(ValueError, match="trained as a segmenter, not a localiser"):
        load_pair(segmenter, localiser)
    # A role of the packaged pair beside one's own model (e.g. a fine-tuned segmenter with the packaged localiser).
    mixed, mixed_preprocess, mixed_description = load_pair(localiser, "pretrained:v2")
    assert "fetal_pair_sim_v2 segmenter (sha256" in mixed_description
    assert mixed_preprocess.crop_margin_mm == 20.0 and mixed_preprocess.normalisation == "foreground"
    assert mixed.localiser_preprocess.target_spacing_mm == 3.0


def test_a_pair_role_named_by_several_models_deploys_their_mean_if_they_share_preprocessing(tmp_path):
    localiser = tiny_model_folder(tmp_path / "loc", "localiser")
    first = tiny_model_folder(tmp_path / "seg1", "segmenter", crop_margin_mm=15.0)
    second = tiny_model_folder(tmp_path / "seg2", "segmenter", crop_margin_mm=15.0)
    write_pair_file(
        tmp_path,
        {"localiser": "loc/checkpoints/best.keras", "segmenter": [str(first.relative_to(tmp_path)), str(second)]},
    )
    assert read_pair_file(tmp_path)["segmenter"] == [first, second]
    pair, preprocess, description = load_predictor(tmp_path)
    assert isinstance(pair.segmenter, AveragedPredictor) and len(pair.segmenter.members) == 2
    assert not isinstance(pair.localiser, AveragedPredictor)
    assert preprocess.crop_margin_mm == 15.0 and f"segmenter mean of {first}" in description
    other = tiny_model_folder(tmp_path / "seg3", "segmenter", crop_margin_mm=25.0)
    with pytest.raises(ValueError, match="must share their preprocessing"):
        load_pair(localiser, [first, other])
    with pytest.raises(ValueError, match="at least one model"):
        write_pair_file(tmp_path, {"localiser": [], "segmenter": "seg1/checkpoints/best.keras"})
    with pytest.raises(FileNotFoundError):
        load_pair(localiser, [first, tmp_path / "missing.keras"])


def test_a_pair_file_may_weigh_the_averaged_models_and_refuses_weights_that_do_not_match(tmp_path):
    localiser = tiny_model_folder(tmp_path / "loc", "localiser")
    first = tiny_model_folder(tmp_path / "seg1", "segmenter")
    second = tiny_model_folder(tmp_path / "seg2", "segmenter")
    models = {"localiser": str(localiser), "segmenter": [str(first), str(second)]}
    write_pair_file(tmp_path, models, {"segmenter": [0.3, 0.7]})
    assert read_pair_weights(tmp_path) == {"segmenter": [0.3, 0.7]}
    pair, _, description = load_predictor(tmp_path)
    assert pair.segmenter.weights == pytest.approx((0.3, 0.7)) and "0.30 x " in description
    for weights, problem in (({"segmenter": [1.0]}, "one number per model"), ({"segmenter": [0, 0]}, "not all 0")):
        with pytest.raises(ValueError, match=problem):
            write_pair_file(tmp_path / "bad", models, weights)
    written = json.loads((tmp_path / "pair.json").read_text())
    (tmp_path / "pair.json").write_text(json.dumps(written | {"weights": {"segmenter": [-1, 2]}}))
    with pytest.raises(ValueError, match="pair.json: the weights of segmenter"):
        load_predictor(tmp_path)


def test_a_segmenters_training_bank_holds_crops_around_each_brain(tmp_path):
    from fetal_keras.data.stack_bank import load_stack_bank

    rows = ["iFIND_id,image,segmentation"]
    for index, centre in enumerate((40, 150)):
        z, y, x = np.indices((6, 200, 180))
        brain = ((y - centre) / 20.0) ** 2 + ((x - 90) / 15.0) ** 2 + ((z - 3) / 2.0) ** 2 < 1
        image = np.random.default_rng(index).normal(100, 5, brain.shape) + 300 * brain
        write_volume(tmp_path / f"i{index}.nii.gz", image.astype(np.int16), (1.0, 1.0, 3.0))
        write_volume(tmp_path / f"s{index}.nii.gz", brain.astype(np.uint8), (1.0, 1.0, 3.0))
        rows.append(f"s{index},i{index}.nii.gz,s{index}.nii.gz")
    (tmp_path / "cohort.csv").write_text("\n".join(rows) + "\n")
    bank = load_stack_bank(tmp_path / "cohort.csv", PreprocessConfig(crop_margin_mm=5.0, min_shape=(3, 32, 32)), False)
    assert bank.shapes.numpy().tolist() == [[6, 49, 39], [6, 49, 39]]  # 39 + 2 x 5 rows, 29 + 2 x 5 columns
    assert bank.brain_counts.numpy().min() > 0


def _ellipsoid_stack(tmp_path, centre_y: int = 40):
    z, y, x = np.indices((6, 200, 180))
    brain = ((y - centre_y) / 20.0) ** 2 + ((x - 90) / 15.0) ** 2 + ((z - 3) / 2.0) ** 2 < 1
    image = np.random.default_rng(0).normal(100, 5, brain.shape) + 300 * brain
    write_volume(tmp_path / "i.nii.gz", image.astype(np.int16), (1.0, 1.0, 3.0))
    write_volume(tmp_path / "s.nii.gz", brain.astype(np.uint8), (1.0, 1.0, 3.0))
    return brain


def test_brain_a_wrong_crop_leaves_out_is_counted_and_lowers_the_validation_dice(tmp_path):
    from fetal_keras.training.callbacks import whole_volume_dice_scores

    brain = _ellipsoid_stack(tmp_path)
    config = PreprocessConfig(crop_margin_mm=5.0, min_shape=(3, 32, 32))
    around_brain = prepare_stack("s", tmp_path / "i.nii.gz", tmp_path / "s.nii.gz", config)
    assert around_brain.labels_outside == 0
    elsewhere = np.zeros_like(brain, np.uint8)
    elsewhere[2:4, 150:170, 80:100] = 1  # a localiser that found something else
    wrong = prepare_stack("s", tmp_path / "i.nii.gz", tmp_path / "s.nii.gz", config, elsewhere)
    assert wrong.labels_outside == int(brain.sum()) and not wrong.unpadded_labels.any()
    perfect = ThresholdPredictor()  # whitened brain is bright, its surroundings dark
    assert whole_volume_dice_scores(perfect, [around_brain])[0] > 0.9
    assert whole_volume_dice_scores(perfect, [wrong]) == [0.0]
