"""``fetal-keras demo``: the main job end to end, on CPU, in minutes."""

from __future__ import annotations

import argparse

from fetal_keras.demo import run_demo


def add_parser(subparsers) -> None:
    """Register ``demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="run the main job end to end on CPU in minutes",
        description="Simulate a small cohort, check it and split it by subject (training, evaluation and figures "
        "join as they land), writing everything under --out.",
    )
    parser.add_argument("--out", default="results/demo", help="output folder (default: %(default)s)")
    parser.add_argument(
        "--subjects", type=int, default=10, help="simulated fetuses, 3 stacks each (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of simulation and split (default: %(default)s)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo."""
    run_demo(args.out, args.subjects, args.seed)
    return 0
