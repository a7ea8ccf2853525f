"""The main job end to end on CPU in minutes (``fetal-keras demo`` / ``make demo``).

It grows with the project. Today: simulate a small cohort, check it, split it by subject, train the default
model for a few minutes and export it, reporting the whole-volume validation Dice. Test-set evaluation and
figures join it as they land.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from fetal_keras.callbacks import VOLUME_DICE
from fetal_keras.check import CheckOptions, check_cohort
from fetal_keras.cohort import read_cohort
from fetal_keras.config import TrainConfig
from fetal_keras.files import atomic_output
from fetal_keras.problems import Severity
from fetal_keras.simulate import SimulationSettings, simulate_cohort
from fetal_keras.splits import SplitSettings, make_splits, write_splits
from fetal_keras.train import train


def run_demo(
    out_dir: str | Path, subjects: int = 10, seed: int = 0, epochs: int = 12, steps_per_epoch: int = 25
) -> dict:
    """Run every step of the demo that exists, printing where each output went.

    Args:
        out_dir: folder for everything the demo writes (created; an earlier demo there is replaced).
        subjects: simulated fetuses (3 stacks each).
        seed: seed of the simulation, the split and the training.
        epochs: training epochs.
        steps_per_epoch: training batches (of 10 slabs) per epoch.

    Returns:
        The summary also written to ``out_dir/summary.json``.

    Raises:
        ValueError: if the simulated cohort fails its own check (a bug, reported rather than hidden).
    """
    out_dir = Path(out_dir)
    start = time.perf_counter()
    print(f"[1/4] simulating {subjects} fetuses x 3 stacks into {out_dir / 'cohort'}")
    csv_path = simulate_cohort(SimulationSettings(subjects=subjects, seed=seed), out_dir / "cohort", overwrite=True)
    print("[2/4] checking every stack and mask")
    problems = check_cohort(csv_path, CheckOptions(purpose="train"))
    errors = [problem.describe() for problem in problems if problem.severity is Severity.ERROR]
    if errors:
        raise ValueError("The simulated cohort failed its check:\n" + "\n".join(errors))
    split_dir = out_dir / "split"
    print(f"[3/4] splitting by subject into {split_dir}")
    settings = SplitSettings(val_fraction=0.2, test_fraction=0.2, seed=seed)
    splits = make_splits(read_cohort(csv_path, require_segmentation=True), settings)
    write_splits(splits, split_dir, csv_path, settings, overwrite=True)
    run_dir = out_dir / "run"
    print(f"[4/4] training the default model ({epochs} epochs x {steps_per_epoch} batches) into {run_dir}")
    shutil.rmtree(run_dir, ignore_errors=True)
    config = TrainConfig(
        str(split_dir / "train.csv"),
        str(split_dir / "val.csv"),
        str(run_dir),
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        seed=seed,
    )
    result = train(config, verbose=2)
    volume_dice = result.history.history.get(VOLUME_DICE, [])
    summary = {
        "cohort_csv": str(csv_path),
        "simulation_json": str(out_dir / "cohort" / "simulation.json"),
        "check_warnings": len(problems),
        "split": {name: len(table) for name, table in splits.items()},
        "split_dir": str(split_dir),
        "run_dir": str(run_dir),
        "saved_model": str(result.saved_model),
        "validation_volume_dice_per_epoch": [round(value, 4) for value in volume_dice],
        "best_validation_volume_dice": round(max(volume_dice), 4) if volume_dice else None,
        "minutes": round((time.perf_counter() - start) / 60, 2),
    }
    with atomic_output(out_dir / "summary.json") as temporary:
        temporary.write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"Done in {summary['minutes']} min: best whole-volume validation Dice {summary['best_validation_volume_dice']}"
        f" ({len(splits['val'])} stacks); model in {result.saved_model}. Summary: {out_dir / 'summary.json'}"
    )
    return summary
