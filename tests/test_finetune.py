"""Fine-tuning: starting weights found, checked layer by layer, loaded, frozen on request, recorded in config.json."""

import json

import keras
import numpy as np
import pytest
from conftest import tiny_train_config

from fetal_keras.cli.main import build_parser
from fetal_keras.cli.train_command import config_from_args
from fetal_keras.models.networks import build_model
from fetal_keras.models.pretrained import pair_folder, sha256_of
from fetal_keras.models.train_config import TrainConfig
from fetal_keras.training.initial_weights import (
    inherited_settings,
    load_initial_weights,
    resolve_initial_weights,
)
from fetal_keras.training.train import RunFolder, train


def _weights(path) -> dict[str, np.ndarray]:
    model = keras.saving.load_model(path, compile=False)
    return {variable.path: np.asarray(variable) for variable in model.weights}


def test_a_network_of_another_shape_is_refused_naming_the_first_mismatch(tmp_path):
    build_model("unet", base_filters=2).save(tmp_path / "small.keras")
    initial = resolve_initial_weights(tmp_path / "small.keras", "whole")
    with pytest.raises(ValueError, match=r"down0_a_conv/kernel.*\(3, 3, 3, 1, 2\).*\(3, 3, 3, 1, 4\)"):
        load_initial_weights(build_model("unet", base_filters=4), initial)
    with pytest.raises(ValueError, match="preset and base filters"):
        load_initial_weights(build_model("unet", base_filters=2, levels=3), initial)


def test_matching_weights_are_copied_exactly(tmp_path):
    source = build_model("unet", base_filters=2)
    source.save(tmp_path / "source.keras")
    target = build_model("unet", base_filters=2)
    load_initial_weights(target, resolve_initial_weights(tmp_path / "source.keras", "whole"))
    for a, b in zip(source.get_weights(), target.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_packaged_pair_gives_the_role_the_run_trains_with_its_preprocessing():
    for role in ("localiser", "segmenter"):
        initial = resolve_initial_weights("pretrained", role)
        assert initial.path == pair_folder() / role / "model.keras"
        assert initial.sha256 == sha256_of(initial.path)
        packaged = TrainConfig.load(initial.path.parent / "config.json")
        settings = inherited_settings("pretrained", role)
        assert settings["task"] == role and settings["init_from"] == "pretrained"
        assert settings["target_spacing_mm"] == packaged.target_spacing_mm
        assert settings["normalisation"] == packaged.normalisation
    assert inherited_settings("pretrained", "segmenter")["crop_margin_mm"] == 20.0
    with pytest.raises(ValueError, match="which role"):
        resolve_initial_weights("pretrained", None)
    with pytest.raises(ValueError, match="which role"):
        resolve_initial_weights("pretrained", "whole")


def test_folders_that_hold_no_keras_weights_are_refused_with_the_reason(tmp_path):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "saved_model.pb").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="SavedModel cannot be fine-tuned"):
        resolve_initial_weights(tmp_path / "export", "whole")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_initial_weights(tmp_path / "missing.keras", "whole")


def test_a_pair_file_without_both_roles_or_cut_short_is_refused_by_training_and_deploy_alike(tmp_path):
    from fetal_keras.deploy.loading import load_predictor

    for content in (json.dumps({"segmenter": "seg.keras"}), '{"localiser": "loc.keras", "segm'):
        (tmp_path / "pair.json").write_text(content)
        for load in (lambda: resolve_initial_weights(tmp_path, "segmenter"), lambda: load_predictor(tmp_path)):
            with pytest.raises(ValueError, match="pair.json must name a 'localiser' and a 'segmenter'"):
                load()


def test_cli_flags_override_what_the_starting_model_gives(tmp_path):
    args = build_parser().parse_args(
        ["train", "--train-csv", "t.csv", "--val-csv", "v.csv", "--run-dir", str(tmp_path / "run")]
        + ["--init-from", "pretrained", "--task", "segmenter", "--crop-margin", "12", "--freeze-encoder"]
    )
    config = config_from_args(args)
    assert config.init_from == "pretrained" and config.freeze_encoder
    assert config.crop_margin_mm == 12.0 and config.normalisation == "foreground" and config.task == "segmenter"
    with pytest.raises(ValueError, match="needs init_from"):
        TrainConfig("t.csv", "v.csv", str(tmp_path), freeze_encoder=True)


@pytest.mark.slow
@pytest.mark.timeout(400)  # two trainings: 40-70 s beside another test
def test_a_frozen_encoder_keeps_its_weights_and_statistics(train_val_csvs, tmp_path):
    first = RunFolder(tmp_path / "first")
    train(tiny_train_config(*train_val_csvs, first.root, epochs=1), verbose=0)
    second = RunFolder(tmp_path / "second")
    train(tiny_train_config(*train_val_csvs, second.root, init_from=str(first.root), freeze_encoder=True), verbose=0)

    before, after = _weights(first.best), _weights(second.last)
    encoder = [name for name in before if name.startswith("down")]
    decoder = [name for name in before if name.startswith("up") and "kernel" in name]
    assert encoder and decoder
    for name in encoder:  # kernels, gammas, betas and the moving mean/variance
        np.testing.assert_array_equal(before[name], after[name])
    assert any(not np.allclose(before[name], after[name]) for name in decoder)
    assert json.loads(second.config.read_text())["initial_weights"]["path"] == str(first.best)


@pytest.mark.slow
@pytest.mark.timeout(400)  # two trainings: 40-50 s beside another test
def test_a_segmenter_validates_on_what_its_localiser_finds(train_val_csvs, tmp_path):
    localiser = RunFolder(tmp_path / "localiser")
    train(tiny_train_config(*train_val_csvs, localiser.root, epochs=1, task="localiser"), verbose=0)
    segmenter = RunFolder(tmp_path / "segmenter")
    config = tiny_train_config(
        *train_val_csvs, segmenter.root, epochs=1, task="segmenter", validation_localiser=str(localiser.best)
    )
    train(config, verbose=0)
    dice = float(segmenter.history.read_text().splitlines()[-1].split(",")[-1])
    assert 0.0 <= dice <= 1.0
    with pytest.raises(ValueError, match="segmenter's setting"):
        tiny_train_config(*train_val_csvs, tmp_path, validation_localiser="pretrained")


@pytest.mark.slow
@pytest.mark.timeout(1200)  # two full-size roles fine-tuned and deployed: about 200 s beside another test
def test_finetune_writes_a_deployable_pair_and_scores_it_on_the_validation_stacks(train_val_csvs, tmp_path, capsys):
    from fetal_keras.cli.main import main

    out = tmp_path / "pair"
    argv = ["finetune", "--train-csv", train_val_csvs[0], "--val-csv", train_val_csvs[1], "--out", str(out)]
    assert main(argv + ["--steps", "2", "--batch-size", "2", "--seed", "0"]) == 0
    assert json.loads((out / "pair.json").read_text()) == {
        "localiser": "localiser/model.keras",
        "segmenter": ["segmenter/checkpoints/last.keras", "packaged/segmenter/model.keras"],
        "weights": {"segmenter": [0.25, 0.75]},
    }, "the default recipe: the segmenter trained, deployed as a weighted mean with the packaged one"
    record = json.loads((out / "segmenter" / "config.json").read_text())
    assert record["config"]["task"] == "segmenter" and record["initial_weights"]["path"].endswith(
        "segmenter/model.keras"
    )
    assert record["config"]["seed"] == 0, "--seed 0 is a seed, not 'no seed given'"
    assert (record["config"]["epochs"], record["config"]["steps_per_epoch"]) == (1, 2), "--steps 2"
    summary = json.loads((out / "validation_summary.json").read_text())
    assert summary["stacks"] == 2 and 0.0 <= summary["mean_dice"] <= 1.0
    assert len(list((out / "validation_masks").glob("*_mask.nii.gz"))) == 2
    # The packaged pair on the same stacks, beside the fine-tuned one: what fine-tuning changed.
    assert summary["packaged_pair"]["stacks"] == 2 and 0.0 <= summary["packaged_pair"]["mean_dice"] <= 1.0
    assert len(list((out / "validation_masks_packaged").glob("*_mask.nii.gz"))) == 2
    printed = capsys.readouterr().out
    assert f"packaged pair {summary['packaged_pair']['mean_dice']}, fine-tuned {summary['mean_dice']}" in printed
    assert main(["predict", "--model", str(out), "--csv", train_val_csvs[1], "--out", str(tmp_path / "masks")]) == 0
    assert main(argv) == 2  # the folder holds a finished pair


def test_finetune_defaults_are_the_measured_recipe_and_its_options_are_checked(monkeypatch, tmp_path, capsys):
    """Without options: the segmenter only, 200 batches, a mean with the packaged segmenter weighing it 0.25; from
    random weights no mean; --steps 0 leaves the --minutes budget in charge."""
    from fetal_keras.cli.main import main
    from fetal_keras.training import small_cohort

    calls = []

    def recorded(*args, **kwargs):
        calls.append((args, kwargs))
        raise InterruptedError  # stop before the scoring: only the call is checked here

    monkeypatch.setattr(small_cohort, "fine_tune_pair", recorded)
    argv = ["finetune", "--train-csv", "t.csv", "--val-csv", "v.csv", "--out", str(tmp_path / "pair")]
    for extra in ([], ["--start", "scratch", "--steps", "0"], ["--fine-tuned-weight", "0.6"]):
        with pytest.raises(InterruptedError):
            main(argv + extra)
    (default_args, default), (scratch_args, scratch), (_, weighted) = calls
    assert default_args[4:] == (10.0, 200, ("segmenter",)), default_args
    assert default["average_with_packaged"] and default["fine_tuned_weight"] == 0.25
    assert scratch_args[5] is None and not scratch["average_with_packaged"] and "fine_tuned_weight" not in scratch
    assert weighted["fine_tuned_weight"] == 0.6
    assert main(argv + ["--no-average-with-packaged", "--fine-tuned-weight", "0.5"]) == 2
    assert main(argv + ["--steps", "-1"]) == 2
    errors = capsys.readouterr().err
    assert "--fine-tuned-weight needs --average-with-packaged" in errors and "--steps must be 0" in errors
    assert len(calls) == 3, "a wrong option stops before any training"


def test_a_step_budget_is_whole_epochs_of_the_recipe_and_minutes_only_bound_it(tmp_path):
    from fetal_keras.training.small_cohort import role_config

    csvs = ("train.csv", "val.csv")
    config = role_config(*csvs, tmp_path / "run", "segmenter", "pretrained", 30.0, steps=60)
    assert (config.epochs, config.steps_per_epoch, config.max_minutes) == (3, 25, 30.0)
    assert (role_config(*csvs, tmp_path / "run", "localiser", "scratch", 30.0, steps=7).epochs, 1) == (1, 1)
    timed = role_config(*csvs, tmp_path / "run", "localiser", "pretrained", 5.0)
    assert timed.epochs == 1000, "without steps the time budget decides, as before"
    with pytest.raises(ValueError, match="steps must be at least 1"):
        role_config(*csvs, tmp_path / "run", "localiser", "pretrained", 5.0, steps=0)


def test_finetune_warns_when_the_fine_tuned_pair_is_worse_than_the_packaged_one(tmp_path):
    from fetal_keras.cli.finetune_command import before_and_after

    packaged = {"stacks": 3, "mean_dice": 0.8, "min_dice": 0.7, "median_hd95_mm": 9.0}
    worse = packaged | {"mean_dice": 0.75}
    assert "WARNING: the fine-tuned pair is worse" in before_and_after(packaged, worse, tmp_path)
    better = before_and_after(packaged, packaged | {"mean_dice": 0.85}, tmp_path)
    assert "WARNING" not in better and f"--model {tmp_path}" in better
    assert "packaged pair 0.8, fine-tuned 0.85" in better


@pytest.mark.slow
def test_a_segmenter_only_fine_tuning_keeps_the_packaged_localiser_and_can_freeze_rehearse_and_average(
    train_val_csvs, tmp_path
):
    from fetal_keras.deploy.inference import AveragedPredictor
    from fetal_keras.deploy.loading import load_predictor
    from fetal_keras.training.small_cohort import fine_tune_pair

    with pytest.raises(ValueError, match="roles must be"):
        fine_tune_pair(*train_val_csvs, tmp_path / "bad", "pretrained", 1.0, 1, roles=("whole",))
    out = fine_tune_pair(
        *train_val_csvs,
        tmp_path / "pair",
        "pretrained",
        1.0,
        1,
        roles=("segmenter",),
        average_with_packaged=True,
        batch_size=2,
        freeze_encoder=True,
        rehearsal_csv=train_val_csvs[0],
        rehearsal_share=0.5,
        fine_tuned_weight=0.3,
    )
    assert json.loads((out / "pair.json").read_text()) == {
        "localiser": "localiser/model.keras",
        "segmenter": ["segmenter/checkpoints/last.keras", "packaged/segmenter/model.keras"],
        "weights": {"segmenter": [0.3, 0.7]},
    }
    for copied in ("localiser/model.keras", "packaged/segmenter/model.keras"):
        role = copied.split("/")[-2]
        assert sha256_of(out / copied) == sha256_of(pair_folder() / role / "model.keras")
    pair, _, description = load_predictor(out)
    assert isinstance(pair.segmenter, AveragedPredictor) and "segmenter mean of 0.30 x " in description
    with pytest.raises(ValueError, match="weight in the mean must be in"):
        fine_tune_pair(*train_val_csvs, tmp_path / "bad", "pretrained", 1.0, 1, fine_tuned_weight=0.0)
    with pytest.raises(ValueError, match="average of 2 models"):
        resolve_initial_weights(out, "segmenter")
    record = json.loads((out / "segmenter" / "config.json").read_text())
    assert record["config"]["freeze_encoder"] is True
    assert record["config"]["rehearsal_csv"] == train_val_csvs[0] and record["config"]["rehearsal_share"] == 0.5
    assert record["config"]["max_minutes"] == 1.0, "the only role trained gets the whole budget"


def test_rehearsal_settings_go_together_and_leave_both_cohorts_a_slab(tmp_path):
    with pytest.raises(ValueError, match="go together"):
        TrainConfig("t.csv", "v.csv", str(tmp_path), rehearsal_csv="sim.csv")
    with pytest.raises(ValueError, match="go together"):
        TrainConfig("t.csv", "v.csv", str(tmp_path), rehearsal_share=0.4)
    with pytest.raises(ValueError, match="leaves no slab"):
        TrainConfig("t.csv", "v.csv", str(tmp_path), batch_size=1, rehearsal_csv="sim.csv", rehearsal_share=0.4)
    config = TrainConfig("t.csv", "v.csv", str(tmp_path), batch_size=5, rehearsal_csv="sim.csv", rehearsal_share=0.4)
    assert config.rehearsed_per_batch == 2
    assert TrainConfig("t.csv", "v.csv", str(tmp_path)).rehearsed_per_batch == 0


def test_every_rehearsing_batch_ends_with_slabs_of_the_rehearsal_cohort(write_cohort, tmp_path):
    """Each batch is the user's slabs, then the rehearsal cohort's (its own sequence), in the configured numbers; a
    resumed sequence continues both; rehearsal on a validation stack is refused."""
    from fetal_keras.data.cohort import read_cohort
    from fetal_keras.pipeline import SamplingConfig, training_dataset
    from fetal_keras.training.train import rehearsal_bank, training_bank, training_batches

    own_csv = write_cohort(2, folder="own")
    other_csv = write_cohort(folder="other", ids=["rehearsed-0", "rehearsed-1"])
    config = tiny_train_config(
        str(own_csv),
        str(own_csv),
        tmp_path / "run",
        batch_size=5,
        slab_size=16,
        rehearsal_csv=str(other_csv),
        rehearsal_share=0.4,
    )
    own = training_bank(config, read_cohort(own_csv, True), progress=False)
    with pytest.raises(ValueError, match="rehearsal"):
        rehearsal_bank(config, read_cohort(other_csv, True))
    rehearsal = rehearsal_bank(config, read_cohort(own_csv, True), progress=False)
    sampling = SamplingConfig(16, config.slabs_per_stack, config.brain_fraction)
    for first_batch in (0, 3):
        images, labels = next(iter(training_batches(config, own, first_batch, rehearsal)))
        mine = next(iter(training_dataset(own, 3, sampling, config.augment, config.seed, first_batch)))
        other = next(iter(training_dataset(rehearsal, 2, sampling, config.augment, config.seed + 1, first_batch)))
        np.testing.assert_array_equal(images.numpy(), np.concatenate([mine[0], other[0]]))
        np.testing.assert_array_equal(labels.numpy(), np.concatenate([mine[1], other[1]]))
    assert next(iter(training_batches(config, own)))[0].shape[0] == 5, "without a rehearsal bank: the user's alone"


def test_finetune_refuses_a_rehearsal_share_without_a_cohort_to_rehearse(tmp_path, capsys):
    from fetal_keras.cli.main import main

    argv = ["finetune", "--train-csv", "t.csv", "--val-csv", "v.csv", "--out", str(tmp_path / "pair")]
    assert main([*argv, "--rehearsal-share", "0.5"]) != 0
    assert "--rehearsal-share needs --rehearsal-csv" in capsys.readouterr().err
    assert not (tmp_path / "pair").exists()
