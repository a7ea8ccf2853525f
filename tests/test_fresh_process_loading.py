"""Every way a user names a model loads in a new process, as the user's next session would: nothing that the
training process happened to import (custom losses, metrics, layers) may be needed."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import synthetic_pair, tiny_train_config, write_volume

from fetal_keras.training.train import RunFolder, train

pytestmark = pytest.mark.slow

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SPECS = ("best.keras", "last.keras", "run folder", "SavedModel", "pretrained")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny finished run trained with the custom cross-entropy + Dice loss, and one stack to segment."""
    root = tmp_path_factory.mktemp("fresh")
    lines = ["iFIND_id,image,segmentation"]
    for i in range(3):
        image, labels = synthetic_pair(shape=(5, 16, 16), seed=i)
        write_volume(root / "images" / f"s{i}.nii.gz", image)
        write_volume(root / "segmentations" / f"s{i}.nii.gz", labels)
        lines.append(f"s{i},images/s{i}.nii.gz,segmentations/s{i}.nii.gz")
    (root / "train.csv").write_text("\n".join(lines[:3]) + "\n")
    (root / "val.csv").write_text("\n".join([lines[0], lines[3]]) + "\n")
    run = RunFolder(root / "run")
    train(tiny_train_config(str(root / "train.csv"), str(root / "val.csv"), run.root, loss="cross_entropy+dice"))
    return run, root / "images" / "s0.nii.gz"


def _spec(run: RunFolder, name: str) -> str:
    return {
        "best.keras": str(run.best),
        "last.keras": str(run.last),
        "run folder": str(run.root),
        "SavedModel": str(next(run.saved_model.iterdir())),
        "pretrained": "pretrained",
    }[name]


def _run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=cwd)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.parametrize("name", SPECS)
def test_the_predict_command_loads_the_model_in_a_new_process(trained_run, tmp_path, name):
    run, stack = trained_run
    out = tmp_path / "masks"
    _run(
        [
            sys.executable,
            "-m",
            "fetal_keras",
            "predict",
            "--model",
            _spec(run, name),
            "--input",
            str(stack),
            "--out",
            str(out),
        ]
    )
    assert (out / "s0_mask.nii.gz").is_file()


@pytest.mark.parametrize("name", SPECS)
def test_the_python_api_loads_the_model_in_a_new_process(trained_run, name):
    run, _ = trained_run
    code = (
        "import sys, numpy as np\n"
        "from fetal_keras.deploy.loading import load_predictor\n"
        "predictor, _, _ = load_predictor(sys.argv[1])\n"
        "roles = [predictor.localiser, predictor.segmenter] if hasattr(predictor, 'segmenter') else [predictor]\n"
        "for model in roles:\n"
        "    probability = np.asarray(model(np.zeros((1, 3, 16, 16, 1), np.float32)))\n"
        "    assert probability.shape == (1, 3, 16, 16, 2), probability.shape\n"
    )
    _run([sys.executable, "-c", code, _spec(run, name)])


def test_a_new_notebook_kernel_loads_a_checkpoint(trained_run):
    from nbclient import NotebookClient

    run, _ = trained_run
    source = f"from fetal_keras.deploy.loading import load_predictor\npredictor = load_predictor({str(run.best)!r})[0]"
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    NotebookClient(notebook, timeout=120, startup_timeout=60, kernel_name="python3").execute()
    assert not [output for output in notebook.cells[0].outputs if output.output_type == "error"]


def test_the_inference_benchmark_counts_flops_from_the_runs_checkpoint(trained_run):
    run, stack = trained_run
    result = _run(
        [
            sys.executable,
            str(BENCHMARKS / "bench_inference.py"),
            "--model",
            str(run.root),
            "--input",
            str(stack),
            "--repeats",
            "1",
        ]
    )
    assert json.loads(result.stdout.splitlines()[-1])["achieved_gflops"] is not None  # FLOPs came from best.keras
