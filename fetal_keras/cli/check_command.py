"""``fetal-keras check``: report every problem of a cohort CSV and its files at once."""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import asdict

from fetal_keras.choices import CHECK_PURPOSES


def add_parser(subparsers) -> None:
    """Register ``check``."""
    parser = subparsers.add_parser(
        "check",
        help="check a cohort CSV and every stack it names, listing all problems",
        description="Open every image and segmentation of a cohort CSV (iFIND_id,image,segmentation) and list "
        "every problem by CSV line and file. Exit code 0: usable; 1: errors found (or warnings with --strict).",
    )
    parser.add_argument("--csv", required=True, help="cohort CSV with columns iFIND_id,image,segmentation")
    parser.add_argument(
        "--purpose",
        choices=CHECK_PURPOSES,
        default="train",
        help="train: segmentations required, empty masks warned about; predict: segmentations optional "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--brain-labels",
        default=None,
        help="comma-separated label values that count as brain, e.g. 2 for iFIND data (default: any non-zero)",
    )
    parser.add_argument(
        "--allowed-labels",
        default=None,
        help="comma-separated label values a segmentation may hold, e.g. 0,2,9,10 (default: any non-negative integer)",
    )
    parser.add_argument("--report", default=None, help="also write the problems to this CSV file")
    parser.add_argument("--strict", action="store_true", help="exit with 1 on warnings too")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``check`` and print one line per problem, then a summary."""
    import pandas as pd

    from fetal_keras.data.check import CheckOptions, check_cohort
    from fetal_keras.data.labels import parse_label_values
    from fetal_keras.data.problems import Severity
    from fetal_keras.files import atomic_output

    options = CheckOptions(
        purpose=args.purpose,
        brain_labels=parse_label_values(args.brain_labels),
        allowed_labels=parse_label_values(args.allowed_labels),
    )
    problems = check_cohort(args.csv, options, progress=not args.quiet)
    for problem in problems:
        print(problem.describe())
    counts = Counter(problem.severity for problem in problems)
    errors, warnings = counts[Severity.ERROR], counts[Severity.WARNING]
    rows_with_errors = len({p.line for p in problems if p.severity is Severity.ERROR and p.line is not None})
    print(f"{args.csv}: {errors} error(s) on {rows_with_errors} row(s), {warnings} warning(s).")
    if args.report:
        with atomic_output(args.report) as temporary:
            pd.DataFrame(
                [asdict(p) | {"severity": p.severity.value} for p in problems],
                columns=["severity", "message", "csv", "line", "subject", "file"],
            ).to_csv(temporary, index=False)
        print(f"Report written to {args.report}")
    return 1 if errors or (args.strict and warnings) else 0
