"""``fetal-keras demo``: the main job end to end, on CPU, in minutes."""

from __future__ import annotations

import argparse

from fetal_keras.training.recipes import DEMO_EPOCHS, DEMO_GUARD_MINUTES, DEMO_INIT_FROM, DEMO_STEPS_PER_EPOCH


def add_parser(subparsers) -> None:
    """Register ``demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="run the main job end to end on CPU in minutes",
        description="Simulate a small cohort, check it, split it by subject, fine-tune the packaged whole-stack "
        "U-Net on it for a fixed number of steps (a few minutes on a CPU) and export it, segment and evaluate the test split and draw the figures, writing everything "
        "under --out (summary in OUT/summary.json).",
    )
    parser.add_argument("--out", default="results/demo", help="output folder (default: %(default)s)")
    parser.add_argument(
        "--subjects", type=int, default=10, help="simulated fetuses, 3 stacks each (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of simulation, split and training (default: %(default)s)"
    )
    parser.add_argument("--epochs", type=int, default=DEMO_EPOCHS, help="training epochs (default: %(default)s)")
    parser.add_argument(
        "--steps-per-epoch",
        type=int,
        default=DEMO_STEPS_PER_EPOCH,
        help="training batches of 10 slabs per epoch (default: %(default)s)",
    )
    parser.add_argument(
        "--init-from",
        default=DEMO_INIT_FROM,
        help="starting weights, as train --init-from takes them, or 'none' for random weights (then give many more "
        "epochs) (default: %(default)s, the packaged whole-stack U-Net)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=DEMO_GUARD_MINUTES,
        help="a guard on training time: training stops after the last epoch that fits, with a warning that the "
        "result is then not the demo's (default: %(default)s)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo."""
    from fetal_keras.demo import run_demo  # TensorFlow is imported only for the commands that need it

    init_from = None if args.init_from.lower() == "none" else args.init_from
    run_demo(args.out, args.subjects, args.seed, args.epochs, args.steps_per_epoch, args.minutes, init_from)
    return 0
