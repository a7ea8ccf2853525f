import json

import pytest
from conftest import REAL_DATA

from fetal_keras.cli.main import main


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real unlabelled stacks not found at {REAL_DATA}")
def test_demo_runs_end_to_end(tmp_path):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--real-stacks", str(REAL_DATA)]) == 0
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["problems"] == 0
    assert [m["header_identical"] for m in summary["masks"]] == [True, True]


def test_demo_without_stacks_is_a_clear_error(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--real-stacks", str(tmp_path)]) == 2
    assert "No stacks" in capsys.readouterr().err
