import json

import pytest

from fetal_keras.cli.main import main


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--subjects", "5"]) == 0
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["split"] == {"train": 9, "val": 3, "test": 3}
    assert (tmp_path / "demo" / "split" / "train.csv").is_file()
    assert (tmp_path / "demo" / "cohort" / "simulation.json").is_file()
