"""Open every file of a cohort and report every problem at once (``fetal-keras check``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from fetal_keras.choices import CHECK_PURPOSES
from fetal_keras.data.cohort import ID_COLUMN, IMAGE_COLUMN, SEGMENTATION_COLUMN, load_table, table_problems
from fetal_keras.data.io import Stack, StackReadError, read_stack
from fetal_keras.data.labels import brain_mask_from_labels, label_value_problem
from fetal_keras.data.problems import Problem, Severity

PURPOSES = CHECK_PURPOSES


@dataclass(frozen=True)
class CheckOptions:
    """What a cohort is checked for.

    Attributes:
        purpose: ``"train"`` (segmentations required; an empty brain mask is a warning) or ``"predict"``
            (segmentations optional; an empty mask is fine).
        brain_labels: label values that count as brain; None: any non-zero voxel.
        allowed_labels: every label value allowed in a segmentation; None: any non-negative integer.
        max_spacing_mm: spacings above this are reported as implausible (warning).
    """

    purpose: str = "train"
    brain_labels: Sequence[int] | None = None
    allowed_labels: Sequence[int] | None = None
    max_spacing_mm: float = 20.0

    def __post_init__(self):
        if self.purpose not in PURPOSES:
            raise ValueError(f"purpose must be one of {PURPOSES}, got {self.purpose!r}.")


def _millimetres(values) -> str:
    return "(" + ", ".join(f"{value:.4g}" for value in values) + ")"


def image_problems(stack: Stack, options: CheckOptions) -> list[tuple[Severity, str]]:
    """(severity, message) pairs for an intensity stack: non-finite or constant voxels, odd spacings."""
    found = []
    spacing = np.asarray(stack.geometry.spacing_mm)
    if not np.isfinite(spacing).all() or (spacing <= 0).any():
        found.append((Severity.ERROR, f"invalid voxel spacing {_millimetres(spacing)} mm"))
    elif (spacing > options.max_spacing_mm).any():
        found.append(
            (
                Severity.WARNING,
                f"implausible voxel spacing {_millimetres(spacing)} mm (> {options.max_spacing_mm:g} mm)",
            )
        )
    elif spacing[2] < 0.99 * spacing[:2].max():
        found.append(
            (
                Severity.WARNING,
                f"the slice axis (third voxel axis, {spacing[2]:.3g} mm) is not the thickest "
                f"(in-plane {spacing[0]:.3g} x {spacing[1]:.3g} mm): fetal_keras takes the third voxel axis "
                "as the slice axis; is this a 2D slice stack?",
            )
        )
    finite = np.isfinite(stack.array)
    if not finite.all():
        nan_count = int(np.isnan(stack.array).sum())
        found.append(
            (Severity.ERROR, f"{nan_count} NaN and {int((~finite).sum()) - nan_count} infinite intensity values")
        )
    elif stack.array.size and stack.array.min() == stack.array.max():
        value = stack.array.flat[0]
        found.append((Severity.ERROR, f"every voxel has the same intensity {value} (empty or blank image)"))
    if stack.array.shape[0] < 3:
        found.append((Severity.WARNING, f"only {stack.array.shape[0]} slice(s); slabs of 3 slices will be padded"))
    return found


def segmentation_problems(image: Stack, segmentation: Stack, options: CheckOptions) -> list[tuple[Severity, str]]:
    """(severity, message) pairs for a segmentation: grid mismatch with its image, label values, empty mask."""
    differences = image.geometry.differences(segmentation.geometry)
    if differences:
        return [(Severity.ERROR, "segmentation grid differs from the image: " + "; ".join(differences))]
    value_problem = label_value_problem(segmentation.array, options.allowed_labels)
    if value_problem:
        return [(Severity.ERROR, value_problem)]
    if options.purpose == "train" and not brain_mask_from_labels(segmentation.array, options.brain_labels).any():
        labels = "any non-zero label" if options.brain_labels is None else f"labels {list(options.brain_labels)}"
        return [(Severity.WARNING, f"empty brain mask (no voxel with {labels}); no brain-centred slab can be drawn")]
    return []


def _read(path: str) -> tuple[Stack | None, str | None]:
    """The stack, or None and the reason it cannot be read (without the path, which the Problem names)."""
    try:
        return read_stack(path), None
    except (StackReadError, FileNotFoundError) as error:
        return None, str(error).removeprefix(f"{path} ")


def check_row(row: pd.Series, line: int, csv: str, options: CheckOptions) -> list[Problem]:
    """Open one row's image (and segmentation) and return its problems."""
    subject = row[ID_COLUMN]

    def problem(severity: Severity, message: str, path: str) -> Problem:
        return Problem(severity, message, csv, line, subject, path)

    image, error = _read(row[IMAGE_COLUMN])
    if image is None:
        return [problem(Severity.ERROR, error, row[IMAGE_COLUMN])]
    found = [problem(severity, message, row[IMAGE_COLUMN]) for severity, message in image_problems(image, options)]
    if row[SEGMENTATION_COLUMN]:
        segmentation, error = _read(row[SEGMENTATION_COLUMN])
        if segmentation is None:
            return found + [problem(Severity.ERROR, error, row[SEGMENTATION_COLUMN])]
        found += [
            problem(severity, message, row[SEGMENTATION_COLUMN])
            for severity, message in segmentation_problems(image, segmentation, options)
        ]
    return found


def shared_image_problems(table: pd.DataFrame, csv: str) -> list[Problem]:
    """A WARNING for each row whose image file is also used by an earlier row (a leak waiting to happen)."""
    problems = []
    first_line_of: dict[str, int] = {}
    for line, row in table.iterrows():
        path = row[IMAGE_COLUMN]
        if path in first_line_of:
            message = f"same image file as line {first_line_of[path]}"
            problems.append(Problem(Severity.WARNING, message, csv, line, row[ID_COLUMN], path))
        elif path:
            first_line_of[path] = line
    return problems


def check_cohort(csv_path: str | Path, options: CheckOptions | None = None, progress: bool = True) -> list[Problem]:
    """Check a cohort CSV and every file it names; return all problems instead of stopping at the first.

    Args:
        csv_path: the cohort CSV.
        options: what to check for (default: for training, any non-zero label is brain).
        progress: show a progress bar over rows.

    Returns:
        Problems sorted by CSV line; an unreadable CSV is a single problem without a line.
    """
    options = options or CheckOptions()
    csv = str(csv_path)
    require_segmentation = options.purpose == "train"
    try:
        table = load_table(csv_path, require_segmentation)
    except (FileNotFoundError, ValueError) as error:
        return [Problem(Severity.ERROR, str(error), csv)]
    problems = table_problems(table, csv, require_segmentation) + shared_image_problems(table, csv)
    rows = [(line, row) for line, row in table.iterrows() if row[IMAGE_COLUMN]]
    for line, row in tqdm(rows, desc="checking stacks", unit="stack", disable=not progress):
        problems += check_row(row, line, csv, options)
    return sorted(problems, key=lambda problem: (problem.line or 0, problem.severity != Severity.ERROR))
