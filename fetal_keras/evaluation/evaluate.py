"""Segmentation metrics per stack, in physical units, with SimpleITK filters, and a cohort summary.

Conventions (stated once, used everywhere):
- Masks are compared on the stack's grid; prediction and truth must share it (size, spacing, origin, direction).
- Dice and Jaccard: 1.0 when both masks are empty, 0.0 when exactly one is.
- Surface distances (mm, anisotropic spacing respected) are measured between the masks' boundary voxels
  (``sitk.LabelContour``) through Euclidean distance maps (``sitk.SignedMaurerDistanceMap``). HD95 is the larger of
  the two directed 95th percentiles; ASSD is the mean over both directions' distances. Both are 0 when both masks
  are empty and NaN (undefined: no surface to measure from) when exactly one is.
- Sensitivity is NaN for an empty truth, precision NaN for an empty prediction.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from tqdm.auto import tqdm

from fetal_keras.data.bids import bids_cohort
from fetal_keras.data.cohort import ID_COLUMN, SEGMENTATION_COLUMN, read_cohort
from fetal_keras.data.io import mask_image, read_stack
from fetal_keras.data.labels import brain_mask_from_labels
from fetal_keras.files import output_paths

METRIC_COLUMNS = (
    "dice",
    "jaccard",
    "hd95_mm",
    "assd_mm",
    "sensitivity",
    "precision",
    "true_volume_ml",
    "predicted_volume_ml",
)


def _directed_surface_distances(source: sitk.Image, target: sitk.Image) -> np.ndarray:
    """Distances (mm) from every boundary voxel of ``source`` to the boundary of ``target``."""
    target_surface = sitk.LabelContour(target, fullyConnected=False)
    distance = sitk.SignedMaurerDistanceMap(
        target_surface, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    source_surface = sitk.GetArrayFromImage(sitk.LabelContour(source, fullyConnected=False)) > 0
    return np.abs(sitk.GetArrayFromImage(distance)[source_surface])


def mask_metrics(prediction: np.ndarray, truth: np.ndarray, spacing_mm) -> dict[str, float]:
    """Every metric of ``METRIC_COLUMNS`` for two binary ``[z, y, x]`` masks on one grid.

    Args:
        prediction: predicted brain mask.
        truth: reference brain mask.
        spacing_mm: (x, y, z) voxel spacing in mm, as SimpleITK gives it.
    """
    if prediction.shape != truth.shape:
        raise ValueError(f"Prediction shape {prediction.shape} differs from truth shape {truth.shape}.")
    predicted, true = prediction.astype(bool), truth.astype(bool)
    voxel_ml = float(np.prod(spacing_mm)) / 1000.0
    overlap, n_predicted, n_true = int((predicted & true).sum()), int(predicted.sum()), int(true.sum())
    metrics = {
        "sensitivity": overlap / n_true if n_true else math.nan,
        "precision": overlap / n_predicted if n_predicted else math.nan,
        "true_volume_ml": n_true * voxel_ml,
        "predicted_volume_ml": n_predicted * voxel_ml,
    }
    if not n_true and not n_predicted:
        return metrics | {"dice": 1.0, "jaccard": 1.0, "hd95_mm": 0.0, "assd_mm": 0.0}
    if not n_true or not n_predicted:
        return metrics | {"dice": 0.0, "jaccard": 0.0, "hd95_mm": math.nan, "assd_mm": math.nan}
    predicted_image, true_image = mask_image(predicted, spacing_mm), mask_image(true, spacing_mm)
    overlap_filter = sitk.LabelOverlapMeasuresImageFilter()
    overlap_filter.Execute(true_image, predicted_image)
    forward = _directed_surface_distances(predicted_image, true_image)
    backward = _directed_surface_distances(true_image, predicted_image)
    return metrics | {
        "dice": overlap_filter.GetDiceCoefficient(),
        "jaccard": overlap_filter.GetJaccardCoefficient(),
        "hd95_mm": float(max(np.percentile(forward, 95), np.percentile(backward, 95))),
        "assd_mm": float(np.concatenate([forward, backward]).mean()),
    }


def evaluate_cohort(
    csv_path: str | Path, pred_dir: str | Path, brain_labels=None, progress: bool = True
) -> pd.DataFrame:
    """Metrics of every labelled stack of a cohort against ``pred_dir/<id>_mask.nii.gz``.

    A stack whose prediction is missing, unreadable or on another grid gets NaN metrics and its reason in the
    ``error`` column; the others are still evaluated.
    """
    table = read_cohort(csv_path, require_segmentation=True)
    predictions = [str(output_paths(pred_dir, stack_id)["mask"]) for stack_id in table[ID_COLUMN]]
    return evaluate_pairs(
        list(zip(table[ID_COLUMN], table[SEGMENTATION_COLUMN], predictions, strict=True)), brain_labels, progress
    )


def evaluate_bids(
    dataset: str | Path, masks: str | Path, reference: str | Path, brain_labels=None, progress: bool = True
) -> pd.DataFrame:
    """Metrics of the brain masks of one derivatives dataset (``masks``, e.g. ``derivatives/fetal_keras``) against
    those of another (``reference``, e.g. ``derivatives/manual_masks``), stack by stack of the BIDS ``dataset``.

    A stack with a reference mask but no mask to score gets NaN metrics and its reason, as in
    :func:`evaluate_cohort`.

    Raises:
        ValueError: if ``masks`` holds no mask, or masks of stacks that have no reference mask (named).
        FileNotFoundError, ValueError: as ``fetal_keras.data.bids.bids_cohort``.
    """
    scored = bids_cohort(dataset, masks).set_index(ID_COLUMN)[SEGMENTATION_COLUMN]
    truth = bids_cohort(dataset, reference).set_index(ID_COLUMN)[SEGMENTATION_COLUMN]
    if not (scored != "").any():
        raise ValueError(f"{Path(dataset) / masks} holds no brain mask of any stack of {dataset}.")
    unmatched = sorted(scored[(scored != "") & (truth == "")].index)
    if unmatched:
        raise ValueError(
            f"{len(unmatched)} mask(s) of {masks} have no reference mask in {reference}: {', '.join(unmatched)}."
        )
    pairs = [(stack_id, path, scored[stack_id]) for stack_id, path in truth.items() if path]
    return evaluate_pairs(pairs, brain_labels, progress)


def evaluate_pairs(pairs: list[tuple[str, str, str]], brain_labels=None, progress: bool = True) -> pd.DataFrame:
    """Metrics of each ``(stack id, segmentation path, predicted mask path)`` (an empty predicted path: no mask); a
    failing pair gets NaN metrics and its reason in the ``error`` column."""
    rows = []
    for stack_id, segmentation, prediction in tqdm(pairs, desc="evaluating", unit="stack", disable=not progress):
        record = {"iFIND_id": stack_id, "prediction": str(prediction), "error": ""}
        try:
            if not prediction:
                raise FileNotFoundError("no mask to score for this stack")
            truth = read_stack(segmentation)
            predicted = read_stack(prediction)
            differences = truth.geometry.differences(predicted.geometry)
            if differences:
                raise ValueError("prediction grid differs from the segmentation: " + "; ".join(differences))
            truth_mask = brain_mask_from_labels(truth.array, brain_labels)
            record |= mask_metrics(predicted.array > 0, truth_mask, truth.geometry.spacing_mm)
        except (ValueError, FileNotFoundError) as error:
            record |= {name: math.nan for name in METRIC_COLUMNS} | {"error": str(error)}
        rows.append(record)
    return pd.DataFrame(rows, columns=["iFIND_id", *METRIC_COLUMNS, "prediction", "error"])


def summarize(metrics: pd.DataFrame, dice_threshold: float = 0.9) -> dict:
    """Mean, sd, median of each metric over evaluated stacks (NaN excluded), and how many fall below a Dice."""
    evaluated = metrics[metrics["error"] == ""]
    summary = {
        "stacks": int(len(metrics)),
        "evaluated": int(len(evaluated)),
        "failed": int(len(metrics) - len(evaluated)),
        f"dice_below_{dice_threshold}": int((evaluated["dice"] < dice_threshold).sum()),
    }
    for name in METRIC_COLUMNS:
        values = evaluated[name].dropna()
        summary[name] = {
            "mean": float(values.mean()) if len(values) else None,
            "sd": float(values.std(ddof=1)) if len(values) > 1 else None,
            "median": float(values.median()) if len(values) else None,
            "n": int(len(values)),
        }
    return summary
