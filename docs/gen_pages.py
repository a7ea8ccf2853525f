"""Pages of the documentation site made at build time (mkdocs-gen-files): the CLI reference from the argparse
parsers, one Python API page per module from its docstrings, the notebooks, the benchmarks' README and the
figures the pages show (repository files outside docs/, linked as ``../results/...`` so that they also render on
the repository's web view)."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fetal_keras"


def cli_reference() -> str:
    """Every command's ``--help``, as argparse prints it."""
    from fetal_keras.cli.main import COMMANDS, build_parser

    os.environ["COLUMNS"] = "110"
    sections = ["# Command line\n", "Generated from the parsers of `fetal-keras` (`fetal_keras/cli/`).\n"]
    sections.append(f"```text\n{build_parser().format_help()}```\n")
    for command in COMMANDS:
        parser = argparse.ArgumentParser(prog="fetal-keras")
        subparsers = parser.add_subparsers()
        command.add_parser(subparsers)
        for name, subparser in subparsers.choices.items():
            sections.append(f"## fetal-keras {name}\n\n```text\n{subparser.format_help()}```\n")
    return "\n".join(sections)


def api_pages() -> dict[str, str]:
    """``api/<module path>.md`` -> a mkdocstrings directive, for every module of the package."""
    pages = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] in ("__init__", "__main__"):
            continue
        module = ".".join(parts)
        pages["api/" + "/".join(parts[1:]) + ".md"] = f"::: {module}\n"
    return pages


with mkdocs_gen_files.open("cli.md", "w") as stream:
    stream.write(cli_reference())
pages = api_pages()
for name, content in pages.items():
    with mkdocs_gen_files.open(name, "w") as stream:
        stream.write(content)
with mkdocs_gen_files.open("api/index.md", "w") as stream:
    stream.write("# Python API\n\nOne page per module of `fetal_keras`, from its docstrings.\n\n")
    stream.write("".join(f"- [`fetal_keras.{name[4:-3].replace('/', '.')}`]({name[4:]})\n" for name in pages))
for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
    with mkdocs_gen_files.open(f"notebooks/{notebook.name}", "w") as stream:
        stream.write(notebook.read_text(encoding="utf-8"))
with mkdocs_gen_files.open("benchmarks.md", "w") as stream:
    stream.write((ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8"))
for figure in sorted((ROOT / "results" / "figures").glob("*.png")):
    with mkdocs_gen_files.open(f"results/figures/{figure.name}", "wb") as stream:
        stream.write(figure.read_bytes())


def site_links(text: str, page: str) -> str:
    """A page's links to repository files outside docs/ (``../X``, right on the repository's web view) as the site
    gives them: figures copied beside the pages, other files named as repository paths.

    Raises:
        FileNotFoundError: for a link to a repository file that does not exist (a broken link fails the build).
    """

    def relink(match: re.Match) -> str:
        label, target = match.group(1), match.group(2)
        path = target.split("#")[0]
        if not (ROOT / path).exists():
            raise FileNotFoundError(f"docs/{page} links ../{target}, which is not in the repository.")
        if path.startswith("results/figures/"):
            return f"[{label}]({target})"
        return f"{label} (`{path}` in the repository)"

    return re.sub(r"\[([^\]]*)\]\(\.\./([^)\s]+)\)", relink, text)


for page in sorted((ROOT / "docs").glob("*.md")):
    with mkdocs_gen_files.open(page.name, "w") as stream:
        stream.write(site_links(page.read_text(encoding="utf-8"), page.name))
