"""``fetal-keras pretrained``: re-create the packaged localiser + segmenter pair from the simulator, and its QC figure."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_REAL_CSV = Path("../shared/data/real_labelled/cohort.csv")


def add_parser(subparsers) -> None:
    """Register ``pretrained``."""
    from fetal_keras.choices import AUGMENTATIONS, HEAD_ANATOMIES, LEARNING_RATE_SCHEDULES, SURROUNDINGS
    from fetal_keras.models.pretrained import RECIPE_PAIR_NAME
    from fetal_keras.training.recipes import PretrainedRecipe

    defaults = PretrainedRecipe()
    parser = subparsers.add_parser(
        "pretrained",
        help="re-create the packaged localiser + segmenter pair from simulated stacks (about 2 h on 2 CPU cores)",
        description="Simulate a training cohort with tissue label maps, train a localiser and a segmenter on images "
        "rendered from the label maps with random contrasts, choose each role's checkpoint on --selection-csv, test the pair "
        "on simulated test stacks (and measure it on real labelled stacks when present, never training on them), and "
        "write fetal_keras/weights/<name>/ and its model card <name>.md. Rerunning reuses what an interrupted call left "
        "in --work-dir. With --qc-figure, only draw the packaged model's masks on real stacks.",
    )
    parser.add_argument(
        "--work-dir", default="results/pretrained", help="cohort, split, runs, test results (default: %(default)s)"
    )
    parser.add_argument("--weights-dir", default=None, help="where the weights and card go (default: the package's)")
    parser.add_argument(
        "--subjects",
        type=int,
        default=defaults.subjects,
        help="fetuses with images, 3 stacks each: validation and test (and training without a bank) (default: "
        "%(default)s)",
    )
    parser.add_argument("--preset", default=defaults.preset, choices=("small", "realistic"), help="simulator preset")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed (default: %(default)s)")
    parser.add_argument(
        "--ga-range",
        type=float,
        nargs=2,
        default=defaults.ga_range_weeks,
        metavar=("LOW", "HIGH"),
        help="gestational ages in weeks of every simulated fetus, within 18-38 (default: %(default)s)",
    )
    parser.add_argument(
        "--steps-per-epoch", type=int, default=defaults.steps_per_epoch, help="batches per epoch (default: %(default)s)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help="slabs per batch (default: %(default)s)"
    )
    parser.add_argument(
        "--validation-every", type=int, default=defaults.validation_every, help="epochs between validations"
    )
    parser.add_argument(
        "--base-filters",
        type=int,
        default=None,
        help="filters of both networks' first level, doubling at each level below (default: each role's own, "
        "--localiser-filters and --segmenter-filters; smaller is faster and weaker, e.g. 2 for a smoke test)",
    )
    parser.add_argument(
        "--localiser-spacing",
        type=float,
        default=defaults.localiser_spacing_mm,
        help="the localiser's in-plane spacing in mm (default: %(default)s)",
    )
    parser.add_argument(
        "--learning-rate-schedule",
        default=defaults.learning_rate_schedule,
        choices=LEARNING_RATE_SCHEDULES,
        help="both roles' learning rate: constant, or cosine (annealed to 0 by each role's last epoch or time "
        "budget) (default: %(default)s)",
    )
    for role in ("localiser", "segmenter"):
        for option, kind, help_text in (
            ("filters", int, f"filters of the {role}'s first U-Net level"),
            ("slab-size", int, f"in-plane pixels of the {role}'s training slabs, a multiple of 8"),
            ("epochs", int, f"at most this many {role} epochs"),
            ("minutes", float, f"{role} training time budget in minutes"),
        ):
            parser.add_argument(
                f"--{role}-{option}",
                type=kind,
                default=getattr(defaults, f"{role}_{option.replace('-', '_')}"),
                help=f"{help_text} (default: %(default)s)",
            )
    parser.add_argument(
        "--random-surroundings",
        default=defaults.random_surroundings,
        choices=SURROUNDINGS,
        help="what the rendering's random shapes replace: the maternal tissues, or also the fetal body outside the "
        "head with small clutter shapes (see fetal-keras train --random-surroundings; default: %(default)s)",
    )
    parser.add_argument(
        "--head-anatomy",
        default=defaults.head_anatomy,
        choices=HEAD_ANATOMIES,
        help="the simulated fetuses' brains: icbm (one adult template scaled down) or atlas (real fetal brains of a "
        "fetal brain atlas, shipped in the package) (default: %(default)s)",
    )
    parser.add_argument(
        "--augmentation",
        default=defaults.augmentation,
        choices=AUGMENTATIONS,
        help="training augmentation of both roles; anatomy also scales each in-plane axis, shears and warps every "
        "slab (default: %(default)s)",
    )
    parser.add_argument(
        "--selection-csv",
        default="none",
        help="labelled stacks on which each role's checkpoint is chosen; never trained on, starred in the card's "
        "real-stack table (v2 chose on data_splits/real_selection.csv, three of the shared real stacks); 'none': "
        "the simulated validation split, so that real stacks stay an honest measure (default: %(default)s)",
    )
    parser.add_argument(
        "--monitor-csv",
        default=str(DEFAULT_REAL_CSV),
        help="labelled (e.g. real) stacks measured at every validation of both roles, for the real-Dice-over-training "
        "curve; never trained on, never choosing; skipped when absent, 'none' to skip (default: %(default)s)",
    )
    parser.add_argument(
        "--bank-subjects",
        type=int,
        default=defaults.bank_subjects,
        help="fetuses of the training bank (label maps only, one stack each; every training image is rendered from "
        "them); 0: train on a training split of the --subjects cohort instead (default: %(default)s)",
    )
    parser.add_argument(
        "--name",
        default=RECIPE_PAIR_NAME,
        help="name of the pair written: <weights-dir>/<name>/ and <name>.md; the packaged pretrained:v1 and :v2 are "
        "never overwritten by default (default: %(default)s)",
    )
    parser.add_argument(
        "--real-csv",
        default=str(DEFAULT_REAL_CSV),
        help="labelled real stacks to measure the pair on for its card, never trained on; skipped when absent "
        "(default: %(default)s)",
    )
    for role in ("localiser", "segmenter"):
        parser.add_argument(
            f"--{role}-run",
            default=None,
            metavar="RUN",
            help=f"package this finished training run as the {role} instead of training one (the card says so)",
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
        "--qc-csv",
        default=None,
        help="with --qc-figure: also a labelled cohort CSV whose stacks are drawn with their manual masks in green "
        "(e.g. ../shared/data/real_labelled/cohort.csv)",
    )
    parser.add_argument(
        "--qc-model",
        default="pretrained",
        help="with --qc-figure: the model to draw, as predict --model takes it (default: %(default)s)",
    )
    parser.add_argument(
        "--figure", default="results/figures/pretrained_qc.png", help="QC figure path (default: %(default)s)"
    )
    parser.add_argument(
        "--curves-dir",
        default="results/figures",
        help="where the trained roles' Dice curves go, with the --monitor-csv stacks' Dice beside the simulated "
        "validation Dice: real_dice_over_training.png/.pdf (default: %(default)s)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Make the pretrained pair, or its QC figure."""
    from fetal_keras.models.pretrained import WEIGHTS_DIR
    from fetal_keras.training.make_pretrained import make_pretrained
    from fetal_keras.training.recipes import PretrainedRecipe

    weights_dir = Path(args.weights_dir) if args.weights_dir else WEIGHTS_DIR
    if args.qc_figure:
        from fetal_keras.data.cohort import IMAGE_COLUMN, SEGMENTATION_COLUMN, read_cohort
        from fetal_keras.figures.paper import pretrained_qc_figure

        truths = {}
        if args.qc_csv:
            table = read_cohort(args.qc_csv, require_segmentation=True)
            truths = dict(zip(table[IMAGE_COLUMN], table[SEGMENTATION_COLUMN], strict=True))
        path = pretrained_qc_figure(list(truths) + list(args.qc_figure), args.figure, args.qc_model, truths)
        print(f"QC figure: {path}")
        return 0
    monitor_csv = None if args.monitor_csv.lower() == "none" else args.monitor_csv
    if monitor_csv and not Path(monitor_csv).is_file():
        print(f"no labelled cohort at {monitor_csv}: training will not be monitored on it")
        monitor_csv = None
    recipe = PretrainedRecipe(
        subjects=args.subjects,
        bank_subjects=args.bank_subjects,
        preset=args.preset,
        seed=args.seed,
        localiser_epochs=args.localiser_epochs,
        segmenter_epochs=args.segmenter_epochs,
        localiser_minutes=args.localiser_minutes,
        segmenter_minutes=args.segmenter_minutes,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        validation_every=args.validation_every,
        localiser_filters=args.base_filters or args.localiser_filters,
        segmenter_filters=args.base_filters or args.segmenter_filters,
        localiser_slab_size=args.localiser_slab_size,
        segmenter_slab_size=args.segmenter_slab_size,
        localiser_spacing_mm=args.localiser_spacing,
        learning_rate_schedule=args.learning_rate_schedule,
        random_surroundings=args.random_surroundings,
        head_anatomy=args.head_anatomy,
        ga_range_weeks=tuple(args.ga_range),
        augmentation=args.augmentation,
        selection_csv=None if args.selection_csv.lower() == "none" else args.selection_csv,
        monitor_csv=monitor_csv,
    )
    real_csv = Path(args.real_csv) if args.real_csv and Path(args.real_csv).is_file() else None
    if real_csv is None:
        print(f"no real labelled cohort at {args.real_csv}: the card will not report real stacks")
    runs = {
        role: Path(run) for role, run in (("localiser", args.localiser_run), ("segmenter", args.segmenter_run)) if run
    }
    make_pretrained(
        args.work_dir, recipe, weights_dir, args.name, workers=args.workers, real_csv=real_csv, trained_runs=runs
    )
    trained = {role: Path(args.work_dir) / role for role in ("localiser", "segmenter") if role not in runs}
    if monitor_csv and trained:
        from fetal_keras.figures.metric_plots import real_dice_over_training_figure

        paths = real_dice_over_training_figure(trained, args.curves_dir, monitor_label=f"{monitor_csv} (whole volumes)")
        print(f"Dice over training: {paths[0]}")
    return 0
