"""``fetal-keras evaluate``: per-stack metrics of predicted masks against a labelled cohort, and a summary."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    """Register ``evaluate``."""
    parser = subparsers.add_parser(
        "evaluate",
        help="compare predicted masks with a labelled cohort",
        description="Per stack: Dice, Jaccard, HD95 and ASSD in mm, sensitivity, precision, true and predicted brain "
        "volume in ml, written to --out; the summary (mean, sd, median, stacks with Dice < 0.9) is printed and written "
        "beside it as <out>_summary.json. Predictions are read from PRED_DIR/<iFIND_id>_mask.nii.gz, or with --bids "
        "from one derivatives dataset of a BIDS dataset, scored against another.",
    )
    parser.add_argument("--csv", default=None, help="labelled cohort CSV (iFIND_id,image,segmentation)")
    parser.add_argument("--pred-dir", default=None, help="folder of <iFIND_id>_mask.nii.gz predictions")
    parser.add_argument(
        "--bids",
        default=None,
        metavar="DATASET",
        help="instead of --csv and --pred-dir: a BIDS dataset whose --masks derivatives are scored against its "
        "--reference derivatives",
    )
    parser.add_argument("--masks", default=None, help="with --bids: derivatives to score, e.g. derivatives/fetal_keras")
    parser.add_argument(
        "--reference", default=None, help="with --bids: reference derivatives, e.g. derivatives/manual_masks"
    )
    parser.add_argument("--out", required=True, help="metrics CSV to write, e.g. metrics.csv")
    parser.add_argument(
        "--brain-labels", default=None, help="label values that are brain in the segmentations (default: any non-zero)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``evaluate``; exit 1 when some stack could not be evaluated."""
    from fetal_keras.data.labels import parse_label_values
    from fetal_keras.evaluation.evaluate import evaluate_bids, evaluate_cohort, summarize
    from fetal_keras.files import atomic_output, ensure_not_input, write_json

    _check_sources(args)
    out = Path(args.out)
    summary_path = out.with_name(f"{out.stem}_summary.json")
    ensure_not_input(out, [args.csv] if args.csv else [])
    brain_labels = parse_label_values(args.brain_labels)
    if args.bids:
        metrics = evaluate_bids(args.bids, args.masks, args.reference, brain_labels, progress=not args.quiet)
    else:
        metrics = evaluate_cohort(args.csv, args.pred_dir, brain_labels, progress=not args.quiet)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = summarize(metrics)
    with atomic_output(out) as temporary:
        metrics.to_csv(temporary, index=False, float_format="%.6g")
    write_json(summary_path, summary)
    dice = summary["dice"]
    if dice["n"]:
        sd = f" +/- {dice['sd']:.3f}" if dice["sd"] is not None else ""
        print(
            f"Dice {dice['mean']:.3f}{sd} (median {dice['median']:.3f}) over {dice['n']} stacks; "
            f"{summary['dice_below_0.9']} below 0.9"
        )
    for name in ("hd95_mm", "assd_mm"):
        if summary[name]["n"]:
            print(f"{name}: {summary[name]['mean']:.2f} (median {summary[name]['median']:.2f})")
    for _, row in metrics[metrics["error"] != ""].iterrows():
        print(f"not evaluated: {row['iFIND_id']}: {row['error']}")
    print(f"Metrics: {out}; summary: {summary_path}")
    return 1 if summary["failed"] else 0


def _check_sources(args: argparse.Namespace) -> None:
    """Either --csv with --pred-dir, or --bids with --masks and --reference."""
    plain, bids = ("csv", "pred_dir"), ("masks", "reference")
    wanted, other = (bids, plain) if args.bids else (plain, bids)
    misplaced, missing = _given(args, other), _given(args, wanted, given=False)
    if misplaced:
        where = (
            "do not apply with --bids (its masks are --masks and --reference)"
            if args.bids
            else "only apply with --bids"
        )
        raise ValueError(f"{', '.join(misplaced)} {where}.")
    if missing:
        needs = (
            "--bids needs {} (derivatives folders of the dataset)"
            if args.bids
            else "evaluate needs {} (or --bids DATASET --masks A --reference B)"
        )
        raise ValueError(needs.format(" and ".join(missing)) + ".")


def _given(args: argparse.Namespace, names: tuple[str, ...], given: bool = True) -> list[str]:
    """The options among ``names`` (attribute names) that were given (or, with ``given`` False, were not)."""
    return [f"--{name.replace('_', '-')}" for name in names if bool(getattr(args, name)) == given]
