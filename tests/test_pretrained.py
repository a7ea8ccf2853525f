import json
import re
import zipfile

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest
from conftest import synthetic_pair, write_volume

from fetal_keras.cli.main import main
from fetal_keras.models.pretrained import (
    PAIR_NAME,
    PAIR_ROLES,
    PRETRAINED_NAME,
    RECIPE_PAIR_NAME,
    WEIGHTS_DIR,
    card_checksum,
    card_path,
    packaged_name,
    sha256_of,
    verified_pair,
    verified_weights,
    weights_path,
)


def _package(tmp_path, checksum=None):
    """A tiny model packaged like the pretrained one, with a card stating ``checksum`` (default: the right one)."""
    from fetal_keras.models.networks import build_model

    folder = tmp_path / "weights"
    folder.mkdir()
    build_model("unet", base_filters=2).save(weights_path(weights_dir=folder))
    card_path(weights_dir=folder).write_text(
        f"# card\n\n- SHA-256: `{checksum or sha256_of(weights_path(weights_dir=folder))}`\n"
    )
    return folder


def test_weights_are_used_only_when_their_checksum_matches_the_card(tmp_path):
    folder = _package(tmp_path)
    path, checksum = verified_weights(weights_dir=folder)
    assert path == weights_path(weights_dir=folder) and checksum == card_checksum(card_path(weights_dir=folder))
    with open(path, "ab") as stream:
        stream.write(b"\0")
    with pytest.raises(ValueError, match="damaged or was replaced"):
        verified_weights(weights_dir=folder)
    card_path(weights_dir=folder).write_text("# a card without checksum\n")
    with pytest.raises(ValueError, match="states no SHA-256"):
        verified_weights(weights_dir=folder)
    with pytest.raises(FileNotFoundError, match="make pretrained"):
        verified_weights(weights_dir=tmp_path / "nowhere")


def test_qc_figure_outlines_every_third_slice(tmp_path):
    folder = _package(tmp_path)
    image, labels = synthetic_pair(shape=(7, 40, 36))
    stack = write_volume(tmp_path / "real" / "fetus_01.nii.gz", image)
    from fetal_keras.figures.paper import pretrained_qc_figure

    truth = write_volume(tmp_path / "real" / "fetus_01_mask.nii.gz", labels)
    model = weights_path(weights_dir=folder)
    path = pretrained_qc_figure([stack], tmp_path / "figures" / "qc.png", model, {str(stack): truth}, dpi=30)
    assert path.stat().st_size > 1000
    with pytest.raises(ValueError, match="missing.nii.gz"):
        pretrained_qc_figure([tmp_path / "missing.nii.gz"], tmp_path / "figures" / "qc2.png", model)


def test_pretrained_names_each_packaged_model_and_refuses_unknown_versions():
    assert packaged_name("pretrained") == PRETRAINED_NAME
    assert packaged_name("pretrained:v1") == "fetal_unet_sim_v1" and packaged_name("pretrained:v2") == PAIR_NAME
    assert packaged_name("runs/pretrained") is None
    with pytest.raises(ValueError, match="pretrained:v1"):
        packaged_name("pretrained:v9")


@pytest.mark.slow
@pytest.mark.timeout(1200)  # 150 s alone, 200 s beside another test: simulation, two trainings, two test passes
def test_the_pair_recipe_simulates_trains_packages_and_verifies_both_roles(tmp_path):
    """The whole ``fetal-keras pretrained`` recipe at toy scale (tiny networks): both roles packaged, checksums in
    the card."""
    weights = tmp_path / "weights"
    arguments = ["pretrained", "--work-dir", str(tmp_path / "work"), "--weights-dir", str(weights), "--subjects", "3"]
    arguments += ["--preset", "small", "--localiser-epochs", "1", "--segmenter-epochs", "1", "--steps-per-epoch", "1"]
    arguments += ["--base-filters", "2", "--bank-subjects", "4"]
    arguments += ["--selection-csv", "none", "--monitor-csv", "none"]  # the shared real stacks are not in CI
    assert main(arguments + ["--workers", "1", "--real-csv", str(tmp_path / "absent.csv")]) == 0
    assert not (weights / PAIR_NAME).exists()  # the packaged v2 is never overwritten by default
    folder, checksums = verified_pair(RECIPE_PAIR_NAME, weights_dir=weights)
    card = card_path(RECIPE_PAIR_NAME, weights).read_text()
    assert all(checksum in card for checksum in checksums.values()) and "Not measured" in card
    assert "a bank of 4 fetuses" in card
    configs = {role: json.loads((folder / role / "config.json").read_text())["config"] for role in PAIR_ROLES}
    assert configs["localiser"]["task"] == "localiser" and configs["segmenter"]["crop_margin_mm"] == 20.0
    assert configs["segmenter"]["image_source"] == "labels"
    # Trained on the labels-only bank, validated and tested on the imaged fetuses, split by subject.
    # (paths given relative to the work folder: the packaged files name no folder of this machine)
    assert all(configs[role]["train_csv"] == "WORK_DIR/bank/cohort.csv" for role in PAIR_ROLES)
    split = json.loads((tmp_path / "work" / "split" / "split.json").read_text())["sets"]
    assert set(split) == {"val", "test"} and split["val"]["subjects"] + split["test"]["subjects"] == 3
    assert configs["localiser"]["base_filters"] == configs["segmenter"]["base_filters"] == 2
    # The segmenter was validated on crops around what the pair's localiser finds, as deploy crops.
    assert configs["segmenter"]["validation_localiser"] == "WORK_DIR/localiser"
    assert configs["localiser"]["validation_localiser"] is None and "crops around the localiser's head" in card
    # Both finished runs packaged again, nothing retrained: the card says where each role comes from.
    again = ["--weights-dir", str(tmp_path / "again")]
    again += [option for role in PAIR_ROLES for option in (f"--{role}-run", str(tmp_path / "work" / role))]
    assert main(arguments + ["--workers", "1", "--real-csv", "", *again]) == 0
    card = card_path(RECIPE_PAIR_NAME, tmp_path / "again").read_text()
    assert all(f"{role} packaged from the finished run" in card for role in PAIR_ROLES)
    assert "trained by this recipe on the split above" not in card
    assert "`WORK_DIR/localiser`" in card and not MACHINE_PATH.findall(card)
    verified_pair(RECIPE_PAIR_NAME, weights_dir=tmp_path / "again")
    with open(folder / "segmenter" / "model.keras", "ab") as stream:
        stream.write(b"\0")
    with pytest.raises(ValueError, match="segmenter/model.keras has SHA-256"):
        verified_pair(RECIPE_PAIR_NAME, weights_dir=weights)


def test_packaged_models_match_their_cards_and_fit_in_10_mb():
    path, checksum = verified_weights("fetal_unet_sim_v1")
    assert checksum == sha256_of(path) and path.stat().st_size <= 10_000_000
    folder, checksums = verified_pair()
    assert folder.name == PRETRAINED_NAME == PAIR_NAME
    assert sum((folder / role / "model.keras").stat().st_size for role in PAIR_ROLES) <= 10_000_000
    assert checksums == {role: sha256_of(folder / role / "model.keras") for role in PAIR_ROLES}


def test_v1_stays_loadable_by_name():
    from fetal_keras.deploy.loading import load_predictor

    _, preprocess, description = load_predictor("pretrained:v1")
    assert description.startswith("fetal_unet_sim_v1 (sha256 ") and preprocess.target_spacing_mm is None


@pytest.mark.slow
def test_packaged_model_segments_a_stack_from_the_command_line_and_names_both_checksums(tmp_path):
    """The default model from the command line: a mask on the stack's own grid, and predictions.csv naming both
    checksums. (Its Dice is measured on real stacks in test_packaged_pair_real_stacks.py.) A small-preset stack:
    the field of view around the head, the deploy's cost a fraction of a whole-abdomen stack's."""
    from fetal_keras.data.io import read_stack
    from fetal_keras.simulate import SimulationSettings, simulate_stack
    from fetal_keras.simulate.cohort import simulate_subject

    settings = SimulationSettings(subjects=1, seed=123, preset="small", ga_range_weeks=(30.0, 30.0))
    stack = simulate_stack(settings, simulate_subject(settings, 0), 0)
    image_path = write_volume(tmp_path / "stack.nii.gz", stack.image, spacing=tuple(stack.plan.spacing_mm))
    assert main(["predict", "--input", str(image_path), "--out", str(tmp_path / "out")]) == 0
    table = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert all(checksum in table.loc[0, "model"] for checksum in verified_pair()[1].values())
    assert read_stack(tmp_path / "out" / "stack_mask.nii.gz").geometry == read_stack(image_path).geometry


def test_the_card_stars_the_real_stacks_that_chose_a_checkpoint(tmp_path, write_cohort):
    """Stacks of a selection cohort are starred and the others summarised apart: a reader sees which real Dice
    figures took part in choosing the model."""
    from fetal_keras.models.train_config import TrainConfig
    from fetal_keras.training.model_card import real_table, selection_stacks

    split_dir = tmp_path / "split"
    selection = write_cohort(ids=["real-1", "real-3"], folder="selection")
    configs = {
        "localiser": TrainConfig("t.csv", str(split_dir / "val.csv"), "a", task="localiser"),
        "segmenter": TrainConfig("t.csv", str(selection), "b", task="segmenter"),
    }
    ids, sentences = selection_stacks(configs, split_dir)
    assert ids == {"real-1", "real-3"} and len(sentences) == 1 and "the segmenter checkpoints" in sentences[0]
    measured = pd.DataFrame(
        {
            "iFIND_id": ["real-1", "real-2", "real-3", "real-4"],
            "dice": [0.9, 0.5, 0.7, float("nan")],
            "hd95_mm": [3.0, 9.0, 5.0, float("nan")],
            "predicted_volume_ml": [150.0, 80.0, 120.0, 0.0],
            "true_volume_ml": [160.0] * 4,
        }
    )
    table = real_table({"no TTA": measured, "TTA": measured}, ids)
    assert "| real-1 * |" in table and "| real-2 |" in table
    assert "| **mean (not used for selection)** | 0.250 |" in table  # real-2 and real-4 (no mask: Dice 0)
    assert "| **mean** | 0.525 |" in table


def test_unreadable_selection_stacks_stop_the_recipe_before_it_simulates(tmp_path, capsys):
    selection = tmp_path / "selection.csv"
    selection.write_text("iFIND_id,image,segmentation\nreal-1,gone.nii.gz,gone_mask.nii.gz\n")
    arguments = ["pretrained", "--work-dir", str(tmp_path / "work"), "--weights-dir", str(tmp_path / "weights")]
    assert main(arguments + ["--selection-csv", str(selection), "--real-csv", ""]) == 2
    assert "--selection-csv none" in capsys.readouterr().err
    assert not (tmp_path / "work").exists(), "nothing simulated"


def test_a_work_folder_simulated_with_other_settings_is_refused_not_reused(tmp_path):
    """A rerun reuses a simulated cohort only when ``simulation.json`` records the same settings (older records
    lacking newer settings count as their defaults); otherwise it names what differs and touches nothing."""
    from dataclasses import asdict

    from fetal_keras.simulate import SimulationSettings
    from fetal_keras.training.pretrained_cohorts import simulated

    folder = tmp_path / "bank"
    folder.mkdir()
    (folder / "cohort.csv").write_text("iFIND_id,image,segmentation\n")
    recorded = asdict(SimulationSettings(subjects=300, labels_only=True))
    del recorded["first_subject"]  # written before the setting existed
    (folder / "simulation.json").write_text(json.dumps({"settings": recorded}))
    assert simulated(SimulationSettings(subjects=300, labels_only=True), folder, 1) == folder / "cohort.csv"
    with pytest.raises(ValueError, match="subjects: 300 there, 40 now"):
        simulated(SimulationSettings(subjects=40, labels_only=True), folder, 1)
    (folder / "simulation.json").unlink()
    with pytest.raises(ValueError, match="no readable settings"):
        simulated(SimulationSettings(subjects=300, labels_only=True), folder, 1)
    assert (folder / "cohort.csv").read_text() == "iFIND_id,image,segmentation\n"


MACHINE_PATH = re.compile(r"""(?:^|[\s"'`(=])(/(?:[\w.-]+/)+[\w.-]*|[A-Za-z]:\\[\w\\.-]+)""")


def _shipped_texts():
    """(name, text) of every file under the packaged weights, and of every text entry of each ``.keras`` archive."""
    for path in sorted(WEIGHTS_DIR.rglob("*")):
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                for entry in archive.namelist():
                    if entry.endswith((".json", ".txt")):
                        yield f"{path.name}:{entry}", archive.read(entry).decode("utf-8")
        elif path.is_file():
            yield path.name, path.read_text(encoding="utf-8")


def test_packaged_models_name_no_folder_of_the_machine_that_trained_them():
    texts = dict(_shipped_texts())
    assert any(name.endswith("config.json") for name in texts) and any(name.endswith(".md") for name in texts)
    found = {name: MACHINE_PATH.findall(text) for name, text in texts.items()}
    assert not any(found.values()), {name: paths[:3] for name, paths in found.items() if paths}


def test_packaged_paths_are_given_relative_to_the_work_folder_or_by_their_last_parts(tmp_path):
    from fetal_keras.training.pretrained_package import described_path, portable_run_record

    work = tmp_path / "work"
    assert described_path(work / "split" / "train.csv", work) == "WORK_DIR/split/train.csv"
    assert described_path("/elsewhere/real_labelled/cohort.csv", work) == ".../real_labelled/cohort.csv"
    assert described_path("data_splits/real_selection.csv", work) == "data_splits/real_selection.csv"
    record = {"config": {"run_dir": str(work / "localiser"), "seed": 3, "init_from": "pretrained"}, "created": "x"}
    assert portable_run_record(record, work) == {
        "config": {"run_dir": "WORK_DIR/localiser", "seed": 3, "init_from": "pretrained"},
        "created": "x",
    }
    assert not MACHINE_PATH.findall(json.dumps(portable_run_record(record, work)))
