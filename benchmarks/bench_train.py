"""Training throughput of each role of the pretrained recipes: v2, the first v3 recipe, and today's.

For each role of each recipe: the network's forward GFLOP per training example (``flops_per_slab``, 2 per
multiply-add, at the recipe's slab size), training examples per second of the whole step (rendering from tissue
label maps, augmentation and the optimiser step, as ``fetal_keras.training.train`` runs them, after warm-up), the
training GFLOP/s that implies (3 x forward: forward, input and weight gradients) against this machine's float32
matmul peak measured in the same run, and the share of a run spent validating (one whole-volume validation of the
validation stacks, and of the real monitor stacks when given, against one epoch of training at the measured speed).
Target: each role of today's recipe trains at least 10x more examples per second than the first v3 recipe, and
validation takes at most 10 % of a run.

Run: .venv/bin/python benchmarks/bench_train.py [--bank CSV] [--val-csv CSV] [--monitor-csv CSV] [--batches 30]
The defaults read the work folder of ``make pretrained`` (its label bank and simulated validation split).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

RECIPES = ("v2", "v3-first", "current")


def build_parser() -> argparse.ArgumentParser:
    """The command line (built before the heavy imports, so that --help answers at once)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--bank",
        default="results/pretrained/bank/cohort.csv",
        help="labelled cohort with tissue label maps to render training slabs from (default: %(default)s)",
    )
    parser.add_argument("--bank-stacks", type=int, default=20, help="stacks of --bank loaded (default: %(default)s)")
    parser.add_argument(
        "--val-csv", default="results/pretrained/split/val.csv", help="validation stacks (default: %(default)s)"
    )
    parser.add_argument(
        "--monitor-csv",
        default="../shared/data/real_labelled/cohort.csv",
        help="real labelled stacks measured at every validation ('none' to skip; default: %(default)s)",
    )
    parser.add_argument(
        "--batches", type=int, default=30, help="training batches timed per role (default: %(default)s)"
    )
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES, help="recipes to measure")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return parser


if __name__ == "__main__":
    build_parser().parse_args()  # --help and bad arguments answer before TensorFlow is imported

import keras

from fetal_keras.data.cohort import read_cohort
from fetal_keras.data.preprocess import load_stacks
from fetal_keras.models.losses import get_loss
from fetal_keras.models.machine_speed import matmul_peak_gflops
from fetal_keras.models.networks import build_model, flops_per_slab
from fetal_keras.training.callbacks import whole_volume_dice_scores
from fetal_keras.training.recipes import PretrainedRecipe
from fetal_keras.training.train import training_bank, training_batches

ROLES = ("localiser", "segmenter")


def recipe_of(name: str) -> PretrainedRecipe:
    """The recipe a row names: ``v2`` (ICBM heads, default augmentation, 1.1 mm localiser, 16 filters, 128-pixel
    slabs), ``v3-first`` (the v3 levers at v2's network and slab sizes: row 24 of docs/sim_to_real.md) or
    ``current`` (``PretrainedRecipe()``)."""
    current = PretrainedRecipe()
    v3_first = replace(
        current,
        localiser_filters=16,
        segmenter_filters=16,
        localiser_slab_size=128,
        segmenter_slab_size=128,
        localiser_spacing_mm=1.1,
        steps_per_epoch=100,
        learning_rate_schedule="constant",
    )
    if name == "v3-first":
        return v3_first
    if name == "v2":
        return replace(
            v3_first, head_anatomy="icbm", augmentation="default", random_surroundings="maternal", steps_per_epoch=50
        )
    return current


def measure_role(name: str, role: str, args, tables: dict) -> dict:
    """One row: forward GFLOP per example, examples/s of the whole training step, validation seconds and share."""
    config = recipe_of(name).config(role, Path("split"), Path("run"), Path(args.bank))
    bank = training_bank(config, tables["bank"], progress=False)
    batches = iter(training_batches(config, bank).prefetch(2))
    model = build_model(config.preset, base_filters=config.base_filters)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=get_loss(config.loss))
    for _ in range(3):  # warm-up: tracing, the first renderings
        model.train_on_batch(*next(batches))
    start = time.perf_counter()
    for _ in range(args.batches):
        model.train_on_batch(*next(batches))
    examples_per_s = args.batches * config.batch_size / (time.perf_counter() - start)
    forward = flops_per_slab(model, config.slab_size) / 1e9
    validation = {}
    for cohort in ("val", "monitor"):
        if tables.get(cohort) is None:
            continue
        stacks = load_stacks(tables[cohort], config.preprocess, progress=False)
        start = time.perf_counter()
        whole_volume_dice_scores(model, stacks)
        validation[cohort] = time.perf_counter() - start
    epoch_s = config.steps_per_epoch * config.batch_size / examples_per_s
    validation_s = sum(validation.values())
    return {
        "recipe": name,
        "role": role,
        "filters": config.base_filters,
        "slab": config.slab_size,
        "spacing_mm": config.target_spacing_mm,
        "forward_gflop_per_example": round(forward, 3),
        "examples_per_s": round(examples_per_s, 2),
        "train_gflops": round(3 * forward * examples_per_s, 1),
        "validation_s": {name: round(seconds, 1) for name, seconds in validation.items()},
        "epoch_s": round(epoch_s, 1),
        "validation_share": round(validation_s / (validation_s + epoch_s), 3),
    }


def main() -> None:
    """Measure every role of every recipe and print one table, the ratios and a JSON line."""
    args = build_parser().parse_args()
    for path in (args.bank, args.val_csv):
        if not Path(path).is_file():
            raise SystemExit(
                f"{path} not found: run `make pretrained` (or `fetal-keras simulate --labels-only`) first, or give "
                "--bank and --val-csv."
            )
    tables = {
        "bank": read_cohort(args.bank, require_segmentation=True).head(args.bank_stacks),
        "val": read_cohort(args.val_csv, require_segmentation=True),
    }
    if args.monitor_csv.lower() != "none" and Path(args.monitor_csv).is_file():
        tables["monitor"] = read_cohort(args.monitor_csv, require_segmentation=True)
    peak = matmul_peak_gflops()
    rows = [measure_role(name, role, args, tables) for name in args.recipes for role in ROLES]
    peak_after = matmul_peak_gflops()
    print(f"float32 matmul peak: {peak:.0f} GFLOP/s before, {peak_after:.0f} after")
    print(
        f"{'recipe':9} {'role':9} {'filters':>7} {'slab':>4} {'mm':>4} {'GFLOP/ex':>8} {'ex/s':>7} {'GFLOP/s':>7} "
        f"{'% peak':>6} {'val s':>6} {'epoch s':>7} {'val %':>5}"
    )
    for row in rows:
        print(
            f"{row['recipe']:9} {row['role']:9} {row['filters']:7d} {row['slab']:4d} {row['spacing_mm']:4.1f} "
            f"{row['forward_gflop_per_example']:8.3f} {row['examples_per_s']:7.2f} {row['train_gflops']:7.1f} "
            f"{100 * row['train_gflops'] / peak:6.1f} {sum(row['validation_s'].values()):6.1f} {row['epoch_s']:7.1f} "
            f"{100 * row['validation_share']:5.1f}"
        )
    by_key = {(row["recipe"], row["role"]): row for row in rows}
    ratios = {}
    for role in ROLES:
        if ("current", role) in by_key and ("v3-first", role) in by_key:
            ratio = by_key["current", role]["examples_per_s"] / by_key["v3-first", role]["examples_per_s"]
            ratios[role] = round(ratio, 1)
            print(f"{role}: current / v3-first examples per second = {ratio:.1f} (target >= 10)")
    figures = {"matmul_peak_gflops": [round(peak), round(peak_after)], "rows": rows, "ratios": ratios}
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
