"""Deploy: exact headers, TTA, post-processing, QC flags, failure isolation, model loading."""

import os

import numpy as np
import pandas as pd
import pytest
from conftest import OBLIQUE, ThresholdPredictor, synthetic_pair, write_volume

from fetal_keras.cli.main import main
from fetal_keras.data.io import read_stack
from fetal_keras.data.preprocess import PreprocessConfig
from fetal_keras.deploy import predict
from fetal_keras.deploy.inference import AveragedPredictor
from fetal_keras.deploy.loading import SavedModelPredictor, load_predictor, newest_saved_model
from fetal_keras.deploy.predict import (
    PredictOptions,
    flagged_slices,
    grow_mask,
    postprocess_mask,
    predict_many,
    stack_member_probabilities,
    stack_probability,
)
from fetal_keras.deploy.stack_qc import stack_qc
from fetal_keras.models.networks import build_model
from fetal_keras.models.pretrained import sha256_of_folder
from fetal_keras.training.export import export_saved_model


class LeftBiasedPredictor(ThresholdPredictor):
    """Adds a ramp along x: not flip-equivariant, so TTA variants disagree."""

    def __call__(self, slabs, training=False):
        slabs = np.asarray(slabs)
        ramp = np.linspace(-2, 2, slabs.shape[3])[None, None, None, :, None]
        return super().__call__(slabs + ramp)


def test_postprocessing_removes_a_spurious_blob_and_fills_a_hole():
    mask = np.zeros((6, 30, 30), np.uint8)
    mask[1:5, 5:20, 5:20] = 1
    mask[2:4, 10:13, 10:13] = 0  # a hole inside the brain
    mask[2, 25:28, 25:28] = 1  # a spurious blob
    cleaned = postprocess_mask(mask)
    assert cleaned[2, 26, 26] == 0 and cleaned[3, 11, 11] == 1
    assert cleaned.sum() == 4 * 15 * 15


def test_tta_agrees_for_an_equivariant_model_and_reports_disagreement_otherwise():
    image = np.random.default_rng(0).normal(size=(4, 24, 40)).astype(np.float32)
    plain, none = stack_probability(ThresholdPredictor(), image, PredictOptions())
    mean, spread = stack_probability(ThresholdPredictor(), image, PredictOptions(tta=True, tta_transpose=True))
    assert none is None
    np.testing.assert_allclose(mean, plain, atol=1e-6)
    assert spread.max() < 1e-6
    _, biased_spread = stack_probability(LeftBiasedPredictor(), image, PredictOptions(tta=True))
    assert biased_spread.mean() > 0.05


def test_an_averaged_predictor_gives_each_model_s_own_probability_whose_mean_is_its_own(tmp_path):
    image = np.random.default_rng(1).normal(size=(4, 24, 40)).astype(np.float32)
    averaged = AveragedPredictor((ThresholdPredictor(), LeftBiasedPredictor()))
    for options in (PredictOptions(), PredictOptions(tta=True)):
        members, spread = stack_member_probabilities(averaged, image, options)
        mean, mean_spread = stack_probability(averaged, image, options)
        assert len(members) == 2
        np.testing.assert_allclose(np.mean(members, axis=0), mean, atol=1e-6)
        for member, model in zip(members, averaged.members, strict=True):
            np.testing.assert_allclose(member, stack_probability(model, image, options)[0], atol=1e-6)
        assert (spread is None) == (mean_spread is None) == (not options.tta)
    assert np.abs(members[0] - members[1]).mean() > 0.05, "the two models differ: their own maps must show it"

    stack = write_volume(tmp_path / "s.nii.gz", image, (1.0, 1.0, 4.0), (0.0, 0.0, 0.0), OBLIQUE)
    options = PredictOptions(save_probabilities=True)
    table = predict_many(
        averaged, [("s", str(stack))], tmp_path / "out", options, PreprocessConfig(min_shape=(3, 8, 8)), "a", False
    )
    assert not table.loc[0, "error"]
    mean = read_stack(tmp_path / "out" / "s_prob.nii.gz").array
    written = [read_stack(tmp_path / "out" / f"s_member-{number}_prob.nii.gz").array for number in (1, 2)]
    np.testing.assert_allclose(np.mean(written, axis=0), mean, atol=1e-6)
    predict_many(
        ThresholdPredictor(),
        [("s", str(stack))],
        tmp_path / "single",
        options,
        PreprocessConfig(min_shape=(3, 8, 8)),
        "t",
        False,
    )
    assert not list((tmp_path / "single").glob("*member*")), "a single model writes no member maps"


def test_a_weighted_mean_of_models_weighs_their_own_probabilities(tmp_path, monkeypatch):
    image = np.random.default_rng(2).normal(size=(4, 24, 40)).astype(np.float32)
    weighted = AveragedPredictor((ThresholdPredictor(), LeftBiasedPredictor()), weights=(1.0, 3.0))
    assert weighted.weights == (0.25, 0.75)
    members, _ = stack_member_probabilities(weighted, image, PredictOptions())
    probability, _ = stack_probability(weighted, image, PredictOptions())
    np.testing.assert_allclose(probability, 0.25 * members[0] + 0.75 * members[1], atol=1e-6)
    # The stack's QC weighs the models' own maps as the mean does.
    seen = []
    monkeypatch.setattr(predict, "stack_qc", lambda *args, **kwargs: seen.append(kwargs) or stack_qc(*args, **kwargs))
    stack = write_volume(tmp_path / "s.nii.gz", image, (1.0, 1.0, 4.0), (0.0, 0.0, 0.0), OBLIQUE)
    predict.predict_many(
        weighted, [("s", str(stack))], tmp_path, PredictOptions(), PreprocessConfig(min_shape=(3, 8, 8))
    )
    assert seen[0]["member_weights"] == (0.25, 0.75) and len(seen[0]["member_probabilities"]) == 2
    with pytest.raises(ValueError, match="one weight >= 0 per model"):
        AveragedPredictor((ThresholdPredictor(), LeftBiasedPredictor()), weights=(1.0,))


def test_qc_flags_area_jumps_and_uncertain_slices():
    mask = np.zeros((5, 20, 20), np.uint8)
    mask[:, 5:15, 5:15] = 1
    mask[2, 5:15, 5:8] = 1
    mask[2, 8:15, :] = 0  # slice 2 keeps 30 of 100 pixels: a jump
    assert flagged_slices(mask, None, PredictOptions()) == [2]
    spread = np.zeros(mask.shape, np.float32)
    spread[4] = 0.3
    assert flagged_slices(mask, spread, PredictOptions()) == [2, 4]


def test_predictions_keep_the_header_and_a_corrupt_stack_does_not_stop_the_others(tmp_path):
    inputs = []
    for index in range(3):
        image, _ = synthetic_pair(shape=(5, 20, 18), seed=index)
        inputs.append(write_volume(tmp_path / "in" / f"s{index}.nii.gz", image, (0.8, 0.8, 4.0), (1, 2, 3), OBLIQUE))
    inputs[1].write_bytes(inputs[1].read_bytes()[:100])
    stacks = [(f"s{index}", str(path)) for index, path in enumerate(inputs)]
    options = PredictOptions(tta=True, save_probabilities=True)

    table = predict_many(
        ThresholdPredictor(), stacks, tmp_path / "out", options, PreprocessConfig(), "threshold", False
    )

    assert table["error"].astype(bool).tolist() == [False, True, False]
    assert "s1.nii.gz cannot be read" in table.loc[1, "error"]
    for index in (0, 2):
        source = read_stack(inputs[index])
        for name in ("mask", "prob", "uncertainty"):
            written = read_stack(tmp_path / "out" / f"s{index}_{name}.nii.gz")
            assert written.geometry.size == source.geometry.size
            assert written.geometry.spacing_mm == source.geometry.spacing_mm
            assert written.geometry.origin_mm == source.geometry.origin_mm
            assert written.geometry.direction == source.geometry.direction
        assert read_stack(tmp_path / "out" / f"s{index}_mask.nii.gz").array.dtype == np.uint8
    assert not (tmp_path / "out" / "s1_mask.nii.gz").exists()
    assert (tmp_path / "out" / "predictions.csv").is_file()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")], "no temporary files left"


def test_newest_saved_model_is_chosen_by_timestamp_not_listing_order(tmp_path):
    model = build_model("unet", base_filters=2)
    old = export_saved_model(model, tmp_path / "saved_model")
    new = export_saved_model(model, tmp_path / "saved_model")
    os.utime(old, (4e9, 4e9))  # the older export looks newer on disk
    assert new.name > old.name and newest_saved_model(tmp_path / "saved_model") == new
    predictor, _, description = load_predictor(tmp_path)
    assert isinstance(predictor, SavedModelPredictor) and predictor.stride == 8
    assert description == f"{new} (sha256 {sha256_of_folder(new)})"


def test_a_runs_export_deploys_with_the_runs_preprocessing_wherever_it_is_named_or_moved(tmp_path):
    """A segmenter's SavedModel named directly (not its run folder) used to deploy silently with the default
    preprocessing (native spacing, z-score, no crop): its masks were the whole crop."""
    import shutil

    from fetal_keras.models.train_config import TrainConfig

    config = TrainConfig("t.csv", "v.csv", str(tmp_path / "run"), task="segmenter", normalisation="foreground")
    (tmp_path / "run").mkdir()
    config.save(tmp_path / "run" / "config.json")
    model = build_model("unet", base_filters=2)
    carried = export_saved_model(model, tmp_path / "run" / "saved_model", tmp_path / "run" / "config.json")
    older = export_saved_model(model, tmp_path / "run" / "saved_model")  # before exports carried their config
    for export in (carried, older):
        _, preprocess, _ = load_predictor(export)
        assert preprocess == config.preprocess and preprocess.target_spacing_mm == 1.1
    moved = shutil.copytree(carried, tmp_path / "elsewhere" / "export")
    assert load_predictor(moved)[1] == config.preprocess
    bare = shutil.copytree(older, tmp_path / "bare" / "export")
    with pytest.warns(UserWarning, match="No config.json found .* default preprocessing"):
        assert load_predictor(bare)[1] == PreprocessConfig()


def test_model_specs_that_cannot_be_loaded_are_named(tmp_path):
    (tmp_path / "saved_model").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no SavedModel"):
        load_predictor(tmp_path)
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="broken.keras cannot be loaded"):
        load_predictor(tmp_path / "broken.keras")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_predictor(tmp_path / "absent.keras")


def test_predict_command_with_a_keras_file(tmp_path, write_cohort, capsys):
    csv = write_cohort(2)
    build_model("unet", base_filters=2).save(tmp_path / "model.keras")
    out = tmp_path / "out"
    assert (
        main(
            ["predict", "--model", str(tmp_path / "model.keras"), "--csv", str(csv), "--out", str(out), "--quiet"]
            + ["--report"]
        )
        == 0
    )
    assert sorted(p.name for p in out.glob("*_mask.nii.gz")) == ["sub-00_mask.nii.gz", "sub-01_mask.nii.gz"]
    printed = capsys.readouterr().out
    assert "Segmented 2 of 2 stacks" in printed and "QC flagged" in printed
    assert f"QC report (open it in a browser): {out / 'qc_report.html'}" in printed
    assert (out / "qc_report.html").read_text().count("data:image/png;base64,") == 2
    table = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert table["qc_score"].between(0.0, 1.0).all() and set(table["qc_flag"]) <= {True, False}
    flagged = table[table["qc_flag"]]
    assert all(f"{row.iFIND_id}: score" in printed and row.qc_reasons for row in flagged.itertuples())
    image = csv.parent / "images" / "sub-00.nii.gz"
    assert (
        main(
            [
                "predict",
                "--model",
                str(tmp_path / "model.keras"),
                "--input",
                str(image),
                str(tmp_path / "gone.nii.gz"),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 1
    )


def test_sliding_window_option_gives_the_same_probabilities_for_a_voxelwise_model():
    image = np.random.default_rng(5).normal(size=(4, 130, 136)).astype(np.float32)
    whole, _ = stack_probability(ThresholdPredictor(), image, PredictOptions())
    windows, _ = stack_probability(ThresholdPredictor(), image, PredictOptions(sliding_window=True))
    np.testing.assert_allclose(windows, whole, atol=1e-6)


def test_a_model_at_a_fixed_spacing_writes_masks_with_the_stacks_header_bit_for_bit(tmp_path):
    """Resampled in-plane for the model and back: the mask carries the stack's NIfTI geometry fields unchanged."""
    from fetal_keras.data.nifti1 import _SPATIAL_FIELDS, read_nifti1_header

    image, labels = synthetic_pair(shape=(5, 40, 36), seed=4)
    stack = write_volume(tmp_path / "in" / "s.nii.gz", image, (0.9, 0.9, 4.0), (1.5, -2.0, 3.0), OBLIQUE)
    preprocess = PreprocessConfig(target_spacing_mm=1.6, min_shape=(3, 8, 8))
    options = PredictOptions(save_probabilities=True, postprocess=False)
    predict_many(ThresholdPredictor(), [("s", str(stack))], tmp_path / "out", options, preprocess, "t", False)

    source_header = read_nifti1_header(stack)
    for name in ("mask", "prob"):
        header = read_nifti1_header(tmp_path / "out" / f"s_{name}.nii.gz")
        for offset, dtype, count in _SPATIAL_FIELDS.values():
            size = np.dtype(dtype).itemsize * count
            assert header[offset : offset + size] == source_header[offset : offset + size], name
    mask = read_stack(tmp_path / "out" / "s_mask.nii.gz").array
    assert mask.shape == image.shape
    assert 2 * (mask & (labels == 2)).sum() / (mask.sum() + (labels == 2).sum()) > 0.8  # back on the stack's grid


def test_a_margin_grows_the_mask_by_millimetres_not_voxels_on_thick_slices():
    """1 x 1 x 4 mm voxels, a 4.5 mm margin: 4 voxels in-plane, 1 slice through-plane, a ball in between."""
    mask = np.zeros((9, 21, 21), np.uint8)
    mask[4, 10, 10] = 1
    grown = grow_mask(mask, (1.0, 1.0, 4.0), 4.5)
    assert grown[4, 10, 6:15].all() and not grown[4, 10, 5] and not grown[4, 10, 15]
    assert grown[3:6, 10, 10].all() and not grown[2, 10, 10] and not grown[6, 10, 10]
    assert not grown[3, 10, 14], "the corner of the box is farther than 4.5 mm"
    assert grown[3, 10, 12], "sqrt(4^2 + 2^2) = 4.47 mm"
    assert (grow_mask(mask, (1.0, 1.0, 4.0), 0.0) == mask).all()
    assert not grow_mask(np.zeros_like(mask), (1.0, 1.0, 4.0), 5.0).any()


def test_predict_writes_the_grown_mask_on_the_stacks_grid_and_reports_the_brain_itself(tmp_path, capsys):
    image, _ = synthetic_pair(shape=(6, 30, 28), seed=2)
    stack = write_volume(tmp_path / "in" / "s.nii.gz", image, (1.0, 1.0, 4.0), (1.5, -2.0, 3.0), OBLIQUE)
    tables = {
        margin: predict_many(
            ThresholdPredictor(),
            [("s", str(stack))],
            tmp_path / f"out{margin}",
            PredictOptions(margin_mm=margin),
            PreprocessConfig(min_shape=(3, 8, 8)),
            "t",
            False,
        )
        for margin in (0.0, 3.0)
    }
    plain, grown = (read_stack(tmp_path / f"out{margin}" / "s_mask.nii.gz") for margin in (0.0, 3.0))
    assert grown.geometry == plain.geometry == read_stack(stack).geometry
    assert (grown.array >= plain.array).all() and grown.array.sum() > plain.array.sum()
    assert (grown.array == grow_mask(plain.array, (1.0, 1.0, 4.0), 3.0)).all()
    assert tables[3.0]["brain_volume_ml"].iloc[0] == tables[0.0]["brain_volume_ml"].iloc[0]
    assert tables[3.0]["margin_mm"].iloc[0] == 3.0
    for margin in ("-1", "60"):
        command = ["predict", "--model", "x", "--input", str(stack), "--out", str(tmp_path / "o"), "--margin-mm"]
        assert main(command + [margin]) == 2
        assert "margin must be 0-50 mm" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
