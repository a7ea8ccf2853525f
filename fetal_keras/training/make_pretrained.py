"""Re-create the packaged localiser + segmenter pair from the simulator alone (``fetal-keras pretrained`` /
``make pretrained``), as one chain of named stages:

1. :func:`simulate_cohorts`: a bank of label maps that trains and an imaged cohort that validates and tests
   (``fetal_keras.training.pretrained_cohorts``);
2. :func:`split_cohort`: the imaged cohort split by subject;
3. :func:`train_roles`: the localiser (whole field of view) and the segmenter (crops around the brain), each on
   images rendered on the fly from the label maps with random contrasts (``fetal_keras.rendering``), keeping the
   epoch with the best whole-volume Dice on its selection cohort;
4. :func:`package_pair`: both roles' weights and configs into ``fetal_keras/weights/<name>/``
   (``fetal_keras.training.pretrained_package``);
5. :func:`verify_pair`: the packaged pair on the simulated test split and, when given, on real labelled stacks
   (measured only: never trained on); the model card follows (``fetal_keras.training.model_card``).

Every stage reuses what an interrupted earlier call left in the work folder, and training resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from fetal_keras.data.cohort import read_cohort
from fetal_keras.files import append_progress, atomic_output, write_json
from fetal_keras.models.pretrained import (
    PAIR_NAME,
    PAIR_ROLES,
    WEIGHTS_DIR,
    card_path,
    pair_folder,
    sha256_of,
    write_pair_file,
)
from fetal_keras.models.train_config import TrainConfig, provenance
from fetal_keras.training.model_card import hardware, model_card, selection_stacks
from fetal_keras.training.pretrained_cohorts import bank_settings, imaged_settings, simulated, split_imaged
from fetal_keras.training.pretrained_package import described_path, package_role, role_origin
from fetal_keras.training.recipes import PretrainedRecipe

PROGRESS_LOG = "progress.log"
STAGES = 5


def _stage(work_dir: Path, number: int | None, message: str) -> None:
    """Print a stage of the recipe (``number`` of ``STAGES``; None: the closing line) and append it to
    ``WORK_DIR/progress.log`` (which also gets one line per training epoch, with its ETA)."""
    line = f"[{number}/{STAGES}] {message}" if number is not None else message
    print(line, flush=True)
    append_progress(work_dir / PROGRESS_LOG, line)


class _Timings:
    """Minutes each stage took when it really ran, kept in ``timings.json`` so that a rerun reusing the stage's
    results still reports them."""

    def __init__(self, path: Path):
        self.path = path
        self.values = json.loads(path.read_text()) if path.is_file() else {}

    def record(self, name: str, minutes: float) -> None:
        if minutes > 1.0 or name not in self.values:  # under a minute: the stage was reused, not run
            self.values[name] = minutes
            write_json(self.path, self.values)


def simulate_cohorts(
    recipe: PretrainedRecipe, work_dir: Path, workers: int | None, timings: _Timings
) -> tuple[Path | None, Path]:
    """Stage 1: the bank of label maps (None without one) and the imaged cohort; their cohort CSVs."""
    start = time.perf_counter()
    bank_csv = None
    if recipe.bank_subjects:
        bank = work_dir / "bank"
        _stage(work_dir, 1, f"simulating a bank of {recipe.bank_subjects} fetuses (label maps only) into {bank}")
        bank_csv = simulated(bank_settings(recipe), bank, workers)
    _stage(work_dir, 1, f"simulating {recipe.subjects} fetuses x 3 stacks into {work_dir / 'sim'}")
    cohort_csv = simulated(imaged_settings(recipe), work_dir / "sim", workers)
    timings.record("simulation_minutes", (time.perf_counter() - start) / 60)
    return bank_csv, cohort_csv


def split_cohort(cohort_csv: Path, recipe: PretrainedRecipe, work_dir: Path) -> dict[str, pd.DataFrame]:
    """Stage 2: the imaged cohort split by subject into ``WORK_DIR/split/``."""
    _stage(work_dir, 2, "splitting by subject")
    return split_imaged(read_cohort(cohort_csv, require_segmentation=True), recipe, work_dir / "split", cohort_csv)


def train_roles(configs: dict[str, TrainConfig], given_runs: dict[str, Path], work_dir: Path, timings: _Timings):
    """Stage 3: train each role that no finished run was given for (resuming an interrupted run)."""
    from fetal_keras.training.callbacks import EpochWeights, ProgressLog
    from fetal_keras.training.train import RunFolder, train
    from fetal_keras.training.weight_average import EPOCH_WEIGHTS

    start = time.perf_counter()
    for role, config in configs.items():
        run = RunFolder(config.run_dir)
        if role in given_runs:
            if not run.best.is_file():
                raise FileNotFoundError(f"{run.root} has no checkpoints/best.keras to package as the {role}.")
            _stage(work_dir, 3, f"packaging the finished run {run.root} as the {role}")
            continue
        _stage(work_dir, 3, f"training the {role} into {run.root} (at most {config.max_minutes:g} min)")
        if not run.finished:
            log = ProgressLog(work_dir / PROGRESS_LOG, role, config.max_minutes, config.batch_size)
            train(config, verbose=2, extra_callbacks=[log, EpochWeights(run.root / EPOCH_WEIGHTS)])
    timings.record("training_minutes", (time.perf_counter() - start) / 60)


def package_pair(configs: dict[str, TrainConfig], folder: Path, work_dir: Path) -> dict:
    """Stage 4: each role's best weights and portable config into ``folder``, and its ``pair.json``; the models."""
    _stage(work_dir, 4, f"packaging the pair into {folder}")
    models = {
        role: package_role(Path(config.run_dir), folder / role, config.base_filters, work_dir)
        for role, config in configs.items()
    }
    write_pair_file(folder, {role: f"{role}/model.keras" for role in PAIR_ROLES})
    return models


def verify_pair(folder: Path, work_dir: Path, real_csv: str | Path | None) -> tuple[pd.DataFrame, dict | None]:
    """Stage 5: the packaged pair's scores on the simulated test split (also written to ``test_metrics.csv``) and,
    when ``real_csv`` is given, on those real stacks without and with TTA."""
    _stage(work_dir, 5, "measuring the pair on the simulated test split" + (" and the real stacks" if real_csv else ""))
    test = _segment_and_score(folder, work_dir / "split" / "test.csv", work_dir / "test_predictions", tta=False)
    test.to_csv(work_dir / "test_metrics.csv", index=False)
    if not real_csv:
        return test, None
    real = {
        label: _segment_and_score(folder, Path(real_csv), work_dir / f"real_predictions_{suffix}", tta=tta)
        for label, suffix, tta in (("no TTA", "plain", False), ("TTA", "tta", True))
    }
    return test, real


def _segment_and_score(pair_dir: Path, csv_path: Path, out_dir: Path, tta: bool) -> pd.DataFrame:
    """Segment a labelled cohort with the packaged pair and evaluate it (``segment_and_score``)."""
    from fetal_keras.deploy.loading import load_predictor
    from fetal_keras.deploy.predict import PredictOptions
    from fetal_keras.evaluation.labelled_cohort import segment_and_score

    predictor, preprocess, description = load_predictor(pair_dir)
    return segment_and_score(predictor, preprocess, description, csv_path, out_dir, PredictOptions(tta=tta))


def _check_selection_csv(recipe: PretrainedRecipe, given_runs: dict[str, Path]) -> None:
    """Fail before an hour of simulation and training, not after, when the selection stacks cannot be read."""
    if not recipe.selection_csv or len(given_runs) == len(PAIR_ROLES):
        return
    try:
        read_cohort(recipe.selection_csv, require_segmentation=True)
    except (FileNotFoundError, ValueError) as error:
        raise ValueError(
            f"{error}\nThe checkpoint selection stacks cannot be read; give --selection-csv none to choose "
            "checkpoints on the simulated validation split instead."
        ) from error


def make_pretrained(
    work_dir: str | Path,
    recipe: PretrainedRecipe = PretrainedRecipe(),
    weights_dir: Path = WEIGHTS_DIR,
    name: str = PAIR_NAME,
    workers: int | None = None,
    real_csv: str | Path | None = None,
    trained_runs: dict[str, Path] | None = None,
) -> Path:
    """Simulate, split, train both roles, package and verify the pretrained pair; return the model card's path.

    Args:
        work_dir: folder for the cohort, split, runs and test predictions (reused when rerun).
        recipe: what to simulate and how to train.
        weights_dir: where ``<name>/`` and ``<name>.md`` go (default: the package's ``weights/``).
        name: model name.
        workers: simulation processes (default: one per core).
        real_csv: a labelled cohort of real stacks to measure the pair on for its card (never trained on).
        trained_runs: finished training runs to package as a role instead of training it (``{"localiser": RUN}``);
            the card names each run, what it was trained on and its git commit.
    """
    given_runs = {role: Path(run) for role, run in (trained_runs or {}).items()}
    _check_selection_csv(recipe, given_runs)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    timings = _Timings(work_dir / "timings.json")

    bank_csv, cohort_csv = simulate_cohorts(recipe, work_dir, workers, timings)
    splits = split_cohort(cohort_csv, recipe, work_dir)
    localiser_run = given_runs.get("localiser", work_dir / "localiser")
    configs = {
        role: TrainConfig.load(given_runs[role] / "config.json")
        if role in given_runs
        else recipe.config(role, work_dir / "split", work_dir / role, bank_csv, localiser_run)
        for role in PAIR_ROLES
    }
    train_roles(configs, given_runs, work_dir, timings)
    folder = pair_folder(name, weights_dir)
    models = package_pair(configs, folder, work_dir)
    test, real = verify_pair(folder, work_dir, real_csv)

    facts = _facts(configs, folder, models, splits, test, real, real_csv, given_runs, work_dir) | timings.values
    with atomic_output(card_path(name, weights_dir)) as temporary:
        temporary.write_text(model_card(name, recipe, configs, facts), encoding="utf-8")
    _stage(work_dir, None, f"Done: {folder} ({facts['sha256']}), card {card_path(name, weights_dir)}")
    return card_path(name, weights_dir)


def _facts(configs, folder, models, splits, test, real, real_csv, given_runs, work_dir) -> dict:
    """What the model card reports, gathered from the finished stages."""
    import keras

    from fetal_keras.evaluation.evaluate import summarize

    histories = {role: pd.read_csv(Path(config.run_dir) / "history.csv") for role, config in configs.items()}
    return {
        "sha256": {role: sha256_of(folder / role / "model.keras") for role in PAIR_ROLES},
        "size_mb": sum((folder / role / "model.keras").stat().st_size for role in PAIR_ROLES) / 1e6,
        "parameters": int(sum(keras.ops.size(w) for w in models["segmenter"].trainable_weights)),
        "provenance": provenance(),
        "split": {part: len(table) for part, table in splits.items()},
        "epochs_run": {role: len(history) for role, history in histories.items()},
        "best_val_dice": {role: float(history["val_volume_dice"].max()) for role, history in histories.items()},
        "origins": {
            role: role_origin(Path(config.run_dir), role in given_runs, work_dir) for role, config in configs.items()
        },
        "test": summarize(test),
        "real": real,
        "real_csv": described_path(real_csv, work_dir) if real_csv else None,
        "work_dir": work_dir,
        "selection": selection_stacks(configs, work_dir / "split"),
        "hardware": hardware(),
    }
