"""The four notebooks, executed end to end in order with tiny parameters (papermill), and their hygiene."""

import json
import time
from pathlib import Path

import keras
import nbformat
import numpy as np
import pytest
from conftest import BIDS_STACKS

from fetal_keras.models.pretrained import pair_folder, sha256_of

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ("01_explore_data", "02_train", "03_evaluate_qc", "04_paper_figures")
KERNEL_START_TIMEOUT_S = 120
CELL_TIMEOUT_S = 240  # the slowest cell (02's training, tiny settings) takes ~20 s on 2 busy cores


def execute_notebook(source: Path, output: Path, parameters: dict, cell_timeout_s: float = CELL_TIMEOUT_S) -> None:
    """Run ``source`` with papermill into ``output``; a kernel that does not start or a cell that does not finish
    in time fails the test with the notebook's name and the cell's number, instead of waiting forever."""
    import papermill
    from nbclient.exceptions import CellTimeoutError

    try:
        papermill.execute_notebook(
            str(source),
            str(output),
            parameters=parameters,
            cwd=str(source.parent),
            kernel_name="python3",
            progress_bar=False,
            start_timeout=KERNEL_START_TIMEOUT_S,
            execution_timeout=cell_timeout_s,
        )
    except CellTimeoutError as error:
        cells = nbformat.read(output, as_version=4).cells
        started = [i for i, cell in enumerate(cells) if cell.metadata.get("papermill", {}).get("start_time")]
        where = f"cell {started[-1]} of {output.name} (0-based)" if started else "a cell"
        pytest.fail(f"{source.name}: {where} gave no reply within {cell_timeout_s:g} s. {error}", pytrace=False)


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebooks_have_no_outputs_and_one_parameters_cell(name):
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    tagged = [cell for cell in code if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith(f"# {name[:2]}")


@pytest.mark.slow
@pytest.mark.timeout(1200)  # four kernels in turn; ~75 s alone, 220 s on an idle 2-core machine beside another test
def test_notebooks_run_end_to_end_on_a_simulated_cohort(tmp_path):
    root = tmp_path / "work"
    paths = {
        "cohort": str(root / "cohort" / "cohort.csv"),
        "split": root / "split",
        "run": root / "run",
    }
    predictions = str(paths["run"] / "test_predictions")
    metrics = str(paths["run"] / "metrics.csv")
    parameters = {
        "01_explore_data": {"COHORT_CSV": paths["cohort"], "SIMULATED_SUBJECTS": 3, "STACKS_SHOWN": 1},
        "02_train": {
            "TRAIN_CSV": str(paths["split"] / "train.csv"),
            "VAL_CSV": str(paths["split"] / "val.csv"),
            "RUN_DIR": str(paths["run"]),
            "SPLIT_IF_MISSING": paths["cohort"],
            "BASE_FILTERS": 2,
            "EPOCHS": 2,
            "STEPS_PER_EPOCH": 2,
            "BATCH_SIZE": 2,
        },
        "03_evaluate_qc": {
            "RUN_DIR": str(paths["run"]),
            "EVAL_CSV": str(paths["split"] / "test.csv"),
            "PRED_DIR": predictions,
            "METRICS_CSV": metrics,
            "WORST_SHOWN": 1,
            "EVERY_NTH_SLICE": 4,
        },
        "04_paper_figures": {
            "RUN_DIR": str(paths["run"]),
            "EVAL_CSV": str(paths["split"] / "test.csv"),
            "PRED_DIR": predictions,
            "METRICS_CSV": metrics,
            "DPI": 30,
        },
    }
    for name in NAMES:
        execute_notebook(NOTEBOOKS / f"{name}.ipynb", tmp_path / f"{name}.ipynb", parameters[name])
    assert (paths["run"] / "history.csv").is_file()
    assert list((paths["run"] / "saved_model").iterdir())
    assert (paths["run"] / "test_predictions" / "predictions.csv").is_file()
    figures = {path.name for path in (paths["run"] / "figures").iterdir()}
    assert {"dice_over_training.png", "example.pdf", "metric_boxes.png", "volume_agreement.png"} <= figures
    assert "metrics_table.tex" in figures
    executed = json.loads((tmp_path / "03_evaluate_qc.ipynb").read_text())
    images = [o for c in executed["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images  # the montage was drawn


def test_a_cell_that_never_finishes_fails_within_its_limit_naming_notebook_and_cell(tmp_path):
    source = tmp_path / "hangs.ipynb"
    cells = [nbformat.v4.new_code_cell("ready = True"), nbformat.v4.new_code_cell("import time\ntime.sleep(600)")]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, source)
    started = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match=r"hangs\.ipynb: cell 1 .*no reply within 3 s"):
        execute_notebook(source, tmp_path / "out.ipynb", {}, cell_timeout_s=3)
    assert time.monotonic() - started < 60


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_notebook_02_fine_tunes_the_packaged_segmenter(train_val_csvs, tmp_path):
    train_csv, val_csv = train_val_csvs
    run = tmp_path / "fine_tuned"
    parameters = {
        "TRAIN_CSV": train_csv,
        "VAL_CSV": val_csv,
        "RUN_DIR": str(run),
        "SPLIT_IF_MISSING": "",
        "EPOCHS": 1,
        "STEPS_PER_EPOCH": 2,
        "BATCH_SIZE": 2,
        "TASK": "segmenter",
        "INIT_FROM": "pretrained",
    }
    execute_notebook(NOTEBOOKS / "02_train.ipynb", tmp_path / "02_train.ipynb", parameters)
    record = json.loads((run / "config.json").read_text())
    start = pair_folder() / "segmenter" / "model.keras"
    assert record["initial_weights"] == {"spec": "pretrained", "path": str(start), "sha256": sha256_of(start)}
    assert record["config"]["init_from"] == "pretrained" and record["config"]["task"] == "segmenter"
    assert record["config"]["normalisation"] == "foreground" and record["config"]["crop_margin_mm"] == 20.0
    assert list((run / "saved_model").iterdir())
    before, after = (keras.saving.load_model(path, compile=False) for path in (start, run / "checkpoints/last.keras"))
    changes = [np.abs(a - b).max() for a, b in zip(before.get_weights(), after.get_weights(), strict=True)]
    kernel = np.abs(before.get_layer("down0_a_conv").get_weights()[0]).max()
    assert max(changes) > 0, "fine-tuning changed the weights"
    assert (
        np.abs(
            after.get_layer("down0_a_conv").get_weights()[0] - before.get_layer("down0_a_conv").get_weights()[0]
        ).max()
        < 0.1 * kernel
    ), "a few steps fine-tune, they do not retrain"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_notebook_01_starts_from_a_bids_dataset(bids_dataset, tmp_path):
    cohort = tmp_path / "from_bids" / "cohort.csv"
    parameters = {
        "COHORT_CSV": str(cohort),
        "BIDS_DIR": str(bids_dataset),
        "SIMULATE_IF_MISSING": False,
        "STACKS_SHOWN": 1,
    }
    execute_notebook(NOTEBOOKS / "01_explore_data.ipynb", tmp_path / "01_bids.ipynb", parameters)
    table = cohort.read_text().splitlines()
    assert table[0] == "iFIND_id,image,segmentation,subject,session,run" and len(table) == 1 + len(BIDS_STACKS)
