"""``fetal-keras demo``: the main job end to end, on CPU, in minutes."""

from __future__ import annotations

import argparse

from fetal_keras.demo import REAL_STACKS, run_demo


def add_parser(subparsers) -> None:
    """Register ``demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="run the main job end to end on CPU in minutes",
        description="Run every step of the pipeline that exists on a small cohort and write the results to --out.",
    )
    parser.add_argument("--out", default="results/demo", help="output folder (default: %(default)s)")
    parser.add_argument(
        "--real-stacks", default=str(REAL_STACKS), help="folder of real unlabelled stacks (default: %(default)s)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo."""
    run_demo(args.out, args.real_stacks)
    return 0
