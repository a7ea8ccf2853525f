"""Real failed masks for the QC score: many masking systems on labelled real stacks, each mask scored and measured.

Real stacks fail in ways simulated ones do not (masks reaching past the skull, a second region beside the head,
holes on bright ventricles). This masks a labelled real cohort (default: the six shared stacks) with every system
of ``--systems`` (the packaged models, deliberately weakened deploys, training runs; a system whose files are
absent is skipped), keeps each mask with its probability (and each averaged model's own) and the localiser's head under ``--out``, and writes one
row per (system, stack): Dice, HD95, volumes, the QC score, flag and reasons, and every QC measurement
(``value_<signal>``). The stacks are split into a **development** part, on which the score's limits may be set,
and a **held-out** part (``--held-out``: a regular expression on ``iFIND_id``; default the even runs, one stack of
each orientation), measured only. Prints, for each part, the ROC AUC of ``qc_score`` for Dice < 0.8, the flag's
operating point, and each signal's AUC alone; the last line is one JSON object with the figures.

Masks already under ``--out`` are reused (``--rescore`` recomputes only the QC and the figures, after a change to
the score). None of these stacks trains a packaged model; nothing chosen here chooses a checkpoint.

Run: .venv/bin/python benchmarks/bench_qc_real.py [--csv COHORT] [--systems benchmarks/qc_real_systems.json]
     [--out results/qc_real] [--held-out 'run-[246]$'] [--figure results/figures/qc_real_roc.png]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_CSV = REPOSITORY.parent / "shared" / "data" / "real_labelled" / "cohort.csv"


def build_parser() -> argparse.ArgumentParser:
    """The command line (built before the heavy imports, so that --help answers at once)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="labelled cohort CSV (default: %(default)s)")
    parser.add_argument(
        "--systems",
        type=Path,
        default=REPOSITORY / "benchmarks" / "qc_real_systems.json",
        help="JSON list of masking systems (name, model, optional localiser, options, target_spacing_mm)",
    )
    parser.add_argument(
        "--out", type=Path, default=REPOSITORY / "results" / "qc_real", help="masks and table (default: %(default)s)"
    )
    parser.add_argument(
        "--held-out",
        default=r"run-[246]$",
        help="regular expression on iFIND_id of the held-out stacks (default: %(default)s)",
    )
    parser.add_argument("--rescore", action="store_true", help="do not mask anything new; rescore the masks kept")
    parser.add_argument(
        "--figure",
        type=Path,
        default=REPOSITORY / "results" / "figures" / "qc_real_roc.png",
        help="the score against Dice, both parts (PNG; a PDF beside it)",
    )
    return parser


if __name__ == "__main__":
    build_parser().parse_args()  # --help and bad arguments answer before TensorFlow is imported

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from fetal_keras.data.cohort import read_cohort
from fetal_keras.data.io import read_geometry, read_stack, write_mask
from fetal_keras.data.labels import read_brain_mask
from fetal_keras.deploy.loading import load_pair, load_predictor
from fetal_keras.deploy.localise import LocalisedSegmenter
from fetal_keras.deploy.mask_signals import bright_rim_share, dropped_share, slice_hole_share
from fetal_keras.deploy.predict import PredictOptions, flagged_slices, locate_head, predict_stack
from fetal_keras.deploy.stack_qc import QcSettings, stack_qc
from fetal_keras.evaluation.evaluate import mask_metrics
from fetal_keras.evaluation.qc_figures import FAILURE_DICE, operating_point, roc_auc
from fetal_keras.figures.plots import save_figure
from fetal_keras.figures.qc_plots import score_against_dice
from fetal_keras.files import atomic_output, member_probability_path, output_paths
from fetal_keras.models.pretrained import PAIR_FILE, read_pair_weights

# Measurements not in the score, measured alone (larger = more likely failed).
CANDIDATE_SIGNALS = {
    "weak_boundary": lambda case: 1.0 - bright_rim_share(case["image"], case["mask"], case["spacing"]),
    "slice_holes": lambda case: slice_hole_share(case["mask"]),
    "dropped_brain": lambda case: dropped_share(case["probability"], case["mask"]),
}


def read_systems(path: Path) -> list[dict]:
    """The systems of a ``--systems`` file, each with its ``name`` and ``model``."""
    systems = json.loads(path.read_text())["systems"]
    for system in systems:
        if not {"name", "model"} <= system.keys():
            raise SystemExit(f"{path}: every system needs a name and a model, got {system}")
    return systems


def _resolve(spec: str | None) -> str | None:
    """A model spec with repository-relative paths made absolute (``pretrained...`` names stay)."""
    if spec is None or spec.startswith("pretrained"):
        return spec
    return str(REPOSITORY / spec)


def mask_cohort(system: dict, stacks: pd.DataFrame, folder: Path) -> None:
    """Mask every stack with one system into ``folder`` (mask, probability, uncertainty with TTA, and the
    localiser's head for pairs), skipping stacks already masked there."""
    model, localiser = _resolve(system["model"]), _resolve(system.get("localiser"))
    if localiser:
        predictor, preprocess, _ = load_pair(localiser, model)
    else:
        predictor, preprocess, _ = load_predictor(model)
    if "target_spacing_mm" in system:
        preprocess = dataclasses.replace(preprocess, target_spacing_mm=float(system["target_spacing_mm"]))
    options = PredictOptions(save_probabilities=True, **system.get("options", {}))
    for row in stacks.itertuples():
        paths = output_paths(folder, row.iFIND_id)
        if paths["mask"].is_file() and paths["prob"].is_file():
            continue
        predict_stack(predictor, row.iFIND_id, row.image, paths, options, preprocess)
        if isinstance(predictor, LocalisedSegmenter):
            head = locate_head(predictor, row.iFIND_id, row.image, options)
            write_mask(head, read_geometry(row.image), folder / f"{row.iFIND_id}_head.nii.gz")


def _member_maps(probability_path: Path) -> list[np.ndarray]:
    """The averaged models' own probabilities written beside their mean's (none for a single model)."""
    maps = []
    while (path := member_probability_path(probability_path, len(maps) + 1)).is_file():
        maps.append(read_stack(path).array)
    return maps


def segmenter_weights(system: dict) -> list[float] | None:
    """The weights a system's pair folder gives its averaged segmenters (None: equal, or not a pair folder)."""
    model = _resolve(system["model"])
    if model is None or model.startswith("pretrained") or not (Path(model) / PAIR_FILE).is_file():
        return None
    return read_pair_weights(model).get("segmenter")


def score_case(system: str, row, folder: Path, weights: list[float] | None = None) -> dict:
    """One (system, stack) row: metrics against the truth, the QC score and every measurement (``weights``: the
    averaged segmenters' weights, None for equal)."""
    stack = read_stack(row.image)
    paths = output_paths(folder, row.iFIND_id)
    head_path = folder / f"{row.iFIND_id}_head.nii.gz"
    case = {
        "image": stack.array,
        "spacing": stack.geometry.spacing_mm,
        "mask": read_stack(paths["mask"]).array > 0,
        "probability": read_stack(paths["prob"]).array,
        "spread": read_stack(paths["uncertainty"]).array if paths["uncertainty"].is_file() else None,
        "head": read_stack(head_path).array > 0 if head_path.is_file() else None,
    }
    flagged = flagged_slices(case["mask"].astype(np.uint8), case["spread"], PredictOptions())
    qc = stack_qc(
        case["mask"],
        case["spacing"],
        case["probability"],
        case["spread"],
        case["head"],
        flagged,
        member_probabilities=_member_maps(paths["prob"]),
        member_weights=weights,
    )
    metrics = mask_metrics(case["mask"], read_brain_mask(row.segmentation), case["spacing"])
    values = qc.values | {name: measure(case) for name, measure in CANDIDATE_SIGNALS.items()}
    return {
        "system": system,
        "iFIND_id": row.iFIND_id,
        **metrics,
        "qc_score": qc.score,
        "qc_flag": qc.flag,
        "qc_reasons": ";".join(qc.reasons),
        **{f"value_{name}": value for name, value in values.items()},
    }


def signal_aucs(part: pd.DataFrame) -> dict[str, float | None]:
    """Each measurement's ROC AUC alone for Dice < 0.8 (larger = worse; smaller-is-worse signals negated)."""
    failed = part["dice"] < FAILURE_DICE
    signals = QcSettings().signals
    aucs = {}
    for column in [c for c in part.columns if c.startswith("value_") and c != "value_volume_ml"]:
        name = column.removeprefix("value_")
        values = part[column].astype(float)
        known = values.notna()
        if name in signals and signals[name].certain < signals[name].start:
            values = -values
        aucs[name] = roc_auc(failed[known], values[known]) if known.sum() > 1 else None
    return aucs


def draw(table: pd.DataFrame, figure: Path) -> None:
    """The QC score against Dice, development and held-out stacks apart, with the flag limit."""
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    score_against_dice(ax, table, "part", "the manual mask")
    ax.set_title("QC score of real masks from many systems")
    fig.tight_layout()
    save_figure(fig, figure.parent, figure.stem, dpi=120)


def main() -> None:
    args = build_parser().parse_args()
    if not args.csv.is_file():
        raise SystemExit(f"{args.csv} does not exist: pass --csv with a labelled cohort.")
    stacks = read_cohort(args.csv, require_segmentation=True)
    rows = []
    for system in read_systems(args.systems):
        folder = args.out / "masks" / system["name"]
        missing = [s for s in (system["model"], system.get("localiser")) if s and not s.startswith("pretrained")]
        missing = [s for s in missing if not (REPOSITORY / s).exists()]
        if missing and not folder.is_dir():
            print(f"{system['name']}: skipped ({', '.join(missing)} not found)")
            continue
        if not args.rescore:
            print(f"{system['name']}: masking {len(stacks)} stacks", flush=True)
            mask_cohort(system, stacks, folder)
        weights = segmenter_weights(system)
        rows += [score_case(system["name"], row, folder, weights) for row in stacks.itertuples()]
    table = pd.DataFrame(rows)
    held_out = table["iFIND_id"].str.contains(re.compile(args.held_out))
    table["part"] = np.where(held_out, "held-out", "development")
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_output(args.out / "qc_real_table.csv") as temporary:
        table.to_csv(temporary, index=False)
    figures = {}
    for part, rows_of_part in table.groupby("part", sort=False):
        figures[part] = operating_point(rows_of_part["dice"], rows_of_part["qc_score"], rows_of_part["qc_flag"])
        figures[part]["signal_auc"] = signal_aucs(rows_of_part)
    for row in table.sort_values("qc_score", ascending=False).itertuples():
        print(
            f"{row.part:<12}{row.system:<22}{row.iFIND_id:<14} Dice {row.dice:.3f}  QC {row.qc_score:.2f}"
            f"{'*' if row.qc_flag else ' '} {row.qc_reasons}"
        )
    for part, numbers in figures.items():
        print(
            f"{part}: {numbers['stacks']} masks, {numbers['failures']} with Dice < {FAILURE_DICE}: ROC AUC "
            f"{numbers['roc_auc']}; flagged {numbers['flagged']}: {numbers['failures_caught']} failures, "
            f"{numbers['false_alarms']} false alarms; Dice < 0.7 flagged {numbers['bad_flagged']} of "
            f"{numbers['bad']}, Dice >= 0.85 flagged {numbers['good_flagged']} of {numbers['good']}"
        )
        print("  each signal alone (ROC AUC): " + ", ".join(f"{k} {v}" for k, v in numbers["signal_auc"].items()))
    draw(table, args.figure)
    print(f"table: {args.out / 'qc_real_table.csv'}; figure: {args.figure}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
