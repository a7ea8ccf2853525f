"""How well the per-stack QC score finds wrong masks: its ROC for "Dice < 0.8" on simulated stacks, easy to hard.

Simulates four groups of stacks (``small`` preset, one fetus = 3 stacks): typical fetuses (20-38 weeks), unusual
contrast (random tissue signals), young fetuses (18-22 weeks), and typical fetuses whose field of view is cut
through the brain in-plane (the image and its mask cropped at the brain's middle column); masks them with a model
(default: the packaged pair) with the code of ``fetal-keras predict``, scores each mask against the truth, and
prints the ROC AUC of ``qc_score`` for Dice < 0.8, the operating point of ``qc_flag`` (flag rate, failures caught,
false alarms) and each group's figures. Draws the ROC and the score against Dice into ``--figure``. The last line
is one JSON object with the figures.

``--cohort-csv PATH`` (with ``--work``) also writes every group's stacks as one labelled cohort, each id prefixed
with its group, for ``bench_qc_real.py --csv PATH``: it keeps every QC measurement of each mask (and the model's
probability), so that limits can be searched on a simulated development cohort beside the real one (docs/qc.md).

Run: .venv/bin/python benchmarks/bench_qc.py [--per-group 15] [--model pretrained] [--tta] [--work DIR]
     [--figure results/figures/qc_roc.png] [--table qc_stacks.csv] [--cohort-csv DIR/all.csv]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    """The command line (built before the heavy imports, so that --help answers at once)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--per-group", type=int, default=15, help="stacks per group, a multiple of 3 (default: %(default)s)"
    )
    parser.add_argument("--model", default="pretrained", help="what `fetal-keras predict --model` takes")
    parser.add_argument("--tta", action="store_true", help="test-time augmentation (adds the TTA signal)")
    parser.add_argument("--seed", type=int, default=700, help="first simulation seed (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=None, help="keep stacks and masks here (default: temporary)")
    parser.add_argument(
        "--cohort-csv",
        type=Path,
        default=None,
        help="with --work: also write all groups' stacks as one labelled cohort CSV (ids prefixed with the group) "
        "for bench_qc_real.py --csv",
    )
    parser.add_argument(
        "--figure", type=Path, default=Path("results/figures/qc_roc.png"), help="ROC figure (PNG; a PDF beside it)"
    )
    parser.add_argument(
        "--table",
        type=Path,
        default=None,
        help="also write the per-stack table here (CSV: group, stack, Dice, HD95, volumes, QC score, flag, reasons)",
    )
    return parser


if __name__ == "__main__":
    build_parser().parse_args()  # --help and bad arguments answer before TensorFlow is imported

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import SimpleITK as sitk
from sklearn.metrics import RocCurveDisplay

from fetal_keras.data.cohort import read_cohort
from fetal_keras.deploy.loading import load_predictor
from fetal_keras.deploy.predict import PredictOptions
from fetal_keras.evaluation.labelled_cohort import segment_and_score
from fetal_keras.evaluation.qc_figures import FAILURE_DICE, operating_point
from fetal_keras.figures.plots import save_figure
from fetal_keras.figures.qc_plots import score_against_dice
from fetal_keras.files import atomic_output
from fetal_keras.simulate import SimulationSettings, simulate_cohort

GROUPS = {
    "typical": {},
    "unusual contrast": {"domain_randomisation": True},
    "young (18-22 weeks)": {"ga_range_weeks": (18.0, 22.0)},
    "field of view cut": {},
}


def cut_field_of_view(csv_path: Path, folder: Path) -> Path:
    """Crop every stack of a cohort (and its mask) in-plane at its brain's middle column; return the new CSV."""
    table = read_cohort(csv_path, require_segmentation=True)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for row in table.itertuples():
        image, mask = (sitk.ReadImage(str(path)) for path in (row.image, row.segmentation))
        columns = np.flatnonzero(sitk.GetArrayViewFromImage(mask).any(axis=(0, 1)))
        middle = int((columns[0] + columns[-1]) // 2) if len(columns) else image.GetSize()[0] // 2
        paths = [folder / f"{row.iFIND_id}_{kind}.nii.gz" for kind in ("image", "mask")]
        for volume, path in zip((image, mask), paths, strict=True):
            sitk.WriteImage(volume[:middle, :, :], str(path))  # SimpleITK slicing keeps the geometry
        rows.append(
            {"iFIND_id": row.iFIND_id, "image": str(paths[0].resolve()), "segmentation": str(paths[1].resolve())}
        )
    pd.DataFrame(rows).to_csv(folder / "cohort.csv", index=False)
    return folder / "cohort.csv"


def simulated_groups(work: Path, per_group: int, seed: int) -> dict[str, Path]:
    """The cohort CSV of each group."""
    subjects = max(1, per_group // 3)
    csvs = {}
    for index, (name, settings) in enumerate(GROUPS.items()):
        folder = work / f"group{index}"
        cohort = SimulationSettings(subjects=subjects, seed=seed + index, preset="small", **settings)
        csv_path = folder / "cohort.csv" if (folder / "cohort.csv").is_file() else simulate_cohort(cohort, folder)
        csvs[name] = cut_field_of_view(csv_path, work / "cut") if name == "field of view cut" else csv_path
    return csvs


def write_combined_cohort(csvs: dict[str, Path], path: Path) -> None:
    """Every group's stacks as one labelled cohort CSV, each ``iFIND_id`` prefixed with its group's first word (the
    groups' ids repeat), written atomically."""
    tables = []
    for group, csv_path in csvs.items():
        table = read_cohort(csv_path, require_segmentation=True)
        tables.append(table.assign(iFIND_id=group.split(" ")[0] + "_" + table["iFIND_id"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as temporary:
        pd.concat(tables)[["iFIND_id", "image", "segmentation"]].to_csv(temporary, index=False)


def draw(table: pd.DataFrame, failed: np.ndarray, figure: Path) -> None:
    """The ROC of the score for failures, and the score against Dice with the flag limit."""
    fig, (roc_ax, scatter_ax) = plt.subplots(1, 2, figsize=(10, 4.2))
    if 0 < failed.sum() < len(failed):
        RocCurveDisplay.from_predictions(failed, table["qc_score"], ax=roc_ax, name="qc_score")
    roc_ax.set_title(f"failures: Dice < {FAILURE_DICE} ({int(failed.sum())} of {len(failed)})")
    score_against_dice(scatter_ax, table, "group", "the simulated truth")
    fig.tight_layout()
    save_figure(fig, figure.parent, figure.stem, dpi=120)


TABLE_COLUMNS = (
    "group",
    "iFIND_id",
    "dice",
    "hd95_mm",
    "predicted_volume_ml",
    "true_volume_ml",
    "qc_score",
    "qc_flag",
    "qc_reasons",
)


def write_table(table: pd.DataFrame, path: Path) -> None:
    """The per-stack table (``TABLE_COLUMNS`` present in ``table``), worst QC score first, written atomically."""
    columns = [column for column in TABLE_COLUMNS if column in table.columns]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as temporary:
        table.sort_values("qc_score", ascending=False)[columns].to_csv(temporary, index=False)


def main() -> None:
    args = build_parser().parse_args()
    if args.cohort_csv and not args.work:
        raise SystemExit("--cohort-csv needs --work: the stacks it names must outlive this run.")
    predictor, preprocess, description = load_predictor(args.model)
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        tables = []
        csvs = simulated_groups(work, args.per_group, args.seed)
        if args.cohort_csv:
            write_combined_cohort(csvs, args.cohort_csv)
        for group, csv_path in csvs.items():
            scored = segment_and_score(
                predictor, preprocess, description, csv_path, work / "masks" / group, PredictOptions(tta=args.tta)
            )
            tables.append(scored.assign(group=group))
    table = pd.concat(tables, ignore_index=True)
    table = table[(table["error"] == "") & (table["error_predict"].fillna("") == "")]
    failed = (table["dice"] < FAILURE_DICE).to_numpy()
    flagged = table["qc_flag"].astype(bool).to_numpy()
    figures = {
        "model": description,
        **operating_point(table["dice"], table["qc_score"], flagged),
        "flag_rate": round(float(flagged.mean()), 3),
        "groups": {
            group: {
                "stacks": int(len(rows)),
                "mean_dice": round(float(rows["dice"].mean()), 3),
                "failures": int((rows["dice"] < FAILURE_DICE).sum()),
                "flagged": int(rows["qc_flag"].astype(bool).sum()),
            }
            for group, rows in table.groupby("group", sort=False)
        },
        "reasons": table["qc_reasons"]
        .fillna("")
        .str.split(";")
        .explode()
        .replace("", np.nan)
        .dropna()
        .value_counts()
        .to_dict(),
    }
    for row in table.sort_values("qc_score", ascending=False).itertuples():
        print(
            f"{row.group:<22}{row.iFIND_id:<18} Dice {row.dice:.3f}  QC {row.qc_score:.2f}{'*' if row.qc_flag else ' '} {row.qc_reasons}"
        )
    print(
        f"{figures['stacks']} stacks, {figures['failures']} with Dice < {FAILURE_DICE}: ROC AUC {figures['roc_auc']}; "
        f"flagged {flagged.sum()} ({figures['flag_rate']:.0%}): {figures['failures_caught']} of the failures, "
        f"{figures['false_alarms']} false alarms"
    )
    draw(table, failed, args.figure)
    if args.table:
        write_table(table, args.table)
        print(f"per-stack table: {args.table}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
