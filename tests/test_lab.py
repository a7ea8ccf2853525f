"""``make lab``: JupyterLab, pinned, on the notebooks, with this environment's Python as their kernel."""

import re
import sys
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager

ROOT = Path(__file__).resolve().parents[1]


def test_make_lab_installs_a_pinned_jupyterlab_and_opens_the_notebooks():
    recipe = re.search(r"^lab:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert recipe, "a lab target"
    assert "-r requirements-lab.txt" in recipe.group(1) and "$(BIN)/jupyter lab notebooks" in recipe.group(1)
    assert re.search(r"^jupyterlab==\d+\.\d+\.\d+$", (ROOT / "requirements-lab.txt").read_text(), re.MULTILINE)


def test_the_notebooks_kernel_is_this_environments_python():
    """The notebooks name the ``python3`` kernel; in this environment it is the one ipykernel installs with it
    (``python`` in its command is the server's own interpreter), not one registered elsewhere on the machine."""
    spec = KernelSpecManager().get_kernel_spec("python3")
    assert Path(spec.resource_dir).resolve().is_relative_to(Path(sys.prefix).resolve())
    assert spec.argv[0] == "python"
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        assert '"name": "python3"' in notebook.read_text(), notebook.name
