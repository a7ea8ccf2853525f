"""Read a cohort CSV (``iFIND_id,image,segmentation``) into a table with resolved file paths.

Relative paths are resolved against the CSV's own folder, so a cohort folder can be moved or shared as a whole.
The table's index is the line number in the CSV file (the header is line 1), so every message can point the
user at the line to fix.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from fetal_keras.data.problems import Problem, Severity, raise_for_errors

ID_COLUMN = "iFIND_id"
IMAGE_COLUMN = "image"
SEGMENTATION_COLUMN = "segmentation"
LABELS_COLUMN = "labels"  # optional: tissue label maps (``fetal-keras simulate``), for training on rendered images


def _resolve(value: str, folder: Path) -> str:
    if not value:
        return ""
    path = Path(value).expanduser()
    return os.path.normpath(path if path.is_absolute() else folder / path)


def load_table(csv_path: str | Path, require_segmentation: bool = False) -> pd.DataFrame:
    """Read the CSV's structure: columns present, values as stripped strings, paths made absolute.

    Args:
        csv_path: the cohort CSV.
        require_segmentation: whether the ``segmentation`` column must exist (training, evaluation). When it is
            optional and absent, an empty one is added.

    Returns:
        A table indexed by CSV line number with at least ``iFIND_id``, ``image`` and ``segmentation``
        (absolute paths; ``""`` where a stack has no segmentation), plus any extra columns of the CSV.

    Raises:
        FileNotFoundError: if the CSV does not exist.
        ValueError: if it cannot be parsed, has no rows, or lacks a required column.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"Cohort CSV {csv_path} does not exist.")
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False, skip_blank_lines=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise ValueError(
            f"Cohort CSV {csv_path} is empty: expected a header line 'iFIND_id,image,segmentation'."
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ValueError(f"Cohort CSV {csv_path} cannot be parsed as CSV: {error}") from None
    table.columns = [str(column).strip() for column in table.columns]
    required = [ID_COLUMN, IMAGE_COLUMN] + ([SEGMENTATION_COLUMN] if require_segmentation else [])
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise ValueError(
            f"Cohort CSV {csv_path} lacks column(s) {', '.join(map(repr, missing))}; found columns "
            f"{', '.join(map(repr, table.columns))}. Expected a header 'iFIND_id,image,segmentation'."
        )
    if SEGMENTATION_COLUMN not in table.columns:
        table[SEGMENTATION_COLUMN] = ""
    table = table.apply(lambda column: column.str.strip())
    table.index = pd.RangeIndex(2, len(table) + 2, name="line")
    table = table[(table != "").any(axis=1)]
    if table.empty:
        raise ValueError(f"Cohort CSV {csv_path} has a header but no rows.")
    folder = Path(os.path.abspath(csv_path)).parent
    for column in (IMAGE_COLUMN, SEGMENTATION_COLUMN, LABELS_COLUMN):
        if column in table.columns:
            table[column] = table[column].map(lambda value: _resolve(value, folder))
    return table


def table_problems(table: pd.DataFrame, csv_path: str | Path, require_segmentation: bool = False) -> list[Problem]:
    """Problems visible in the table itself: empty ids or paths, duplicate ids, missing segmentations."""
    csv = str(csv_path)
    problems = []
    duplicated = table[ID_COLUMN].duplicated(keep=False) & (table[ID_COLUMN] != "")
    for line, row in table.iterrows():
        subject = row[ID_COLUMN]
        if not subject:
            problems.append(Problem(Severity.ERROR, "empty iFIND_id", csv, line))
        elif duplicated[line]:
            others = [other for other in table.index[table[ID_COLUMN] == subject] if other != line]
            problems.append(
                Problem(Severity.ERROR, f"duplicate iFIND_id, also on line(s) {others}", csv, line, subject)
            )
        if not row[IMAGE_COLUMN]:
            problems.append(Problem(Severity.ERROR, "empty image path", csv, line, subject))
        if require_segmentation and not row[SEGMENTATION_COLUMN]:
            problems.append(
                Problem(
                    Severity.ERROR, "no segmentation given (needed for training and evaluation)", csv, line, subject
                )
            )
    return problems


def file_problems(table: pd.DataFrame, csv_path: str | Path) -> list[Problem]:
    """One ERROR per image or segmentation path that is not an existing file."""
    problems = []
    for line, row in table.iterrows():
        for column in (IMAGE_COLUMN, SEGMENTATION_COLUMN):
            path = row[column]
            if path and not Path(path).is_file():
                what = "does not exist" if not Path(path).exists() else "is not a file"
                problems.append(Problem(Severity.ERROR, f"{column} {what}", str(csv_path), line, row[ID_COLUMN], path))
    return problems


def read_cohort(csv_path: str | Path, require_segmentation: bool = False) -> pd.DataFrame:
    """Read a cohort CSV and refuse it, listing every problem at once, if any row is unusable.

    Only the table and file existence are checked here; ``fetal_keras.data.check`` also opens every file.

    Args:
        csv_path: the cohort CSV (``iFIND_id,image,segmentation``, extra columns kept).
        require_segmentation: True for training and evaluation, False for prediction.

    Returns:
        The table from :func:`load_table`.

    Raises:
        FileNotFoundError: if the CSV does not exist.
        ValueError: listing every empty id or path, duplicate id, missing segmentation and missing file.
    """
    table = load_table(csv_path, require_segmentation)
    raise_for_errors(table_problems(table, csv_path, require_segmentation) + file_problems(table, csv_path))
    return table
