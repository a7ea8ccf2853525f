"""Fine-tuning on a few labelled stacks: packaged weights against random ones, at the same wall-clock budget.

For each training set (by default one stack, and three stacks with one per slice orientation) and each start
(``pretrained``: the packaged pair; ``scratch``: random weights with the same network and preprocessing), train a
localiser and a segmenter with the small-cohort recipe of ``fetal_keras.training.small_cohort`` within ``--minutes``
of training in all, then segment every stack not trained on with the deploy code (``fetal-keras predict``'s pair
deploy, last epoch: nothing is selected on the test stacks) and score it. The stacks of the shared real set are all
one fetus: a user's own cohort would hold out whole subjects instead.

Prints a table (mean and minimum Dice per training set and start) and, last, one JSON object with
``dice_by_training_stacks`` (``{"1": {"pretrained": {...}, "scratch": {...}}, "3": ...}``) and ``minutes``.

``--protocol orientation`` measures forgetting instead (issue 34): for each slice orientation, fine-tune from the
packaged pair on that orientation's stacks only (2 of the six shared ones) and test on all the others, once per
``--seeds``, beside the packaged pair on the same test stacks; it prints, per split, the packaged and fine-tuned
mean Dice, the change and the spread over seeds, and writes the per-run table to ``--table``. With ``--sim-csv`` (a
held-out simulated cohort of all ages) every fine-tuned pair is also scored there beside the packaged one: what it
must not forget.

Run: .venv/bin/python benchmarks/bench_finetune.py [--csv COHORT] [--minutes 10] [--starts pretrained scratch]
     [--sizes 1 3] [--train-ids ID [ID ...]] [--set NAME=VALUE ...] [--work DIR]
     .venv/bin/python benchmarks/bench_finetune.py --protocol orientation [--seeds 0 1] [--minutes 5] [--set ...]
     [--table finetune_orientation.csv] [--sim-csv SIM_COHORT]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from fetal_keras.training.recipes import STARTS

DEFAULT_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_labelled" / "cohort.csv"


def build_parser() -> argparse.ArgumentParser:
    """The command line (built before the heavy imports, so that --help answers at once)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV, help=f"labelled cohort CSV (default: {DEFAULT_CSV})")
    parser.add_argument(
        "--minutes", type=float, default=10.0, help="training budget of each condition, both roles together (10)"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="batches per role (the minutes then only bound them); default: none"
    )
    parser.add_argument("--starts", nargs="+", default=list(STARTS), choices=STARTS, help="starting weights to compare")
    parser.add_argument(
        "--train-ids",
        nargs="+",
        default=None,
        help="the larger training set (default: one stack per slice orientation); the one-stack set is its first",
    )
    parser.add_argument(
        "--sizes", nargs="+", type=int, default=[1, 3], help="training-set sizes, each the first N of the larger set"
    )
    parser.add_argument(
        "--set",
        dest="settings",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="override a TrainConfig setting of the recipe (VALUE as JSON, else text), e.g. --set batch_size=5 "
        "learning_rate_schedule=cosine",
    )
    parser.add_argument("--work", type=Path, default=None, help="keep runs and masks here (default: temporary)")
    parser.add_argument(
        "--protocol",
        choices=("sizes", "orientation"),
        default="sizes",
        help="sizes: packaged vs random starts on 1 and 3 stacks; orientation: train on one orientation's stacks, "
        "test on the others, beside the packaged pair (default: %(default)s)",
    )
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=[42], help="seeds of the orientation protocol (default: %(default)s)"
    )
    parser.add_argument("--table", type=Path, default=None, help="orientation protocol: the per-run table (CSV)")
    parser.add_argument(
        "--sim-csv",
        type=Path,
        default=None,
        help="orientation protocol: a held-out simulated cohort (e.g. all ages, both presets) on which each "
        "fine-tuned pair is scored beside the packaged one: what it must not forget (default: none)",
    )
    return parser


if __name__ == "__main__":
    build_parser().parse_args()  # --help and bad arguments answer before TensorFlow is imported

import pandas as pd

from fetal_keras.data.cohort import read_cohort
from fetal_keras.deploy.loading import load_predictor
from fetal_keras.evaluation.labelled_cohort import segment_and_score, summarise
from fetal_keras.files import atomic_output
from fetal_keras.models.pretrained import PRETRAINED_SPEC
from fetal_keras.training.small_cohort import (
    fine_tune_pair,
    one_stack_per_orientation,
    stacks_by_orientation,
    write_fine_tuning_split,
)


def _setting(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` as (name, value): VALUE read as JSON, else kept as text (``schedule=cosine``)."""
    if "=" not in text:
        raise SystemExit(f"--set takes NAME=VALUE, got {text!r}.")
    name, value = text.split("=", 1)
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def _scored(model, test_csv: Path) -> dict:
    """A model's (or pair folder's) summary on the test stacks, with each stack's Dice."""
    table = segment_and_score(*load_predictor(model), test_csv)
    return summarise(table) | {"dice": dict(zip(table["iFIND_id"], table["dice"].round(4), strict=True))}


def orientation_protocol(args, cohort: pd.DataFrame, settings: dict, work: Path) -> None:
    """Fine-tune on each orientation's stacks, test on the others, per seed, beside the packaged pair."""
    rows = []
    sim_packaged = _scored(PRETRAINED_SPEC, args.sim_csv) if args.sim_csv else None
    for orientation, train_ids in stacks_by_orientation(cohort).items():
        split = write_fine_tuning_split(cohort, train_ids, work / f"train_{orientation}")
        packaged = _scored(PRETRAINED_SPEC, split.test_csv)
        for seed in args.seeds:
            pair = fine_tune_pair(
                split.train_csv,
                split.test_csv,
                work / f"train_{orientation}" / f"seed{seed}",
                "pretrained",
                args.minutes,
                args.steps,
                **(settings | {"seed": seed}),
            )
            tuned = _scored(pair, split.test_csv)
            row = {
                "train_orientation": orientation,
                "train_ids": ";".join(train_ids),
                "seed": seed,
                "packaged_mean_dice": packaged["mean_dice"],
                "mean_dice": tuned["mean_dice"],
                "min_dice": tuned["min_dice"],
                "median_hd95_mm": tuned["median_hd95_mm"],
                "dice": json.dumps(tuned["dice"]),
            }
            if sim_packaged is not None:
                sim_tuned = _scored(pair, args.sim_csv)
                row |= {"sim_packaged_mean_dice": sim_packaged["mean_dice"], "sim_mean_dice": sim_tuned["mean_dice"]}
            rows.append(row)
            print(f"trained on {orientation} {train_ids}, seed {seed}: packaged {packaged['mean_dice']} -> {tuned}")
    table = pd.DataFrame(rows)
    if args.table:
        with atomic_output(args.table) as temporary:
            table.to_csv(temporary, index=False)
    splits = table.groupby("train_orientation", sort=False)
    by_split = splits.agg(
        packaged=("packaged_mean_dice", "first"),
        fine_tuned=("mean_dice", "mean"),
        worst_seed=("mean_dice", "min"),
        spread=("mean_dice", lambda dice: dice.max() - dice.min()),
    )
    by_split["change"] = by_split["fine_tuned"] - by_split["packaged"]
    if sim_packaged is not None:
        by_split["sim_change_worst_seed"] = splits["sim_mean_dice"].min() - sim_packaged["mean_dice"]
    print(by_split.round(3).to_string())
    print(
        json.dumps(
            {
                "protocol": "orientation",
                "minutes": args.minutes,
                "settings": settings,
                "splits": by_split.round(4).to_dict(orient="index"),
            }
        )
    )


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    if not args.csv.is_file():
        raise SystemExit(f"{args.csv} does not exist: pass --csv with a labelled cohort.")

    cohort = read_cohort(args.csv, require_segmentation=True)
    settings = dict(_setting(item) for item in args.settings)
    if args.protocol == "orientation":
        with tempfile.TemporaryDirectory() as scratch:
            orientation_protocol(args, cohort, settings, args.work or Path(scratch))
        return
    larger = args.train_ids or one_stack_per_orientation(cohort, max(args.sizes))
    training_sets = {str(n): larger[:n] for n in sorted(set(args.sizes))}
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        for size, train_ids in training_sets.items():
            split = write_fine_tuning_split(cohort, train_ids, work / f"train_{size}")
            for start in args.starts:
                pair = fine_tune_pair(
                    split.train_csv,
                    split.test_csv,
                    work / f"train_{size}" / start,
                    start,
                    args.minutes,
                    args.steps,
                    **settings,
                )
                results.setdefault(size, {})[start] = _scored(pair, split.test_csv) | {"train_ids": train_ids}
                print(f"trained on {train_ids} from {start}: {results[size][start]}", flush=True)

    print(f"\n{'training stacks':<18}{'start':<12}{'mean Dice':>10}{'min Dice':>10}{'HD95 mm':>10}{'tested':>8}")
    for size, by_start in results.items():
        for start, summary in by_start.items():
            print(
                f"{size:<18}{start:<12}{summary['mean_dice']:>10.3f}{summary['min_dice']:>10.3f}"
                f"{summary['median_hd95_mm']:>10.1f}{summary['stacks']:>8}"
            )
    print(
        json.dumps(
            {"dice_by_training_stacks": results, "minutes": args.minutes, "settings": settings, "csv": str(args.csv)}
        )
    )


if __name__ == "__main__":
    main()
