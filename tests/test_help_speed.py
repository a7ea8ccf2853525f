"""Every ``--help`` answers at once: no TensorFlow, Keras or data stack is imported before the work starts."""

import ast
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fetal_keras.cli.main import COMMANDS

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("bench_*.py"))
HEAVY = ("tensorflow", "keras", "pandas", "sklearn", "scipy", "matplotlib", "SimpleITK")
REPORT = f"print(sorted(name for name in {HEAVY!r} if name in sys.modules))"


def _help_imports(code: str) -> tuple[list[str], float]:
    """The heavy modules loaded by ``code`` (which asks for a help text) in a fresh interpreter, and its seconds."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", f"import sys\ntry:\n    {code}\nexcept SystemExit:\n    pass\n{REPORT}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout, result.stdout[:500]
    return ast.literal_eval(result.stdout.strip().splitlines()[-1]), seconds


def _command_name(module) -> str:
    return module.__name__.rsplit(".", 1)[-1].removesuffix("_command")


@pytest.mark.parametrize("command", [None, *(_command_name(module) for module in COMMANDS)])
def test_cli_help_loads_no_heavy_module(command):
    argv = ["--help"] if command is None else [command, "--help"]
    loaded, _ = _help_imports(f"from fetal_keras.cli.main import main; main({argv!r})")
    assert loaded == [], f"fetal-keras {' '.join(argv)} imported {loaded}"


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda path: path.name)
def test_benchmark_help_loads_no_heavy_module(script):
    code = f"import runpy; sys.argv = [{str(script)!r}, '--help']; runpy.run_path({str(script)!r}, run_name='__main__')"
    loaded, _ = _help_imports(code)
    assert loaded == [], f"{script.name} --help imported {loaded}"


def test_help_takes_a_fraction_of_importing_tensorflow():
    """Measured as a ratio in one run (this machine's speed varies): on an idle 2-core machine TensorFlow takes
    about 5 s to import and ``fetal-keras predict --help`` about 0.3 s."""
    _, help_seconds = _help_imports("from fetal_keras.cli.main import main; main(['predict', '--help'])")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True, check=True, timeout=300)
    tensorflow_seconds = time.perf_counter() - start
    assert help_seconds < 0.4 * tensorflow_seconds, (help_seconds, tensorflow_seconds)
