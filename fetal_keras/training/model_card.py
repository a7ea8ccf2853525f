"""The pretrained pair's model card: what it was trained on, how, what it scores on simulated and real stacks,
what it cost and its known limits (written by ``fetal_keras.training.make_pretrained``)."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from fetal_keras.data.cohort import ID_COLUMN, read_cohort
from fetal_keras.models.train_config import TrainConfig
from fetal_keras.training.pretrained_package import described_path
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

HEAD_SOURCES = {
    "icbm": "the adult ICBM 2009a template scaled to fetal size",
    "atlas": "label maps of the CC0 spatio-temporal fetal brain atlas with spina bifida aperta, Fidon et al., Open "
    "Research Europe 2021, at the nearest age, varied per fetus",
}


def hardware() -> str:
    """The machine that trained, for the card: processor, cores and GPUs."""
    import tensorflow as tf

    gpus = [device.name for device in tf.config.list_physical_devices("GPU")]
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, " + (
        f"GPU: {', '.join(gpus)}" if gpus else "no GPU"
    )


def metric_line(summary: dict) -> str:
    """One sentence of Dice and HD95 from an ``evaluate.summarize`` summary."""
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


def real_table(real: dict[str, pd.DataFrame], selection_ids: set[str]) -> str:
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


def selection_stacks(configs: dict[str, TrainConfig], split_dir: Path) -> tuple[set[str], list[str]]:
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


def data_sentence(recipe: PretrainedRecipe, split: dict[str, int]) -> str:
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


def model_card(name: str, recipe: PretrainedRecipe, configs: dict[str, TrainConfig], facts: dict) -> str:
    """The card's Markdown text, from the recipe, each role's config and the facts the recipe gathered (checksums,
    split sizes, epochs, test and real metrics, timings)."""
    recipe_json = {  # paths as the card gives them: naming no machine's folders
        role: {
            k: described_path(v, facts["work_dir"]) if isinstance(v, str) and Path(v).is_absolute() else v
            for k, v in asdict(c).items()
            if k not in ("train_csv", "val_csv", "run_dir")
        }
        for role, c in configs.items()
    }
    real = facts.get("real")
    chosen_ids, selection = facts["selection"]
    use = (
        f"{'; '.join(selection)}; stacks marked * took part in that choice"
        if selection
        else "not used to select anything"
    )
    real_section = (
        f"{facts['real_csv']} (never trained on; {use}):\n\n" + real_table(real, chosen_ids)
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
{data_sentence(recipe, facts["split"])} Every training image is rendered from the label maps with a fresh random
contrast, random background shapes{" and brain-sized fluid-filled round structures beside the head" if recipe.random_surroundings == "distractors" else ""},
blur and noise (`fetal_keras.rendering`), so that only shape can be learned; augmentation `{recipe.augmentation}`.

## Recipe

`{json.dumps(recipe_json)}`

Origins: localiser {facts["origins"]["localiser"]}; segmenter {facts["origins"]["segmenter"]}.

Localiser: {facts["epochs_run"]["localiser"]} epochs, best whole-volume validation Dice {facts["best_val_dice"]["localiser"]:.3f};
segmenter: {facts["epochs_run"]["segmenter"]} epochs of {recipe.steps_per_epoch} batches of {recipe.batch_size} slabs, best validation
Dice on crops around {"the localiser's head" if configs["segmenter"].validation_localiser else "the brain"} {facts["best_val_dice"]["segmenter"]:.3f} (the epochs kept; validated on
{" and ".join(sorted({f"`{described_path(c.val_csv, facts['work_dir'])}`" for c in configs.values()}))}).

## Simulated test metrics

The pair, default deploy (no TTA): {metric_line(facts["test"])}; {facts["test"]["dice_below_0.9"]} stack(s)
below Dice 0.9.

## Real labelled stacks

{real_section}

## Cost

Simulation {facts["simulation_minutes"]:.1f} min, training {facts["training_minutes"]:.1f} min; hardware:
{facts["hardware"]}. Re-create with `make pretrained` (or `fetal-keras pretrained`).

## Known limits

{KNOWN_LIMITS}{SELECTION_LIMIT if recipe.selection_csv else ""}"""
