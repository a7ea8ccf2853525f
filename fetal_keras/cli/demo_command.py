"""``fetal-keras demo``: the main job end to end, on CPU, in minutes."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    """Register ``demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="run the main job end to end on CPU in minutes",
        description="Simulate a small cohort, check it, split it by subject, train the default model for a few "
        "minutes on CPU and export it, segment and evaluate the test split and draw the figures, writing everything "
        "under --out (summary in OUT/summary.json).",
    )
    parser.add_argument("--out", default="results/demo", help="output folder (default: %(default)s)")
    parser.add_argument(
        "--subjects", type=int, default=10, help="simulated fetuses, 3 stacks each (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of simulation, split and training (default: %(default)s)"
    )
    parser.add_argument("--epochs", type=int, default=12, help="training epochs (default: %(default)s)")
    parser.add_argument(
        "--steps-per-epoch", type=int, default=25, help="training batches of 10 slabs per epoch (default: %(default)s)"
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=8.0,
        help="training time budget: stop after the last epoch that fits (default: %(default)s)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo."""
    from fetal_keras.demo import run_demo  # TensorFlow is imported only for the commands that need it

    run_demo(args.out, args.subjects, args.seed, args.epochs, args.steps_per_epoch, args.minutes)
    return 0
