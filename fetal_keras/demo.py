"""The main job end to end on CPU in minutes (``fetal-keras demo`` / ``make demo``).

Simulate a small cohort, check it, split it by subject, fine-tune the packaged whole-stack U-Net for a fixed number of
steps on it and export it,
segment the test split with the exported model, evaluate it and draw the paper figures into ``OUT/figures``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from fetal_keras.data.check import CheckOptions, check_cohort
from fetal_keras.data.cohort import read_cohort
from fetal_keras.data.problems import Severity
from fetal_keras.data.splits import SplitSettings, make_splits, write_splits
from fetal_keras.deploy.loading import load_predictor
from fetal_keras.deploy.predict import PredictOptions, predict_many
from fetal_keras.evaluation.evaluate import evaluate_cohort, summarize
from fetal_keras.figures.paper import paper_figures
from fetal_keras.files import atomic_output, write_json
from fetal_keras.models.metrics import VOLUME_DICE
from fetal_keras.models.train_config import TrainConfig
from fetal_keras.simulate import SimulationSettings, simulate_cohort
from fetal_keras.training.recipes import DEMO_EPOCHS, DEMO_GUARD_MINUTES, DEMO_INIT_FROM, DEMO_STEPS_PER_EPOCH
from fetal_keras.training.train import train


def _format(statistic: dict) -> str:
    if statistic["mean"] is None:
        return "n/a"
    return f"{statistic['mean']:.3f}" + (f" +/- {statistic['sd']:.3f}" if statistic["sd"] is not None else "")


def run_demo(
    out_dir: str | Path,
    subjects: int = 10,
    seed: int = 0,
    epochs: int = DEMO_EPOCHS,
    steps_per_epoch: int = DEMO_STEPS_PER_EPOCH,
    minutes: float | None = DEMO_GUARD_MINUTES,
    init_from: str | None = DEMO_INIT_FROM,
) -> dict:
    """Run every step of the demo, printing where each output went.

    Args:
        out_dir: folder for everything the demo writes (created; an earlier demo there is replaced).
        subjects: simulated fetuses (3 stacks each).
        seed: seed of the simulation, the split and the training.
        epochs: training epochs.
        steps_per_epoch: training batches (of 10 slabs) per epoch.
        minutes: a guard on training time: stop after the last epoch that fits (None: all epochs), saying loudly
            that the result is then not the demo's.
        init_from: starting weights (``TrainConfig.init_from``); None: random weights (many more steps needed).

    Returns:
        The summary also written to ``out_dir/summary.json``.

    Raises:
        ValueError: if the simulated cohort fails its own check (a bug, reported rather than hidden).
    """
    out_dir = Path(out_dir)
    start = time.perf_counter()
    print(f"[1/7] simulating {subjects} fetuses x 3 stacks into {out_dir / 'cohort'}")
    csv_path = simulate_cohort(SimulationSettings(subjects=subjects, seed=seed), out_dir / "cohort", overwrite=True)
    print("[2/7] checking every stack and mask")
    problems = check_cohort(csv_path, CheckOptions(purpose="train"))
    errors = [problem.describe() for problem in problems if problem.severity is Severity.ERROR]
    if errors:
        raise ValueError("The simulated cohort failed its check:\n" + "\n".join(errors))
    split_dir = out_dir / "split"
    print(f"[3/7] splitting by subject into {split_dir}")
    settings = SplitSettings(val_fraction=0.2, test_fraction=0.2, seed=seed)
    splits = make_splits(read_cohort(csv_path, require_segmentation=True), settings)
    write_splits(splits, split_dir, csv_path, settings, overwrite=True)
    run_dir = out_dir / "run"
    budget = f", at most {minutes:g} min" if minutes else ""
    print(f"[4/7] training the default model ({epochs} epochs x {steps_per_epoch} batches{budget}) into {run_dir}")
    shutil.rmtree(run_dir, ignore_errors=True)
    config = TrainConfig(
        str(split_dir / "train.csv"),
        str(split_dir / "val.csv"),
        str(run_dir),
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        seed=seed,
        max_minutes=minutes,
        init_from=init_from,
    )
    training_start = time.perf_counter()
    result = train(config, verbose=2)
    training_seconds = time.perf_counter() - training_start
    volume_dice = result.history.history.get(VOLUME_DICE, [])
    epochs_run = len(result.history.history.get("loss", []))
    if epochs_run < epochs:
        print(
            f"\nWARNING: the {minutes:g}-minute guard stopped training after {epochs_run} of {epochs} epochs: this "
            "machine is slower than the demo expects, and the test Dice below is NOT the demo's result. Rerun "
            "with a larger --minutes.\n"
        )
    predictions = out_dir / "test_predictions"
    print(f"[5/7] segmenting the {len(splits['test'])} test stacks with {result.saved_model} into {predictions}")
    predictor, preprocess, description = load_predictor(run_dir)
    test_stacks = list(zip(splits["test"]["iFIND_id"], splits["test"]["image"], strict=True))
    predict_many(predictor, test_stacks, predictions, PredictOptions(), preprocess, description)
    print(f"[6/7] evaluating the test predictions into {out_dir / 'test_metrics.csv'}")
    metrics = evaluate_cohort(split_dir / "test.csv", predictions)
    with atomic_output(out_dir / "test_metrics.csv") as temporary:
        metrics.to_csv(temporary, index=False)
    test = summarize(metrics)
    print(f"[7/7] drawing the figures into {out_dir / 'figures'}")
    figures = paper_figures(run_dir, split_dir / "test.csv", predictions, metrics, out_dir / "figures")
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
        "test_predictions": str(predictions),
        "test_metrics_csv": str(out_dir / "test_metrics.csv"),
        "test_dice_mean": test["dice"]["mean"],
        "test_dice_sd": test["dice"]["sd"],
        "test_dice_min": float(metrics["dice"].min()) if test["evaluated"] else None,
        "test_hd95_mm_mean": test["hd95_mm"]["mean"],
        "training_minutes": round(training_seconds / 60, 2),
        "epochs": epochs,
        "epochs_run": epochs_run,
        "training_cut_short": epochs_run < epochs,
        "init_from": init_from,
        "figures": [str(path) for path in figures],
        "minutes": round((time.perf_counter() - start) / 60, 2),
    }
    write_json(out_dir / "summary.json", summary)
    print(
        f"Done in {summary['minutes']} min: best whole-volume validation Dice {summary['best_validation_volume_dice']}"
        f" ({len(splits['val'])} stacks); test Dice {_format(test['dice'])} ({test['evaluated']} stacks), HD95 "
        f"{_format(test['hd95_mm'])} mm; model in {result.saved_model}; figures in {out_dir / 'figures'}. Summary: "
        f"{out_dir / 'summary.json'}"
    )
    return summary
