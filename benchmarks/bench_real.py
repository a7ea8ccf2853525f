"""Real-stack Dice: segment labelled real stacks with the code of ``fetal-keras predict`` and evaluate them.

The number that decides between models and recipes (simulated Dice says little about real stacks). By default
the six real T2 stacks of one fetus in ``../shared/data/real_labelled/`` (never trained on by the packaged model).
Prints, per stack, Dice, HD95 (mm), predicted and true brain volume (ml), seconds and the QC score (* flagged) with
its reasons, then a summary; the last line
is one JSON object with ``mean_dice``, ``min_dice``, ``median_hd95_mm`` and ``seconds_per_stack``.

Run: .venv/bin/python benchmarks/bench_real.py [--model pretrained|RUN|SAVED_MODEL|FILE.keras|PAIR] [--localiser LOC] [--csv COHORT]
     [--tta] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fetal_keras.choices import DEFAULT_LOCALISER_SLAB_STEP
from fetal_keras.cli.predict_command import add_deploy_switches

DEFAULT_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_labelled" / "cohort.csv"


def build_parser() -> argparse.ArgumentParser:
    """The command line (built before the heavy imports, so that --help answers at once)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default="pretrained", help="what `fetal-keras predict --model` takes (default: pretrained)"
    )
    parser.add_argument(
        "--localiser", default=None, help="a localiser to pair with --model, as `fetal-keras predict --localiser`"
    )
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV, help=f"labelled cohort CSV (default: {DEFAULT_CSV})")
    parser.add_argument("--tta", action="store_true", help="test-time augmentation (flips), as predict --tta")
    parser.add_argument("--brain-labels", default=None, help="label values that are brain (default: every non-zero)")
    parser.add_argument("--out", type=Path, default=None, help="keep the masks here (default: a temporary folder)")
    parser.add_argument(
        "--localiser-slab-step",
        type=int,
        choices=(1, 3),
        default=DEFAULT_LOCALISER_SLAB_STEP,
        help="a pair's localiser on every slice (1) or tiling slabs (3), as predict takes it (default: %(default)s)",
    )
    add_deploy_switches(parser)
    return parser


if __name__ == "__main__":
    build_parser().parse_args()  # --help and bad arguments answer before TensorFlow is imported

from fetal_keras.deploy.loading import load_pair, load_predictor
from fetal_keras.deploy.predict import PredictOptions
from fetal_keras.evaluation.labelled_cohort import segment_and_score, summarise


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    if not args.csv.is_file():
        raise SystemExit(f"{args.csv} does not exist: pass --csv with a labelled cohort.")

    if args.localiser:
        predictor, preprocess, description = load_pair(args.localiser, args.model)
    else:
        predictor, preprocess, description = load_predictor(args.model)
    brain_labels = [int(v) for v in args.brain_labels.split(",")] if args.brain_labels else None
    table = segment_and_score(
        predictor,
        preprocess,
        description,
        args.csv,
        args.out,
        PredictOptions(
            tta=args.tta,
            localiser_slab_step=args.localiser_slab_step,
            fill_slice_holes=args.fill_slice_holes,
            stack_batch_norm=args.stack_batch_norm,
            pad_cut_margin=args.pad_cut_margin,
        ),
        brain_labels,
    )
    print(
        f"model: {description}; TTA: {args.tta}; localiser slab step {args.localiser_slab_step}; slice holes filled: "
        f"{args.fill_slice_holes}; stack batch norm: {args.stack_batch_norm}; cut margin padded: "
        f"{args.pad_cut_margin}; cohort: {args.csv}"
    )
    print(f"{'stack':<24}{'Dice':>8}{'HD95 mm':>10}{'pred ml':>10}{'true ml':>10}{'seconds':>9}{'QC':>6}  reasons")
    for row in table.itertuples():
        problem = row.error or row.error_predict
        print(
            f"{row.iFIND_id:<24}{row.dice:>8.3f}{row.hd95_mm:>10.1f}{row.predicted_volume_ml:>10.1f}"
            f"{row.true_volume_ml:>10.1f}{row.seconds:>9.2f}{row.qc_score:>6.2f}{'*' if row.qc_flag else ' '} "
            f"{row.qc_reasons if isinstance(row.qc_reasons, str) else ''}" + (f"  ERROR {problem}" if problem else "")
        )
    summary = {"model": description, "tta": args.tta, "localiser_slab_step": args.localiser_slab_step}
    summary |= {
        "fill_slice_holes": args.fill_slice_holes,
        "stack_batch_norm": args.stack_batch_norm,
        "pad_cut_margin": args.pad_cut_margin,
    }
    summary |= summarise(table) | {"qc_flagged": [row.iFIND_id for row in table.itertuples() if row.qc_flag is True]}
    print(f"mean Dice {summary['mean_dice']}, min {summary['min_dice']}, median HD95 {summary['median_hd95_mm']} mm")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
