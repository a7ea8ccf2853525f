"""Everything visual QC needs about one predicted stack: image, truth, prediction, uncertainty and QC flags."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fetal_keras.data.cohort import ID_COLUMN, IMAGE_COLUMN, SEGMENTATION_COLUMN, read_cohort
from fetal_keras.data.io import read_stack
from fetal_keras.data.labels import read_brain_mask
from fetal_keras.files import output_paths


@dataclass(frozen=True)
class QcCase:
    """One stack with its masks, all ``[z, y, x]`` on the stack's grid; ``truth``/``uncertainty`` may be None."""

    stack_id: str
    image: np.ndarray
    spacing_mm: tuple[float, float, float]
    prediction: np.ndarray
    truth: np.ndarray | None
    uncertainty: np.ndarray | None
    flagged_slices: tuple[int, ...]


def _flagged(pred_dir: Path, stack_id: str) -> tuple[int, ...]:
    """QC-flagged slices of ``stack_id`` from ``pred_dir/predictions.csv`` (empty if not listed)."""
    table_path = pred_dir / "predictions.csv"
    if not table_path.is_file():
        return ()
    table = pd.read_csv(table_path, dtype={"flagged_slices": str}, keep_default_na=False)
    rows = table[table[ID_COLUMN] == stack_id]
    if rows.empty or not rows.iloc[0]["flagged_slices"]:
        return ()
    return tuple(int(index) for index in rows.iloc[0]["flagged_slices"].split(";"))


def load_qc_case(
    csv_path: str | Path, pred_dir: str | Path, stack_id: str, brain_labels: Sequence[int] | None = None
) -> QcCase:
    """Read stack ``stack_id`` of a cohort CSV with the outputs ``fetal-keras predict`` wrote for it in ``pred_dir``.

    Args:
        csv_path: the cohort CSV (segmentations optional).
        pred_dir: the prediction folder (``<id>_mask.nii.gz``, optional ``<id>_uncertainty.nii.gz``,
            ``predictions.csv``).
        stack_id: the ``iFIND_id`` of the stack.
        brain_labels: label values that count as brain in the segmentation (default: every non-zero label).

    Raises:
        KeyError: if ``stack_id`` is not in the CSV.
        FileNotFoundError / ValueError: if a file is missing or unreadable (named in the message).
    """
    table = read_cohort(csv_path).set_index(ID_COLUMN)
    if stack_id not in table.index:
        raise KeyError(f"{stack_id!r} is not an iFIND_id of {csv_path}")
    row = table.loc[stack_id]
    pred_dir = Path(pred_dir)
    stack = read_stack(row[IMAGE_COLUMN])
    segmentation = row.get(SEGMENTATION_COLUMN) or None
    truth = read_brain_mask(segmentation, brain_labels) if segmentation else None
    outputs = output_paths(pred_dir, stack_id)
    return QcCase(
        stack_id=stack_id,
        image=stack.array,
        spacing_mm=stack.geometry.spacing_mm,
        prediction=read_stack(outputs["mask"]).array,
        truth=truth,
        uncertainty=read_stack(outputs["uncertainty"]).array if outputs["uncertainty"].is_file() else None,
        flagged_slices=_flagged(pred_dir, stack_id),
    )
