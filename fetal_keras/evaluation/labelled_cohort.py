"""Segment a labelled cohort with the deploy code and score it: the measurement behind the real-stack benchmarks."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pandas as pd

from fetal_keras.data.cohort import read_cohort
from fetal_keras.data.preprocess import PreprocessConfig
from fetal_keras.deploy.predict import PredictOptions, predict_many
from fetal_keras.evaluation.evaluate import evaluate_cohort


def segment_and_score(
    predictor,
    preprocess: PreprocessConfig,
    description: str,
    csv_path: str | Path,
    out_dir: str | Path | None = None,
    options: PredictOptions | None = None,
    brain_labels=None,
) -> pd.DataFrame:
    """Segment every stack of a labelled cohort as ``fetal-keras predict`` does, then evaluate the masks.

    Args:
        predictor: the model or pair, as ``fetal_keras.deploy.loading.load_predictor`` returns it.
        preprocess: its preprocessing (idem).
        description: its description for the tables (idem).
        csv_path: a cohort CSV with segmentations.
        out_dir: where the masks are kept (default: a temporary folder, deleted afterwards).
        options: deploy options (TTA, post-processing; default ``PredictOptions()``).
        brain_labels: label values of the segmentations that are brain (default: every non-zero label).

    Returns:
        One row per stack: the metrics of ``fetal_keras.evaluation.evaluate`` (``dice``, ``hd95_mm``, volumes) and
        ``seconds``, the QC columns (``qc_score``, ``qc_flag``, ``qc_reasons``) and ``error_predict`` from
        ``predictions.csv``.
    """
    stacks = read_cohort(csv_path, require_segmentation=True)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(out_dir) if out_dir else Path(scratch)
        predictions = predict_many(
            predictor,
            list(zip(stacks["iFIND_id"], stacks["image"], strict=True)),
            out,
            options or PredictOptions(),
            preprocess,
            description,
            progress=False,
        )
        metrics = evaluate_cohort(csv_path, out, brain_labels, progress=False)
    columns = ["iFIND_id", "seconds", "qc_score", "qc_flag", "qc_reasons", "error"]
    return metrics.merge(predictions[columns], on="iFIND_id", suffixes=("", "_predict"))


def summarise(table: pd.DataFrame) -> dict:
    """``mean_dice``, ``min_dice`` (a stack that could not be segmented counts as Dice 0), ``median_hd95_mm``,
    ``seconds_per_stack``, and the number of ``stacks`` and ``failed`` ones, of a :func:`segment_and_score` table."""
    dice = table["dice"].fillna(0.0)

    def finite(value) -> float | None:
        return None if value is None or math.isnan(value) else round(float(value), 4)

    return {
        "stacks": int(len(table)),
        "failed": int(((table["error"] != "") | (table["error_predict"].fillna("") != "")).sum()),
        "mean_dice": finite(dice.mean()),
        "min_dice": finite(dice.min()),
        "median_hd95_mm": finite(table["hd95_mm"].median()),
        "seconds_per_stack": finite(table["seconds"].mean()),
    }
