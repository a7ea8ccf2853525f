"""The main job end to end on CPU in minutes (``fetal-keras demo`` / ``make demo``).

It grows with the project. Today: simulate a small cohort, check it, and split it by subject. Training,
evaluation, export and figures join it as they land.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from fetal_keras.check import CheckOptions, check_cohort
from fetal_keras.cohort import read_cohort
from fetal_keras.files import atomic_output
from fetal_keras.problems import Severity
from fetal_keras.simulate import SimulationSettings, simulate_cohort
from fetal_keras.splits import SplitSettings, make_splits, write_splits


def run_demo(out_dir: str | Path, subjects: int = 10, seed: int = 0) -> dict:
    """Run every step of the demo that exists, printing where each output went.

    Args:
        out_dir: folder for everything the demo writes (created; an earlier demo there is replaced).
        subjects: simulated fetuses (3 stacks each).
        seed: seed of the simulation and the split.

    Returns:
        The summary also written to ``out_dir/summary.json``.

    Raises:
        ValueError: if the simulated cohort fails its own check (a bug, reported rather than hidden).
    """
    out_dir = Path(out_dir)
    start = time.perf_counter()
    print(f"[1/3] simulating {subjects} fetuses x 3 stacks into {out_dir / 'cohort'}")
    csv_path = simulate_cohort(SimulationSettings(subjects=subjects, seed=seed), out_dir / "cohort", overwrite=True)
    print("[2/3] checking every stack and mask")
    problems = check_cohort(csv_path, CheckOptions(purpose="train"))
    errors = [problem.describe() for problem in problems if problem.severity is Severity.ERROR]
    if errors:
        raise ValueError("The simulated cohort failed its check:\n" + "\n".join(errors))
    split_dir = out_dir / "split"
    print(f"[3/3] splitting by subject into {split_dir}")
    settings = SplitSettings(val_fraction=0.2, test_fraction=0.2, seed=seed)
    splits = make_splits(read_cohort(csv_path, require_segmentation=True), settings)
    write_splits(splits, split_dir, csv_path, settings, overwrite=True)
    summary = {
        "cohort_csv": str(csv_path),
        "simulation_json": str(out_dir / "cohort" / "simulation.json"),
        "check_warnings": len(problems),
        "split": {name: len(table) for name, table in splits.items()},
        "split_dir": str(split_dir),
        "minutes": round((time.perf_counter() - start) / 60, 2),
    }
    with atomic_output(out_dir / "summary.json") as temporary:
        temporary.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"Done in {summary['minutes']} min. Summary: {out_dir / 'summary.json'}")
    return summary
