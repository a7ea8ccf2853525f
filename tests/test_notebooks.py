"""The four notebooks, executed end to end in order with tiny parameters (papermill), and their hygiene."""

import json
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ("01_explore_data", "02_train", "03_evaluate_qc", "04_paper_figures")


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
def test_notebooks_run_end_to_end_on_a_simulated_cohort(tmp_path):
    import papermill

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
        papermill.execute_notebook(
            str(NOTEBOOKS / f"{name}.ipynb"),
            str(tmp_path / f"{name}.ipynb"),
            parameters=parameters[name],
            cwd=str(NOTEBOOKS),
            kernel_name="python3",
            progress_bar=False,
        )
    assert (paths["run"] / "history.csv").is_file()
    assert list((paths["run"] / "saved_model").iterdir())
    assert (paths["run"] / "test_predictions" / "predictions.csv").is_file()
    figures = {path.name for path in (paths["run"] / "figures").iterdir()}
    assert {"dice_over_training.png", "example.pdf", "metric_boxes.png", "volume_agreement.png"} <= figures
    assert "metrics_table.tex" in figures
    executed = json.loads((tmp_path / "03_evaluate_qc.ipynb").read_text())
    images = [o for c in executed["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images  # the montage was drawn
