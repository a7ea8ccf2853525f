"""``fetal-keras pretrained``: re-create the packaged pretrained model from the simulator, and its QC figure."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    """Register ``pretrained``."""
    from fetal_keras.training.make_pretrained import PretrainedRecipe

    defaults = PretrainedRecipe()
    parser = subparsers.add_parser(
        "pretrained",
        help="re-create the packaged pretrained model from simulated stacks (about 1.5 h on 2 CPU cores)",
        description="Simulate a training cohort (T2 and domain-randomised contrast), train the default model, select "
        "it on simulated validation stacks, test it on simulated test stacks, and write fetal_keras/weights/<name>.keras "
        "and its model card <name>.md. Rerunning reuses what an interrupted call left in --work-dir. With --qc-figure, "
        "only draw the packaged model's masks on real stacks.",
    )
    parser.add_argument(
        "--work-dir", default="results/pretrained", help="cohorts, split, run, test results (default: %(default)s)"
    )
    parser.add_argument("--weights-dir", default=None, help="where the weights and card go (default: the package's)")
    parser.add_argument(
        "--t2-subjects", type=int, default=defaults.t2_subjects, help="T2 fetuses (default: %(default)s)"
    )
    parser.add_argument(
        "--randomised-subjects",
        type=int,
        default=defaults.randomised_subjects,
        help="domain-randomised fetuses (default: %(default)s)",
    )
    parser.add_argument("--preset", default=defaults.preset, choices=("small", "realistic"), help="simulator preset")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="at most this many epochs")
    parser.add_argument("--steps-per-epoch", type=int, default=defaults.steps_per_epoch, help="batches per epoch")
    parser.add_argument(
        "--validation-every", type=int, default=defaults.validation_every, help="epochs between validations"
    )
    parser.add_argument(
        "--minutes", type=float, default=defaults.max_minutes, help="training time budget (default: %(default)s)"
    )
    parser.add_argument("--workers", type=int, default=None, help="simulation processes (default: one per core)")
    parser.add_argument(
        "--qc-figure",
        nargs="+",
        metavar="STACK",
        default=None,
        help="instead of training: draw the packaged model's masks on every third slice of these stacks into "
        "--figure (e.g. ../shared/data/real_unlabelled/*.nii.gz)",
    )
    parser.add_argument(
        "--figure", default="results/figures/pretrained_qc.png", help="QC figure path (default: %(default)s)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Make the pretrained model, or its QC figure."""
    from pathlib import Path

    from fetal_keras.models.pretrained import WEIGHTS_DIR
    from fetal_keras.training.make_pretrained import PretrainedRecipe, make_pretrained

    weights_dir = Path(args.weights_dir) if args.weights_dir else WEIGHTS_DIR
    if args.qc_figure:
        from fetal_keras.figures.paper import pretrained_qc_figure

        path = pretrained_qc_figure(args.qc_figure, args.figure, weights_dir=weights_dir)
        print(f"QC figure: {path}")
        return 0
    recipe = PretrainedRecipe(
        t2_subjects=args.t2_subjects,
        randomised_subjects=args.randomised_subjects,
        preset=args.preset,
        seed=args.seed,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        validation_every=args.validation_every,
        max_minutes=args.minutes,
    )
    make_pretrained(args.work_dir, recipe, weights_dir, workers=args.workers)
    return 0
