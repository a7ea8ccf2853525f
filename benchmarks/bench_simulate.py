"""Simulator speed: a 'small' cohort (12 subjects x 3 stacks) against the one-minute target, plus one realistic stack.

Run: .venv/bin/python benchmarks/bench_simulate.py [--subjects 12] [--workers N]
The last line is one JSON object with the raw figures.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def build_parser() -> argparse.ArgumentParser:
    """The command line (built before the heavy imports, so that --help answers at once)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=12, help="subjects of the small cohort (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    return parser


if __name__ == "__main__":
    build_parser().parse_args()  # --help and bad arguments answer before TensorFlow is imported

from fetal_keras.simulate import SimulationSettings, simulate_cohort, simulate_stack
from fetal_keras.simulate.cohort import simulate_subject

TARGET_SECONDS = 60.0


def main() -> None:
    """Time the cohort and one realistic stack, print the figures."""
    parser = build_parser()
    args = parser.parse_args()

    settings = SimulationSettings(subjects=args.subjects, seed=0, preset="small")
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        simulate_cohort(settings, folder, workers=args.workers)
        cohort_seconds = time.perf_counter() - start
    stacks = settings.subjects * settings.stacks_per_subject

    realistic = SimulationSettings(subjects=1, seed=0, preset="realistic")
    start = time.perf_counter()
    subject = simulate_subject(realistic, 0)
    subject_seconds = time.perf_counter() - start
    start = time.perf_counter()
    stack = simulate_stack(realistic, subject, 0)
    stack_seconds = time.perf_counter() - start

    print(
        f"small cohort: {stacks} stacks in {cohort_seconds:.1f} s on {os.cpu_count()} cores "
        f"({cohort_seconds / TARGET_SECONDS:.2f} of the {TARGET_SECONDS:.0f} s target)"
    )
    print(f"realistic: subject {subject_seconds:.1f} s, stack {stack.image.shape} in {stack_seconds:.1f} s")
    print(
        json.dumps(
            {
                "small_cohort_stacks": stacks,
                "small_cohort_seconds": round(cohort_seconds, 2),
                "ratio_to_target": round(cohort_seconds / TARGET_SECONDS, 3),
                "realistic_subject_seconds": round(subject_seconds, 2),
                "realistic_stack_seconds": round(stack_seconds, 2),
                "realistic_stack_shape_zyx": list(stack.image.shape),
                "cpu_count": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
