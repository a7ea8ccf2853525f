"""``fetal-keras split``: subject-level train/val/test (and k-fold) split files."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    """Register ``split``."""
    parser = subparsers.add_parser(
        "split",
        help="split a cohort by subject into train/val/test CSV files",
        description="Split a cohort CSV by subject (never by row position) into OUT/train.csv, OUT/val.csv, "
        "OUT/test.csv and OUT/split.json; with --folds K also OUT/fold-<k>/{train,val}.csv over the non-test "
        "subjects. No subject is ever in two sets.",
    )
    parser.add_argument("--csv", required=True, help="cohort CSV with columns iFIND_id,image,segmentation")
    parser.add_argument("--out", required=True, help="output folder, e.g. data_splits/my_cohort")
    parser.add_argument(
        "--val", type=float, default=0.2, help="fraction of subjects for validation (default: %(default)s)"
    )
    parser.add_argument(
        "--test", type=float, default=0.2, help="fraction of subjects for testing (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--folds", type=int, default=None, help="also write K cross-validation folds of the non-test subjects"
    )
    parser.add_argument(
        "--group-by",
        default=None,
        help="how stacks map to subjects: a CSV column, or a regular expression on iFIND_id whose first group is "
        "the subject, e.g. '^(sub-[^_]+)' (default: the 'subject' column if present, else each iFIND_id)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a split already in --out")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``split`` and print the size of each set."""
    from fetal_keras.data.cohort import read_cohort
    from fetal_keras.data.splits import SplitSettings, make_splits, write_splits
    from fetal_keras.files import ensure_not_input

    settings = SplitSettings(args.val, args.test, args.seed, args.folds, args.group_by)
    table = read_cohort(args.csv)
    splits = make_splits(table, settings)
    for name in splits:
        ensure_not_input(f"{args.out}/{name}.csv", [args.csv])
    written = write_splits(splits, args.out, args.csv, settings, overwrite=args.overwrite)
    for name, subset in splits.items():
        print(f"{name:>12}: {len(subset):4d} stacks, {subset['subject'].nunique():4d} subjects")
    print(f"Wrote {len(written)} files to {args.out}")
    return 0
