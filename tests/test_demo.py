import json
from pathlib import Path

import pytest

from fetal_keras.cli.main import main


@pytest.mark.slow
@pytest.mark.timeout(1200)  # 155-220 s on an idle 2-core machine beside another test
def test_demo_runs_end_to_end_and_says_loudly_when_its_time_guard_cut_training(tmp_path, capsys):
    """From the packaged U-Net, as the demo starts; a guard of 0.001 min stops training after the first epoch."""
    command = ["demo", "--out", str(tmp_path / "demo"), "--subjects", "5", "--epochs", "2", "--steps-per-epoch", "2"]
    assert main(command + ["--minutes", "0.001"]) == 0
    assert "WARNING: the 0.001-minute guard stopped training after 1 of 2 epochs" in capsys.readouterr().out
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["training_cut_short"] and summary["epochs_run"] == 1 and summary["init_from"] == "pretrained:v1"
    assert summary["split"] == {"train": 9, "val": 3, "test": 3}
    assert (tmp_path / "demo" / "split" / "train.csv").is_file()
    assert (tmp_path / "demo" / "cohort" / "simulation.json").is_file()
    assert (tmp_path / "demo" / "run" / "history.csv").is_file()
    assert (tmp_path / "demo" / "run" / "checkpoints" / "best.keras").is_file()
    assert 0.0 <= summary["best_validation_volume_dice"] <= 1.0
    assert 0.0 <= summary["test_dice_mean"] <= 1.0
    assert len(list((tmp_path / "demo" / "test_predictions").glob("*_mask.nii.gz"))) == 3
    assert (tmp_path / "demo" / summary["saved_model"].split("demo/", 1)[1] / "saved_model.pb").is_file()
    figures = {Path(path).name for path in summary["figures"]}
    assert {"dice_over_training.png", "example.png", "metric_boxes.pdf", "volume_agreement.png"} <= figures
    assert all(Path(path).stat().st_size > 0 for path in summary["figures"])
    assert summary["training_minutes"] <= summary["minutes"]
