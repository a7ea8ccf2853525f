"""The ``fetal-keras`` command line, through the installed entry point and ``python -m``."""

import subprocess
import sys
from pathlib import Path

import pytest

from fetal_keras.cli.main import main

# The console script installed beside this interpreter (the venv need not be activated).
FETAL_KERAS = str(Path(sys.executable).with_name("fetal-keras"))


def test_python_dash_m_and_console_script_show_help():
    for command in ([sys.executable, "-m", "fetal_keras", "--help"], [FETAL_KERAS, "--help"]):
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        assert "check" in result.stdout and "split" in result.stdout


@pytest.mark.parametrize("command", ["check", "cohort", "split", "simulate", "train", "finetune", "predict", "demo"])
def test_every_option_has_help_text(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    help_text = capsys.readouterr().out
    options = [word for word in help_text.split() if word.startswith("--") and word != "--help"]
    assert options
    assert "default" in help_text or "required" in help_text or command == "check"


def test_check_exit_codes_and_report(tmp_path, write_cohort, capsys):
    csv = write_cohort(2)
    assert main(["check", "--csv", str(csv), "--quiet"]) == 0
    csv.write_text(csv.read_text() + "sub-09,images/gone.nii.gz,segmentations/sub-00.nii.gz\n")

    assert main(["check", "--csv", str(csv), "--quiet", "--report", str(tmp_path / "report.csv")]) == 1

    out = capsys.readouterr().out
    assert f"{csv} line 4 (iFIND_id 'sub-09'), file {csv.parent}/images/gone.nii.gz: error: does not exist" in out
    assert "1 error(s) on 1 row(s)" in out
    assert "does not exist" in (tmp_path / "report.csv").read_text()


def test_check_strict_fails_on_warnings(write_cohort):
    csv = write_cohort(1)
    csv.write_text(csv.read_text() + "sub-01,images/sub-00.nii.gz,segmentations/sub-00.nii.gz\n")
    assert main(["check", "--csv", str(csv), "--quiet"]) == 0
    assert main(["check", "--csv", str(csv), "--quiet", "--strict"]) == 1


def test_split_command_writes_the_three_sets(tmp_path, write_cohort, capsys):
    csv = write_cohort(10)
    out = tmp_path / "data_splits" / "demo"
    assert main(["split", "--csv", str(csv), "--out", str(out), "--val", "0.2", "--test", "0.2", "--seed", "0"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["split.json", "test.csv", "train.csv", "val.csv"]
    assert "train:    6 stacks" in capsys.readouterr().out


def test_user_errors_are_one_paragraph_without_traceback(tmp_path, write_cohort):
    csv = write_cohort(2)
    csv.write_text("id,image\nsub-00,images/sub-00.nii.gz\n")
    result = subprocess.run(
        [FETAL_KERAS, "split", "--csv", str(csv), "--out", str(tmp_path / "s")], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "fetal-keras split: error: Cohort CSV" in result.stderr and "lacks column(s) 'iFIND_id'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "s").exists()


def test_debug_flag_shows_the_traceback(tmp_path):
    with pytest.raises(FileNotFoundError):
        main(["--debug", "split", "--csv", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "s")])


def test_split_refuses_to_overwrite_its_input(tmp_path, write_cohort):
    csv = write_cohort(10)
    renamed = csv.rename(csv.parent / "train.csv")
    assert main(["split", "--csv", str(renamed), "--out", str(renamed.parent)]) == 2
    assert renamed.read_text().startswith("iFIND_id,image,segmentation\nsub-00")


def test_train_flags_override_a_saved_config(tmp_path):
    from fetal_keras.cli.main import build_parser
    from fetal_keras.cli.train_command import config_from_args
    from fetal_keras.models.train_config import TrainConfig

    saved = TrainConfig("a.csv", "b.csv", "old_run", preset="fetal_fcn", learning_rate=0.01, brain_labels=(2,))
    saved.save(tmp_path / "config.json")
    args = build_parser().parse_args(
        [
            "train",
            "--train-csv",
            "a.csv",
            "--val-csv",
            "b.csv",
            "--run-dir",
            "new_run",
            "--config",
            str(tmp_path / "config.json"),
            "--epochs",
            "3",
            "--brain-labels",
            "2,9",
        ]
    )
    config = config_from_args(args)
    assert (config.preset, config.learning_rate, config.epochs) == ("fetal_fcn", 0.01, 3)
    assert (config.run_dir, config.brain_labels) == ("new_run", (2, 9))


def test_train_defaults_are_the_config_defaults():
    from fetal_keras.cli.main import build_parser
    from fetal_keras.cli.train_command import config_from_args
    from fetal_keras.models.train_config import TrainConfig

    args = build_parser().parse_args(["train", "--train-csv", "a", "--val-csv", "b", "--run-dir", "c"])
    assert config_from_args(args) == TrainConfig("a", "b", "c")
