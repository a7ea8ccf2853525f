"""The pretrained recipe's simulated cohorts: the label-map bank that trains, the imaged cohort that validates and
tests, and its split by subject (stages 1-2 of ``fetal_keras.training.make_pretrained``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from fetal_keras.data.splits import SplitSettings, make_splits, write_splits
from fetal_keras.simulate import SimulationSettings, simulate_cohort
from fetal_keras.training.recipes import PretrainedRecipe


def simulated(settings: SimulationSettings, folder: Path, workers: int | None) -> Path:
    """Simulate into ``folder`` unless an earlier call already did with the same settings; return its cohort CSV.

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


def bank_settings(recipe: PretrainedRecipe) -> SimulationSettings:
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


def imaged_settings(recipe: PretrainedRecipe) -> SimulationSettings:
    """The imaged cohort's simulation (3 stacks per fetus, images and label maps): with a bank, its own seed and
    subject ids after the bank's."""
    return SimulationSettings(
        subjects=recipe.subjects,
        seed=recipe.seed + 1000 if recipe.bank_subjects else recipe.seed,
        preset=recipe.preset,
        head_anatomy=recipe.head_anatomy,
        ga_range_weeks=recipe.ga_range_weeks,
        first_subject=recipe.bank_subjects,
    )


def split_imaged(
    table: pd.DataFrame, recipe: PretrainedRecipe, split_dir: Path, csv_path: Path
) -> dict[str, pd.DataFrame]:
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
