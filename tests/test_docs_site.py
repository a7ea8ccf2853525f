"""The documentation site builds in strict mode, and a broken link fails it."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUIET = {"NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("mkdocs")), "build", "--strict", "-f", str(config), "-d", str(site)],
        capture_output=True,
        text=True,
        timeout=400,
        env=os.environ | QUIET,
    )


@pytest.mark.slow
@pytest.mark.timeout(600)  # two builds: about 10 s each on an idle 2-core machine
def test_the_site_builds_strictly_with_the_cli_reference_the_api_and_the_notebooks(tmp_path):
    result = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr[-3000:]
    site = tmp_path / "site"
    cli = (site / "cli" / "index.html").read_text()
    assert "--margin-mm" in cli and "fetal-keras evaluate" in cli, "the CLI reference comes from the parsers"
    assert "grow_mask" in (site / "api" / "deploy" / "predict" / "index.html").read_text()
    assert all(
        (site / "notebooks" / name.stem / "index.html").is_file() for name in (ROOT / "notebooks").glob("*.ipynb")
    )
    assert (site / "results" / "figures" / "real_dice_over_training.png").is_file(), "figures the pages show"

    # The same site with one broken link in a page: the build fails and names it.
    copy = tmp_path / "copy"
    for name in ("docs", "notebooks", "benchmarks", "results", "fetal_keras"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.nii.gz"))
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    with open(copy / "docs" / "finetune.md", "a") as stream:
        stream.write("\nSee [the missing page](no_such_page.md).\n")
    broken = _build(copy / "mkdocs.yml", tmp_path / "broken_site")
    assert broken.returncode != 0 and "no_such_page.md" in broken.stderr


def test_the_readme_is_a_short_front_door_whose_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert "make demo" in readme and "make test" in readme and "make lab" in readme and "make docs" in readme
    for heading in (
        "## Mask your stacks",
        "## Train and fine-tune on your labels",
        "## Notebooks",
        "## Current results",
    ):
        assert heading in readme
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    local = [link.split("#")[0] for link in links if not link.startswith(("http", "#"))]
    assert local and all((ROOT / link).exists() for link in local), [
        link for link in local if not (ROOT / link).exists()
    ]
