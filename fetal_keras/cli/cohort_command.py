"""``fetal-keras cohort``: a cohort CSV from a BIDS dataset."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    """Register ``cohort``."""
    parser = subparsers.add_parser(
        "cohort",
        help="write a cohort CSV from a BIDS dataset",
        description="List a BIDS dataset's stacks as a cohort CSV (iFIND_id,image,segmentation,subject,session,run; "
        "absolute paths), one row per stack, each stack's brain mask matched by BIDS entities from a derivatives "
        "folder. Stacks without a mask keep an empty segmentation (fine for predict, refused by train).",
    )
    parser.add_argument("--bids", required=True, metavar="DATASET", help="the BIDS dataset's root folder")
    parser.add_argument(
        "--masks",
        metavar="DERIVATIVES",
        help="derivatives dataset holding *_desc-brain_mask files, relative to DATASET or absolute, e.g. "
        "derivatives/manual_masks (default: no masks)",
    )
    parser.add_argument(
        "--participant-label", nargs="+", metavar="LABEL", help="these subjects only (01 or sub-01; default: all)"
    )
    parser.add_argument("--suffix", default="T2w", help="BIDS suffix of the stacks (default: %(default)s)")
    parser.add_argument("--mask-desc", default="brain", help="desc entity of the masks (default: %(default)s)")
    parser.add_argument("--out", default="cohort.csv", help="CSV to write (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``cohort`` and print how many stacks, masks and subjects it found."""
    from fetal_keras.data.bids import SUBJECT_COLUMN, write_bids_cohort

    table = write_bids_cohort(
        args.bids,
        args.out,
        args.masks,
        args.overwrite,
        participant_labels=args.participant_label,
        suffix=args.suffix,
        mask_desc=args.mask_desc,
    )
    labelled = int((table["segmentation"] != "").sum())
    print(f"{len(table)} stacks of {table[SUBJECT_COLUMN].nunique()} subject(s), {labelled} with a mask: {args.out}")
    return 0
