"""Re-create the packaged pretrained model from the simulator alone (``fetal-keras pretrained`` / ``make pretrained``).

Simulates a training cohort of clinical-size stacks (T2 contrast plus a share with domain-randomised tissue
signals), splits it by subject, trains the default preset with full augmentation, selects the epoch with the best
whole-volume Dice on the simulated validation split, measures it on the simulated test split, and writes the
weights (without optimizer state) and their model card into ``fetal_keras/weights/``. Every step reuses what an
interrupted earlier call left in the work folder, and training resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fetal_keras.data.cohort import ID_COLUMN, IMAGE_COLUMN, SEGMENTATION_COLUMN, read_cohort
from fetal_keras.data.splits import SplitSettings, make_splits, write_splits
from fetal_keras.files import atomic_output
from fetal_keras.models.pretrained import PRETRAINED_NAME, WEIGHTS_DIR, card_path, sha256_of, weights_path
from fetal_keras.simulate import SimulationSettings, simulate_cohort
from fetal_keras.training.config import TrainConfig, provenance

KNOWN_LIMITS = """\
- Trained only on simulated stacks: the simulator's maternal anatomy is cartoon-like, its fetal face and limbs are
  crude, and it has no intra-slice artefacts (signal voids, ghosting), so unusual real appearances can fool it.
- Single-shot T2-weighted stacks only (the simulator's contrast and the domain-randomised share); not validated
  on other sequences, field strengths, twins, or brains with pathology (e.g. ventriculomegaly beyond the
  simulator's ventricle sizes).
- Gestational ages 20-38 weeks as simulated; slice thickness 2-5 mm, in-plane 0.8-1.5 mm, on the native grid
  (no resampling); very different resolutions change the brain's size in pixels.
- Post-processing keeps the largest connected component: when the network also marks a larger region outside
  the head, that region is kept and the brain dropped (one of the 12 simulated test stacks, a sagittal stack,
  scored Dice 0 this way). `--no-postprocess` keeps every component; check the mask volume in `predictions.csv`.
- Its accuracy on real labelled stacks has not been measured (no labelled real data in this project): the
  Dice in this card is on simulated test stacks. Check every mask (`fetal-keras predict --tta` writes
  uncertainty maps and QC flags) before slice-to-volume reconstruction.
"""


REAL_CHECK = """\
`results/figures/pretrained_qc.png` (`fetal-keras pretrained --qc-figure ../shared/data/real_unlabelled/*.nii.gz`)
outlines its masks on every third slice of the two real unlabelled stacks. **It does not transfer to them: the
masks are not usable.** On fetus_03 (2 mm slices) it finds the fetal head on the middle slices but also marks
bright fluid and fetal-body regions on the first and last slices, and the largest connected component spans them;
on fetus_04 (3 mm slices) it marks most of the uterus on nearly every slice. The simulated stacks it was trained
on differ from these real ones in maternal anatomy, tissue texture and contrast (see
`results/figures/simulated_vs_real.png`); closing that gap (a richer simulator, stronger intensity and texture
randomisation, or fine-tuning on a few labelled real stacks) is needed before this model is useful on real data.
"""


@dataclass(frozen=True)
class PretrainedRecipe:
    """How the pretrained model is made.

    Attributes:
        t2_subjects: simulated fetuses with T2 contrast (3 stacks each).
        randomised_subjects: simulated fetuses with domain-randomised tissue signals (3 stacks each).
        preset: simulator preset (``realistic``: clinical matrix and field of view).
        seed: seed of simulation (the randomised cohort uses ``seed + 1``), split and training.
        epochs, steps_per_epoch, validation_every, base_filters: training settings (batch 10, default recipe).
        max_minutes: training time budget; training stops after the last epoch that fits.
    """

    t2_subjects: int = 16
    randomised_subjects: int = 8
    preset: str = "realistic"
    seed: int = 2026
    epochs: int = 40
    steps_per_epoch: int = 100
    validation_every: int = 4
    base_filters: int = 16
    max_minutes: float = 75.0


def _simulated(settings: SimulationSettings, folder: Path, workers: int | None) -> Path:
    """Simulate into ``folder`` unless an earlier call already did."""
    csv_path = folder / "cohort.csv"
    if csv_path.is_file():
        print(f"reusing the simulated cohort in {folder}")
        return csv_path
    return simulate_cohort(settings, folder, workers=workers)


def merged_cohort(parts: dict[str, Path], out_csv: Path) -> Path:
    """One cohort CSV from several simulated ones, ids and subjects prefixed by each part's name."""
    tables = []
    for prefix, csv_path in parts.items():
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
        folder = os.path.relpath(csv_path.parent, out_csv.parent)
        for column in (IMAGE_COLUMN, SEGMENTATION_COLUMN):
            table[column] = folder + "/" + table[column]
        for column in (ID_COLUMN, "subject"):
            table[column] = prefix + "-" + table[column]
        tables.append(table)
    with atomic_output(out_csv) as temporary:
        pd.concat(tables, ignore_index=True).to_csv(temporary, index=False)
    return out_csv


class _Timings:
    """Minutes each step took when it really ran, kept in ``timings.json`` so that a rerun reusing the step's
    results still reports them."""

    def __init__(self, path: Path):
        self.path = path
        self.values = json.loads(path.read_text()) if path.is_file() else {}

    def record(self, name: str, minutes: float) -> None:
        if minutes > 1.0 or name not in self.values:  # under a minute: the step was reused, not run
            self.values[name] = minutes
            with atomic_output(self.path) as temporary:
                temporary.write_text(json.dumps(self.values, indent=2) + "\n")


def _hardware() -> str:
    import tensorflow as tf

    gpus = [device.name for device in tf.config.list_physical_devices("GPU")]
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, " + (
        f"GPU: {', '.join(gpus)}" if gpus else "no GPU"
    )


def _card(name: str, recipe: PretrainedRecipe, config: TrainConfig, facts: dict) -> str:
    test = facts["test"]
    return f"""# {name}: fetal brain masking trained on simulated stacks only

Default `unet` preset of fetal_keras (2.5D U-Net, [b, 3, y, x, 1] slabs of 3 adjacent whole slices -> softmax
brain probability), packaged as `{name}.keras` without optimizer state. Input: a stack whitened as
`fetal_keras.data.preprocess` does (native grid, whole-volume z-score). Use it with
`fetal-keras predict --model pretrained --input STACK --out DIR`.

- SHA-256: `{facts["sha256"]}`
- Size: {facts["size_mb"]:.2f} MB; trainable parameters: {facts["parameters"]:,}

## Training data

Simulated with `fetal_keras.simulate` (fetal_keras {facts["provenance"]["fetal_keras_version"]}, git
{facts["provenance"]["git_commit"]}), preset `{recipe.preset}`: {recipe.t2_subjects} fetuses with T2 contrast (seed
{recipe.seed}) and {recipe.randomised_subjects} with domain-randomised tissue signals (seed {recipe.seed + 1}), 3
stacks each (axial, coronal, sagittal to the brain), 20-38 weeks, with motion and artefacts. Split by subject:
{facts["split"]["train"]} training, {facts["split"]["val"]} validation and {facts["split"]["test"]} test stacks.

## Recipe

`{json.dumps({k: v for k, v in asdict(config).items() if k not in ("train_csv", "val_csv", "run_dir")})}`

Trained for {facts["epochs_run"]} epochs of {recipe.steps_per_epoch} batches of 10 slabs; the packaged weights are
the epoch with the best whole-volume validation Dice (deploy inference, measured every {recipe.validation_every}
epochs): {facts["best_val_dice"]:.3f} on the {facts["split"]["val"]} simulated validation stacks.

## Simulated test metrics

{test["evaluated"]} simulated test stacks, default deploy (whole slices, no TTA, largest component + hole filling):
Dice {test["dice"]["mean"]:.3f} +/- {test["dice"]["sd"] or 0:.3f} (median {test["dice"]["median"]:.3f}, min
{facts["test_dice_min"]:.3f}), HD95 {test["hd95_mm"]["mean"]:.1f} +/- {test["hd95_mm"]["sd"] or 0:.1f} mm,
{test["dice_below_0.9"]} stack(s) below Dice 0.9. Test floor: `tests/test_pretrained.py` requires Dice >= 0.9 on a
simulated 30-week realistic stack (seed 123, not a training seed) segmented from the command line (0.966 measured).

## Cost

Simulation {facts["simulation_minutes"]:.1f} min, training {facts["training_minutes"]:.1f} min; hardware:
{facts["hardware"]}. Re-create with `make pretrained` (or `fetal-keras pretrained`).

## Known limits

{KNOWN_LIMITS}
## Visual check on real stacks

{facts["real_check"]}
"""


def make_pretrained(
    work_dir: str | Path,
    recipe: PretrainedRecipe = PretrainedRecipe(),
    weights_dir: Path = WEIGHTS_DIR,
    name: str = PRETRAINED_NAME,
    workers: int | None = None,
    real_check: str = REAL_CHECK,
) -> Path:
    """Simulate, train, select, test and package the pretrained model; return the model card's path.

    Args:
        work_dir: folder for the cohorts, split, run and test predictions (reused when rerun).
        recipe: what to simulate and how to train.
        weights_dir: where ``<name>.keras`` and ``<name>.md`` go (default: the package's ``weights/``).
        name: model name.
        workers: simulation processes (default: one per core).
        real_check: the card's paragraph on how the model looks on real stacks.
    """
    import keras

    from fetal_keras.data.preprocess import PreprocessConfig, load_stacks
    from fetal_keras.deploy.predict import PredictOptions, predict_many
    from fetal_keras.evaluation.evaluate import evaluate_cohort, summarize
    from fetal_keras.models.networks import build_model
    from fetal_keras.training.callbacks import whole_volume_dice_scores
    from fetal_keras.training.train import RunFolder, train

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    print(f"[1/5] simulating {recipe.t2_subjects} + {recipe.randomised_subjects} fetuses x 3 stacks into {work_dir}")
    parts = {
        "t2": _simulated(
            SimulationSettings(subjects=recipe.t2_subjects, seed=recipe.seed, preset=recipe.preset),
            work_dir / "t2",
            workers,
        ),
        "dr": _simulated(
            SimulationSettings(
                subjects=recipe.randomised_subjects,
                seed=recipe.seed + 1,
                preset=recipe.preset,
                domain_randomisation=True,
            ),
            work_dir / "randomised",
            workers,
        ),
    }
    csv_path = merged_cohort(parts, work_dir / "cohort.csv")
    timings = _Timings(work_dir / "timings.json")
    timings.record("simulation_minutes", (time.perf_counter() - start) / 60)
    print("[2/5] splitting by subject")
    split_dir = work_dir / "split"
    settings = SplitSettings(val_fraction=0.15, test_fraction=0.15, seed=recipe.seed)
    splits = make_splits(read_cohort(csv_path, require_segmentation=True), settings)
    write_splits(splits, split_dir, csv_path, settings, overwrite=True)
    run = RunFolder(work_dir / "run")
    config = TrainConfig(
        str(split_dir / "train.csv"),
        str(split_dir / "val.csv"),
        str(run.root),
        base_filters=recipe.base_filters,
        epochs=recipe.epochs,
        steps_per_epoch=recipe.steps_per_epoch,
        validation_every=recipe.validation_every,
        seed=recipe.seed,
        max_minutes=recipe.max_minutes,
    )
    print(f"[3/5] training into {run.root} (at most {recipe.max_minutes:g} min)")
    training_start = time.perf_counter()
    if not run.finished:
        train(config, verbose=2)
    timings.record("training_minutes", (time.perf_counter() - training_start) / 60)
    history = pd.read_csv(run.history)

    print("[4/5] measuring the selected model on the simulated validation and test splits")
    best = keras.saving.load_model(run.best, safe_mode=True)
    val_stacks = load_stacks(read_cohort(split_dir / "val.csv", require_segmentation=True), PreprocessConfig())
    val_dice = float(np.mean(whole_volume_dice_scores(best, val_stacks)))
    predictions = work_dir / "test_predictions"
    test_stacks = list(zip(splits["test"][ID_COLUMN], splits["test"][IMAGE_COLUMN], strict=True))
    predict_many(best, test_stacks, predictions, PredictOptions(), PreprocessConfig(), str(run.best))
    metrics = evaluate_cohort(split_dir / "test.csv", predictions)
    metrics.to_csv(work_dir / "test_metrics.csv", index=False)

    print(f"[5/5] writing {weights_path(name, weights_dir)} and its model card")
    packaged = build_model("unet", base_filters=recipe.base_filters)  # uncompiled: no optimizer state in the file
    packaged.set_weights(best.get_weights())
    weights_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(weights_path(name, weights_dir)) as temporary:
        packaged.save(temporary)
    facts = {
        "sha256": sha256_of(weights_path(name, weights_dir)),
        "size_mb": weights_path(name, weights_dir).stat().st_size / 1e6,
        "parameters": int(sum(keras.ops.size(w) for w in packaged.trainable_weights)),
        "provenance": provenance(),
        "split": {part: len(table) for part, table in splits.items()},
        "best_val_dice": val_dice,
        "epochs_run": len(history),
        "test": summarize(metrics),
        "test_dice_min": float(metrics["dice"].min()),
        **timings.values,
        "hardware": _hardware(),
        "real_check": real_check,
    }
    with atomic_output(card_path(name, weights_dir)) as temporary:
        temporary.write_text(_card(name, recipe, config, facts), encoding="utf-8")
    print(f"Done: {weights_path(name, weights_dir)} (SHA-256 {facts['sha256']}), card {card_path(name, weights_dir)}")
    return card_path(name, weights_dir)
