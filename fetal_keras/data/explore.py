"""A cohort at a glance: one row per stack with grid, orientation, intensity range and brain volume."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from tqdm.auto import tqdm

from fetal_keras.data.cohort import ID_COLUMN, IMAGE_COLUMN, SEGMENTATION_COLUMN, read_cohort
from fetal_keras.data.io import read_stack
from fetal_keras.data.labels import read_brain_mask


def orientation_code(direction: tuple[float, ...]) -> str:
    """Three-letter anatomical orientation of a direction matrix (DICOM/ITK convention, e.g. ``LPS``)."""
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(direction)


def describe_stack(
    image_path: str | Path, segmentation_path: str | Path | None = None, brain_labels: Sequence[int] | None = None
) -> dict:
    """Grid, orientation, intensity percentiles and (with a segmentation) brain volume of one stack.

    Args:
        image_path: the stack.
        segmentation_path: its label map, if any.
        brain_labels: label values that count as brain (default: every non-zero label).

    Returns:
        A dict with ``slices``, ``rows``, ``columns``, ``spacing_mm`` (x, y, z), ``slice_thickness_mm``,
        ``orientation``, ``intensity_p1``, ``intensity_p99``, ``intensity_max`` and ``brain_volume_ml``
        (NaN without a segmentation).
    """
    stack = read_stack(image_path)
    geometry = stack.geometry
    low, high = np.percentile(stack.array, (1, 99))
    volume = np.nan
    if segmentation_path:
        brain = read_brain_mask(segmentation_path, brain_labels)
        volume = float(brain.sum()) * float(np.prod(geometry.spacing_mm)) / 1000.0
    return {
        "slices": geometry.size[2],
        "rows": geometry.size[1],
        "columns": geometry.size[0],
        "spacing_mm": "x".join(f"{value:.3g}" for value in geometry.spacing_mm),
        "slice_thickness_mm": geometry.slice_thickness_mm,
        "orientation": orientation_code(geometry.direction),
        "intensity_p1": float(low),
        "intensity_p99": float(high),
        "intensity_max": float(stack.array.max()),
        "brain_volume_ml": volume,
    }


def describe_cohort(
    csv_path: str | Path, brain_labels: Sequence[int] | None = None, progress: bool = True
) -> pd.DataFrame:
    """:func:`describe_stack` of every row of a cohort CSV, with the CSV's extra columns kept.

    A stack that cannot be read gets its reason in the ``error`` column instead of failing the table.
    """
    table = read_cohort(csv_path)
    rows = []
    for _, row in tqdm(table.iterrows(), total=len(table), desc="describing", unit="stack", disable=not progress):
        record = {ID_COLUMN: row[ID_COLUMN]}
        try:
            record |= describe_stack(row[IMAGE_COLUMN], row.get(SEGMENTATION_COLUMN) or None, brain_labels)
            record["error"] = ""
        except (ValueError, FileNotFoundError) as error:
            record["error"] = str(error)
        rows.append(record)
    described = pd.DataFrame(rows)
    extra = [column for column in table.columns if column not in (ID_COLUMN, IMAGE_COLUMN, SEGMENTATION_COLUMN)]
    merged = described.merge(table[[ID_COLUMN, *extra]], on=ID_COLUMN, how="left")
    return merged[[column for column in merged.columns if column != "error"] + ["error"]]
