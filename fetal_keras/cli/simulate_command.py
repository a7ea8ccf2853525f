"""``fetal-keras simulate``: a cohort of simulated motion-corrupted fetal stacks with brain masks."""

from __future__ import annotations

import argparse
import time

from fetal_keras.choices import HEAD_ANATOMIES, SIMULATION_PRESETS


def add_parser(subparsers) -> None:
    """Register ``simulate``."""
    parser = subparsers.add_parser(
        "simulate",
        help="simulate a cohort of fetal T2 stacks with brain masks",
        description="Simulate motion-corrupted fetal T2 single-shot stacks and their brain masks. Writes "
        "OUT/images/*.nii.gz, OUT/segmentations/*.nii.gz, OUT/cohort.csv (iFIND format, relative paths) and "
        "OUT/simulation.json (every parameter drawn, so any stack can be regenerated from the seed).",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--subjects", type=int, default=12, help="number of fetuses (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed (default: %(default)s)")
    parser.add_argument(
        "--stacks-per-subject",
        type=int,
        default=3,
        help="stacks per fetus, axial/coronal/sagittal (default: %(default)s)",
    )
    parser.add_argument(
        "--preset",
        choices=SIMULATION_PRESETS,
        default="small",
        help="small: reduced size for tests and demos; realistic: clinical stack sizes (default: %(default)s)",
    )
    parser.add_argument(
        "--domain-randomisation",
        action="store_true",
        help="random tissue signals (SynthSeg-style) instead of T2 contrast",
    )
    parser.add_argument("--no-motion", action="store_true", help="a still fetus and mother (no slice motion)")
    parser.add_argument("--no-artefacts", action="store_true", help="no bias field, noise, blur, drop-outs or stripes")
    parser.add_argument(
        "--ga-range",
        type=float,
        nargs=2,
        default=(20.0, 38.0),
        metavar=("LOW", "HIGH"),
        help="gestational age range in weeks, within 18-38 (default: 20 38)",
    )
    parser.add_argument(
        "--head-anatomy",
        choices=HEAD_ANATOMIES,
        default="icbm",
        help="the fetal brains: icbm (one adult template scaled down, smoothed) or atlas (real fetal brains of a "
        "fetal brain atlas at the nearest age, varied per fetus) (default: %(default)s)",
    )
    parser.add_argument(
        "--labels-only",
        action="store_true",
        help="write only tissue label maps and brain masks, no images (about six times faster): a bank of anatomies "
        "to train on with --image-source labels; the CSV's image column then names the label map",
    )
    parser.add_argument(
        "--first-subject",
        type=int,
        default=0,
        help="number of the first subject id (sub-300, ...), so that cohorts simulated apart never share an id; the "
        "random streams do not depend on it (default: %(default)s)",
    )
    parser.add_argument("--workers", type=int, default=None, help="parallel processes (default: one per CPU core)")
    parser.add_argument("--overwrite", action="store_true", help="replace a cohort already in --out")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``simulate``."""
    from fetal_keras.simulate import SimulationSettings, simulate_cohort

    settings = SimulationSettings(
        subjects=args.subjects,
        stacks_per_subject=args.stacks_per_subject,
        seed=args.seed,
        preset=args.preset,
        domain_randomisation=args.domain_randomisation,
        motion=not args.no_motion,
        artefacts=not args.no_artefacts,
        ga_range_weeks=tuple(args.ga_range),
        head_anatomy=args.head_anatomy,
        labels_only=args.labels_only,
        first_subject=args.first_subject,
    )
    start = time.perf_counter()
    csv_path = simulate_cohort(settings, args.out, workers=args.workers, overwrite=args.overwrite)
    stacks = settings.subjects * settings.stacks_per_subject
    print(
        f"Simulated {stacks} stacks of {settings.subjects} subjects in {time.perf_counter() - start:.0f} s: {csv_path}"
    )
    return 0
