"""Re-create the packaged localiser + segmenter pair from the simulator alone (``fetal-keras pretrained`` /
``make pretrained``).

Simulates a cohort of clinical-size stacks with their tissue label maps, splits it by subject, trains a localiser
(1.1 mm, whole field of view) and a segmenter (1.1 mm, crops around the brain) on images rendered on the fly from the
label maps with random contrasts (``fetal_keras.rendering``), keeps each role's epoch with the best whole-volume Dice
on a labelled selection cohort (by default three real stacks; or the simulated validation split), measures the pair
on the simulated test split and, when given, on real labelled stacks (measured only: never trained on), and writes
both models, their configs and the model card into
``fetal_keras/weights/``. Every step reuses what an interrupted earlier call left in the work folder, and training
resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from fetal_keras.data.cohort import ID_COLUMN, read_cohort
from fetal_keras.data.splits import SplitSettings, make_splits, write_splits
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
from fetal_keras.simulate import SimulationSettings, simulate_cohort
from fetal_keras.training.config import TrainConfig, provenance
from fetal_keras.training.recipes import PretrainedRecipe

SELECTION_LIMIT = """\
- Each role's checkpoint was chosen on real labelled stacks (starred above; for v2 three stacks of one fetus from
  one 1.5 T scanner): from epoch to epoch, real Dice swings by about 0.2 while simulated Dice rises smoothly, so the
  choice matters, and a choice made on one fetus may not be the best for other scanners.
"""

KNOWN_LIMITS = """\
- Trained only on simulated stacks (images rendered from simulated label maps with random contrasts): the
  simulator's maternal anatomy is cartoon-like and its fetal face, neck and limbs are crude, so real anatomy next to
  the head (neck, face, uterine wall) is where its masks go wrong: on the real stacks below they reach into a
  round fluid-filled structure of the fetal trunk beside the head.
- Single-shot T2-weighted stacks; gestational ages as simulated (above); not validated on other sequences,
  twins, or brains with pathology.
- The brain mask is the intracranial volume (parenchyma, ventricles and extra-axial CSF up to the skull).
- If the localiser finds no head, the segmenter runs on the whole stack and post-processing keeps the largest
  component. Check every mask (`fetal-keras predict --tta` writes uncertainty maps and QC flags) before
  slice-to-volume reconstruction.
"""


PROGRESS_LOG = "progress.log"


def _stage(work_dir: Path, message: str) -> None:
    """Print a stage of the recipe and append it to ``WORK_DIR/progress.log`` (which also gets one line per
    training epoch, with its ETA)."""
    print(message, flush=True)
    append_progress(work_dir / PROGRESS_LOG, message)


def _simulated(settings: SimulationSettings, folder: Path, workers: int | None) -> Path:
    """Simulate into ``folder`` unless an earlier call already did with the same settings.

    Raises:
        ValueError: if ``folder`` holds a cohort simulated with other settings (or with none recorded): it is
            never reused silently, nor replaced.
    """
    csv_path = folder / "cohort.csv"
    if not csv_path.is_file():
        return simulate_cohort(settings, folder, workers=workers)
    recorded = _recorded_settings(folder)
    if recorded != settings:
        wanted = asdict(settings)
        differences = (
            ", ".join(
                f"{name}: {value!r} there, {wanted[name]!r} now"
                for name, value in asdict(recorded).items()
                if value != wanted[name]
            )
            if recorded
            else f"no readable settings in {folder / 'simulation.json'}"
        )
        raise ValueError(
            f"{folder} already holds a cohort simulated with other settings ({differences}): remove the folder or "
            "choose another --work-dir."
        )
    print(f"reusing the simulated cohort in {folder}")
    return csv_path


def _recorded_settings(folder: Path) -> SimulationSettings | None:
    """The settings ``simulation.json`` in ``folder`` records (settings added since take their defaults), or None."""
    try:
        values = json.loads((folder / "simulation.json").read_text())["settings"]
        return SimulationSettings(**values | {"ga_range_weeks": tuple(values["ga_range_weeks"])})
    except (OSError, KeyError, TypeError, ValueError):
        return None


class _Timings:
    """Minutes each step took when it really ran, kept in ``timings.json`` so that a rerun reusing the step's
    results still reports them."""

    def __init__(self, path: Path):
        self.path = path
        self.values = json.loads(path.read_text()) if path.is_file() else {}

    def record(self, name: str, minutes: float) -> None:
        if minutes > 1.0 or name not in self.values:  # under a minute: the step was reused, not run
            self.values[name] = minutes
            write_json(self.path, self.values)


def _hardware() -> str:
    import tensorflow as tf

    gpus = [device.name for device in tf.config.list_physical_devices("GPU")]
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, " + (
        f"GPU: {', '.join(gpus)}" if gpus else "no GPU"
    )


def _metric_line(summary: dict) -> str:
    dice, hd95 = summary["dice"], summary["hd95_mm"]
    distance = (
        f"HD95 {hd95['mean']:.1f} +/- {hd95['sd'] or 0:.1f} mm"
        if hd95["mean"] is not None
        else "HD95 undefined (every mask empty)"
    )
    return (
        f"Dice {dice['mean']:.3f} +/- {dice['sd'] or 0:.3f} (median {dice['median']:.3f}), {distance} over "
        f"{summary['evaluated']} stacks"
    )


def _real_table(real: dict[str, pd.DataFrame], selection_ids: set[str]) -> str:
    """Per-stack Dice and HD95 on real stacks, without and with TTA, as a Markdown table; stacks that chose the
    checkpoints are starred and summarised apart from the others."""
    plain, tta = real["no TTA"].set_index(ID_COLUMN), real["TTA"].set_index(ID_COLUMN)
    lines = [
        "| stack | Dice | HD95 (mm) | Dice, TTA | HD95 (mm), TTA | predicted / true ml |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for stack_id, row in plain.iterrows():
        star = " *" if stack_id in selection_ids else ""
        lines.append(
            f"| {stack_id}{star} | {row['dice']:.3f} | {row['hd95_mm']:.1f} | {tta.loc[stack_id, 'dice']:.3f} | "
            f"{tta.loc[stack_id, 'hd95_mm']:.1f} | {row['predicted_volume_ml']:.0f} / {row['true_volume_ml']:.0f} |"
        )
    held_out = [stack_id for stack_id in plain.index if stack_id not in selection_ids]
    groups = [("", plain.index)] + ([(" (not used for selection)", held_out)] if selection_ids and held_out else [])
    for label, ids in groups:
        for name in ("mean", "min"):
            values = [getattr(table.loc[ids, "dice"].fillna(0.0), name)() for table in (plain, tta)]
            lines.append(f"| **{name}{label}** | {values[0]:.3f} | | {values[1]:.3f} | | |")
    return "\n".join(lines)


def described_path(path: str | Path, work_dir: Path) -> str:
    """``path`` as a packaged model's card and configs give it, naming no machine's folders: relative to the recipe's
    work folder (``WORK_DIR/split/train.csv``), a relative path as given, else its last two parts
    (``.../real_labelled/cohort.csv``)."""
    path = Path(path)
    if not path.is_absolute():
        return path.as_posix()
    try:
        return "WORK_DIR/" + path.resolve().relative_to(work_dir.resolve()).as_posix()
    except ValueError:
        return ".../" + "/".join(path.parts[-2:])


def portable_run_record(record: dict, work_dir: Path) -> dict:
    """A run's ``config.json`` record with every path of its config given by :func:`described_path`."""
    config = {
        key: described_path(value, work_dir) if isinstance(value, str) and Path(value).is_absolute() else value
        for key, value in record["config"].items()
    }
    return record | {"config": config}


def _selection_ids(configs: dict[str, TrainConfig], split_dir: Path) -> tuple[set[str], list[str]]:
    """Ids of the stacks that chose any role's checkpoint when that was not the simulated validation split, and a
    sentence per selection cohort naming the roles it chose."""
    roles_by_csv: dict[str, list[str]] = {}
    for role, config in configs.items():
        if Path(config.val_csv).resolve() != (split_dir / "val.csv").resolve():
            roles_by_csv.setdefault(config.val_csv, []).append(role)
    ids, sentences = set(), []
    for csv_path, roles in roles_by_csv.items():
        chosen = read_cohort(csv_path, require_segmentation=True)[ID_COLUMN]
        ids |= set(chosen)
        sentences.append(
            f"the {' and '.join(roles)} checkpoints were chosen on `{described_path(csv_path, split_dir.parent)}` "
            f"({', '.join(chosen)})"
        )
    return ids, sentences


HEAD_SOURCES = {
    "icbm": "the adult ICBM 2009a template scaled to fetal size",
    "atlas": "label maps of the CC0 spatio-temporal fetal brain atlas with spina bifida aperta, Fidon et al., Open "
    "Research Europe 2021, at the nearest age, varied per fetus",
}


def _data_sentence(recipe: PretrainedRecipe, split: dict[str, int]) -> str:
    """Which simulated fetuses trained, validated and tested, for the card."""
    imaged = f"{recipe.subjects} fetuses with images, 3 stacks each (axial, coronal, sagittal to the brain)"
    if recipe.bank_subjects:
        return (
            f"Training: a bank of {recipe.bank_subjects} fetuses (seed {recipe.seed}), one stack of label maps each; "
            f"validation and test: {imaged} (seed {recipe.seed + 1000}), split by subject into {split['val']} "
            f"validation and {split['test']} test stacks."
        )
    return (
        f"{imaged} (seed {recipe.seed}), split by subject: {split['train']} training, {split['val']} validation "
        f"and {split['test']} test stacks."
    )


def _card(name: str, recipe: PretrainedRecipe, configs: dict[str, TrainConfig], facts: dict) -> str:
    recipe_json = {
        role: {k: v for k, v in asdict(c).items() if k not in ("train_csv", "val_csv", "run_dir")}
        for role, c in configs.items()
    }
    real = facts.get("real")
    selection_ids, selection = facts["selection"]
    use = (
        f"{'; '.join(selection)}; stacks marked * took part in that choice"
        if selection
        else "not used to select anything"
    )
    real_section = (
        f"{facts['real_csv']} (never trained on; {use}):\n\n" + _real_table(real, selection_ids)
        if real
        else "Not measured (no real labelled cohort was given)."
    )
    return f"""# {name}: fetal brain masking (localiser + segmenter) trained on simulated stacks only

Two `unet` models of fetal_keras (2.5D U-Net, {configs["localiser"].base_filters} and {configs["segmenter"].base_filters} filters at the first level, [b, 3, y, x, 1] slabs of 3 adjacent slices -> softmax brain
probability), deployed together (`fetal_keras.deploy.localise`): the **localiser** segments the brain on whole slices
(whole field of view) at {configs["localiser"].target_spacing_mm:g} mm in-plane, the most plausible head component is kept, and the **segmenter** masks a crop around
it at 1.1 mm; the mask is resampled onto the stack's own grid. Both normalise intensities over the foreground.
Use it with `fetal-keras predict --model pretrained --input STACK --out DIR` (the default model).

- localiser SHA-256: `{facts["sha256"]["localiser"]}`
- segmenter SHA-256: `{facts["sha256"]["segmenter"]}`
- Size: {facts["size_mb"]:.2f} MB together; trainable parameters: {facts["parameters"]:,} per model

## Training data

Simulated with `fetal_keras.simulate` (fetal_keras {facts["provenance"]["fetal_keras_version"]}, git
{facts["provenance"]["git_commit"]}), preset `{recipe.preset}`, `{recipe.head_anatomy}` heads
({HEAD_SOURCES[recipe.head_anatomy]}), {recipe.ga_range_weeks[0]:g}-{recipe.ga_range_weeks[1]:g} weeks, with motion and artefacts, and their tissue label maps.
{_data_sentence(recipe, facts["split"])} Every training image is rendered from the label maps with a fresh random
contrast, random background shapes{" and brain-sized fluid-filled round structures beside the head" if recipe.random_surroundings == "distractors" else ""},
blur and noise (`fetal_keras.rendering`), so that only shape can be learned; augmentation `{recipe.augmentation}`.

## Recipe

`{json.dumps(recipe_json)}`

Origins: localiser {facts["origins"]["localiser"]}; segmenter {facts["origins"]["segmenter"]}.

Localiser: {facts["epochs_run"]["localiser"]} epochs, best whole-volume validation Dice {facts["best_val_dice"]["localiser"]:.3f};
segmenter: {facts["epochs_run"]["segmenter"]} epochs of {recipe.steps_per_epoch} batches of {recipe.batch_size} slabs, best validation
Dice on crops around the brain {facts["best_val_dice"]["segmenter"]:.3f} (the epochs kept; validated on
{" and ".join(sorted({f"`{described_path(c.val_csv, facts['work_dir'])}`" for c in configs.values()}))}).

## Simulated test metrics

The pair, default deploy (no TTA): {_metric_line(facts["test"])}; {facts["test"]["dice_below_0.9"]} stack(s)
below Dice 0.9.

## Real labelled stacks

{real_section}

## Cost

Simulation {facts["simulation_minutes"]:.1f} min, training {facts["training_minutes"]:.1f} min; hardware:
{facts["hardware"]}. Re-create with `make pretrained` (or `fetal-keras pretrained`).

## Known limits

{KNOWN_LIMITS}{SELECTION_LIMIT if recipe.selection_csv else ""}"""


def _origin(run_dir: Path, given: bool, work_dir: Path) -> str:
    """Where a packaged role comes from, for the card."""
    record = portable_run_record(json.loads((run_dir / "config.json").read_text()), work_dir)
    if not given:
        return "trained by this recipe on the split above"
    return (
        f"packaged from the finished run `{described_path(run_dir, work_dir)}` (not trained by this recipe): trained "
        f"on `{record['config']['train_csv']}` at git {record.get('git_commit')}, {record.get('created')}"
    )


def _package_role(run_root: Path, folder: Path, base_filters: int, work_dir: Path):
    """Write a run's best weights (without optimizer state) and its config (paths made portable) into ``folder``;
    return the model."""
    import keras

    from fetal_keras.models.networks import build_model

    best = keras.saving.load_model(run_root / "checkpoints" / "best.keras", safe_mode=True)
    packaged = build_model("unet", base_filters=base_filters)  # uncompiled: no optimizer state in the file
    packaged.set_weights(best.get_weights())
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_output(folder / "model.keras") as temporary:
        packaged.save(temporary)
    write_json(
        folder / "config.json", portable_run_record(json.loads((run_root / "config.json").read_text()), work_dir)
    )
    return packaged


def _bank_settings(recipe: PretrainedRecipe) -> SimulationSettings:
    """The training bank's simulation: one labels-only stack per fetus."""
    return SimulationSettings(
        subjects=recipe.bank_subjects,
        stacks_per_subject=1,
        seed=recipe.seed,
        preset=recipe.preset,
        head_anatomy=recipe.head_anatomy,
        ga_range_weeks=recipe.ga_range_weeks,
        labels_only=True,
    )


def _split(table: pd.DataFrame, recipe: PretrainedRecipe, split_dir: Path, csv_path: Path) -> dict[str, pd.DataFrame]:
    """Split the imaged cohort by subject and write the split: with a bank, into validation (a third of the
    fetuses, at least one) and test only; without, into training, validation and test (70/15/15 %)."""
    if not recipe.bank_subjects:
        settings = SplitSettings(val_fraction=0.15, test_fraction=0.15, seed=recipe.seed)
        splits = make_splits(table, settings)
    else:  # what make_splits leaves for "training" validates: the bank trains
        settings = SplitSettings(val_fraction=0.0, test_fraction=0.6, seed=recipe.seed)
        held_out = make_splits(table, settings)
        splits = {"val": held_out["train"], "test": held_out["test"]}
    write_splits(splits, split_dir, csv_path, settings, overwrite=True)
    return splits


def _measure(pair_dir: Path, csv_path: Path, out_dir: Path, tta: bool) -> pd.DataFrame:
    """Segment a labelled cohort with the packaged pair and evaluate it (``segment_and_score``)."""
    from fetal_keras.deploy.predict import PredictOptions
    from fetal_keras.evaluation.labelled_cohort import segment_and_score
    from fetal_keras.models.loading import load_predictor

    predictor, preprocess, description = load_predictor(pair_dir)
    return segment_and_score(predictor, preprocess, description, csv_path, out_dir, PredictOptions(tta=tta))


def make_pretrained(
    work_dir: str | Path,
    recipe: PretrainedRecipe = PretrainedRecipe(),
    weights_dir: Path = WEIGHTS_DIR,
    name: str = PAIR_NAME,
    workers: int | None = None,
    real_csv: str | Path | None = None,
    trained_runs: dict[str, Path] | None = None,
) -> Path:
    """Simulate, train both roles, select, test and package the pretrained pair; return the model card's path.

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
    import keras

    from fetal_keras.evaluation.evaluate import summarize
    from fetal_keras.training.callbacks import EpochWeights, ProgressLog
    from fetal_keras.training.train import RunFolder, train
    from fetal_keras.training.weight_average import EPOCH_WEIGHTS

    trained_runs = {role: Path(run) for role, run in (trained_runs or {}).items()}
    if recipe.selection_csv and len(trained_runs) < len(PAIR_ROLES):
        try:  # before an hour of simulation and training, not after
            read_cohort(recipe.selection_csv, require_segmentation=True)
        except (FileNotFoundError, ValueError) as error:
            raise ValueError(
                f"{error}\nThe checkpoint selection stacks cannot be read; give --selection-csv none to choose "
                "checkpoints on the simulated validation split instead."
            ) from error
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    bank_csv = None
    if recipe.bank_subjects:
        _stage(
            work_dir,
            f"[1/5] simulating a bank of {recipe.bank_subjects} fetuses (label maps only) into {work_dir / 'bank'}",
        )
        bank_csv = _simulated(_bank_settings(recipe), work_dir / "bank", workers)
    _stage(work_dir, f"[1/5] simulating {recipe.subjects} fetuses x 3 stacks into {work_dir / 'sim'}")
    csv_path = _simulated(
        SimulationSettings(
            subjects=recipe.subjects,
            seed=recipe.seed + 1000 if recipe.bank_subjects else recipe.seed,
            preset=recipe.preset,
            head_anatomy=recipe.head_anatomy,
            ga_range_weeks=recipe.ga_range_weeks,
            first_subject=recipe.bank_subjects,  # ids after the bank's
        ),
        work_dir / "sim",
        workers,
    )
    timings = _Timings(work_dir / "timings.json")
    timings.record("simulation_minutes", (time.perf_counter() - start) / 60)
    _stage(work_dir, "[2/5] splitting by subject")
    split_dir = work_dir / "split"
    splits = _split(read_cohort(csv_path, require_segmentation=True), recipe, split_dir, csv_path)
    configs = {
        role: TrainConfig.load(trained_runs[role] / "config.json")
        if role in trained_runs
        else recipe.config(role, split_dir, work_dir / role, bank_csv)
        for role in PAIR_ROLES
    }
    training_start = time.perf_counter()
    for role, config in configs.items():
        run = RunFolder(config.run_dir)
        if role in trained_runs:
            if not run.best.is_file():
                raise FileNotFoundError(f"{run.root} has no checkpoints/best.keras to package as the {role}.")
            _stage(work_dir, f"[3/5] packaging the finished run {run.root} as the {role}")
            continue
        _stage(work_dir, f"[3/5] training the {role} into {run.root} (at most {config.max_minutes:g} min)")
        if not run.finished:
            log = ProgressLog(work_dir / PROGRESS_LOG, role, config.max_minutes, config.batch_size)
            train(config, verbose=2, extra_callbacks=[log, EpochWeights(run.root / EPOCH_WEIGHTS)])
    timings.record("training_minutes", (time.perf_counter() - training_start) / 60)

    _stage(work_dir, f"[4/5] packaging the pair into {pair_folder(name, weights_dir)}")
    folder = pair_folder(name, weights_dir)
    models = {
        role: _package_role(Path(config.run_dir), folder / role, config.base_filters, work_dir)
        for role, config in configs.items()
    }
    write_pair_file(folder, {role: f"{role}/model.keras" for role in PAIR_ROLES})

    _stage(
        work_dir, "[5/5] measuring the pair on the simulated test split" + (" and the real stacks" if real_csv else "")
    )
    test = _measure(folder, split_dir / "test.csv", work_dir / "test_predictions", tta=False)
    test.to_csv(work_dir / "test_metrics.csv", index=False)
    real = None
    if real_csv:
        real = {
            label: _measure(folder, Path(real_csv), work_dir / f"real_predictions_{suffix}", tta=tta)
            for label, suffix, tta in (("no TTA", "plain", False), ("TTA", "tta", True))
        }
    histories = {role: pd.read_csv(Path(config.run_dir) / "history.csv") for role, config in configs.items()}
    facts = {
        "sha256": {role: sha256_of(folder / role / "model.keras") for role in PAIR_ROLES},
        "size_mb": sum((folder / role / "model.keras").stat().st_size for role in PAIR_ROLES) / 1e6,
        "parameters": int(sum(keras.ops.size(w) for w in models["segmenter"].trainable_weights)),
        "provenance": provenance(),
        "split": {part: len(table) for part, table in splits.items()},
        "epochs_run": {role: len(history) for role, history in histories.items()},
        "best_val_dice": {role: float(history["val_volume_dice"].max()) for role, history in histories.items()},
        "origins": {
            role: _origin(Path(config.run_dir), role in trained_runs, work_dir) for role, config in configs.items()
        },
        "test": summarize(test),
        "real": real,
        "real_csv": described_path(real_csv, work_dir) if real_csv else None,
        "work_dir": work_dir,
        "selection": _selection_ids(configs, split_dir),
        **timings.values,
        "hardware": _hardware(),
    }
    with atomic_output(card_path(name, weights_dir)) as temporary:
        temporary.write_text(_card(name, recipe, configs, facts), encoding="utf-8")
    _stage(work_dir, f"Done: {folder} ({facts['sha256']}), card {card_path(name, weights_dir)}")
    return card_path(name, weights_dir)
