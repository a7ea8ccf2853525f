"""Draw, simulate and write a cohort of stacks: ``DIR/images``, ``DIR/segmentations``, ``cohort.csv``, ``simulation.json``.

Every subject and every stack has its own random stream derived from the cohort seed
(``SeedSequence(seed, spawn_key=(subject, stack))``), so any stack can be regenerated alone, exactly, with
:func:`simulate_subject` and :func:`simulate_stack`, and ``simulation.json`` records every parameter drawn.
"""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from fetal_keras import __version__
from fetal_keras.data.io import StackGeometry, write_like
from fetal_keras.files import atomic_output, write_json
from fetal_keras.simulate.acquisition import ORIENTATIONS, StackPlan, acquire, plan_stack
from fetal_keras.simulate.artefacts import apply_artefacts, draw_artefacts
from fetal_keras.simulate.growth import draw_head_biometry
from fetal_keras.simulate.head import HEAD_ANATOMIES, build_head
from fetal_keras.simulate.motion import draw_breathing, draw_motion, interleaved_order
from fetal_keras.simulate.render import head_volumes
from fetal_keras.simulate.scene import Scene, draw_scene
from fetal_keras.simulate.tissues import BRAIN_TISSUES, Tissue, draw_contrast, lookup_table

PRESETS = {
    # Reduced size for tests and the demo: a field of view around the fetal head, fewer and thicker slices.
    "small": {
        "head_spacing_mm": 1.2,
        "profile_samples": 3,
        "in_plane_mm": (1.1, 1.6),
        "field_of_view_mm": (170.0, 240.0),
        "matrix": (128, 160),
        "thickness_mm": (3.0, 5.0),
        "slices": (12, 24),
    },
    # Like clinical single-shot stacks: the whole maternal abdomen in plane.
    "realistic": {
        "head_spacing_mm": 0.8,
        "profile_samples": 5,
        "in_plane_mm": (0.8, 1.5),
        "field_of_view_mm": (280.0, 420.0),
        "matrix": (256, 512),
        "thickness_mm": (2.0, 5.0),
        "slices": (20, 60),
    },
}


@dataclass(frozen=True)
class SimulationSettings:
    """What to simulate.

    Attributes:
        subjects: number of fetuses.
        stacks_per_subject: stacks per fetus; orientations cycle axial, coronal, sagittal.
        seed: cohort seed; everything is a deterministic function of it and the other settings.
        preset: ``"small"`` (fast, for tests and the demo) or ``"realistic"`` (clinical stack sizes).
        domain_randomisation: random tissue signals (SynthSeg-style) instead of T2 contrast.
        motion: fetal motion and maternal breathing between slices.
        artefacts: bias field, noise, blur, drop-outs and stripes.
        ga_range_weeks: gestational ages are drawn uniformly in this range (within 18-38 weeks).
        head_anatomy: the fetal brains (``fetal_keras.simulate.head.HEAD_ANATOMIES``): ``"icbm"``, one adult
            template scaled down, or ``"atlas"``, real fetal brains of a fetal brain atlas.
        labels_only: simulate and write only the tissue label maps and brain masks (about six times faster): a bank
            of anatomies for training on images rendered from label maps (``image_source="labels"``). The
            cohort's ``image`` column then names the label map too, and its ``labels_only`` column says so; stack
            orientations cycle over fetuses as well as stacks.
        first_subject: subject ids count from this number (``sub-300``, ...), so that cohorts simulated apart (a
            training bank and a validation cohort) never share an id; the random streams do not depend on it.
    """

    subjects: int = 12
    stacks_per_subject: int = 3
    seed: int = 0
    preset: str = "small"
    domain_randomisation: bool = False
    motion: bool = True
    artefacts: bool = True
    ga_range_weeks: tuple[float, float] = (20.0, 38.0)
    head_anatomy: str = "icbm"
    labels_only: bool = False
    first_subject: int = 0

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {self.preset!r}.")
        if self.subjects < 1 or self.stacks_per_subject < 1:
            raise ValueError("subjects and stacks_per_subject must be at least 1.")
        if self.first_subject < 0:
            raise ValueError(f"first_subject must be at least 0, got {self.first_subject}.")
        low, high = self.ga_range_weeks
        if not 18.0 <= low <= high <= 38.0:
            raise ValueError(f"ga_range_weeks must lie within 18-38 weeks, got {self.ga_range_weeks}.")
        if self.head_anatomy not in HEAD_ANATOMIES:
            raise ValueError(f"head_anatomy must be one of {HEAD_ANATOMIES}, got {self.head_anatomy!r}.")


@dataclass(frozen=True)
class Subject:
    """One simulated fetus and its mother."""

    index: int
    scene: Scene
    record: dict


@dataclass(frozen=True)
class SimulatedStack:
    """One simulated stack: uint16 image (None when only label maps were simulated), uint8 brain mask and uint8
    tissue labels (``Tissue``) ``[z, y, x]`` on ``plan``'s grid."""

    stack_id: str
    image: np.ndarray | None
    mask: np.ndarray
    tissue_labels: np.ndarray
    plan: StackPlan
    record: dict

    @property
    def geometry(self) -> StackGeometry:
        """The grid as fetal_keras.data.io describes it."""
        return StackGeometry(
            size=self.plan.size,
            spacing_mm=self.plan.spacing_mm,
            origin_mm=tuple(float(v) for v in self.plan.origin_mm),
            direction=tuple(float(v) for v in self.plan.direction.ravel()),
        )


def subject_id(index: int) -> str:
    """``sub-003`` for subject 3."""
    return f"sub-{index:03d}"


def _rng(settings: SimulationSettings, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(settings.seed, spawn_key=key))


def simulate_subject(settings: SimulationSettings, index: int) -> Subject:
    """Simulate fetus ``index`` of the cohort (anatomy, pose, mother)."""
    rng = _rng(settings, index, 0)
    ga = float(rng.uniform(*settings.ga_range_weeks))
    biometry = draw_head_biometry(ga, rng)
    head = build_head(biometry, rng, PRESETS[settings.preset]["head_spacing_mm"], settings.head_anatomy)
    scene = draw_scene(head, rng)
    record = {
        "subject": subject_id(settings.first_subject + index),
        "ga_weeks": ga,
        "biometry": dataclasses.asdict(head.biometry),
        "brain_volume_ml": head.brain_volume_ml,
        "scene": scene.record,
    }
    return Subject(index=index, scene=scene, record=record)


def simulate_stack(
    settings: SimulationSettings, subject: Subject, stack: int, contrast: dict[str, float] | None = None
) -> SimulatedStack:
    """Simulate stack ``stack`` (0-based) of ``subject``; the same inputs always give the same stack.

    Args:
        settings: the cohort's settings.
        subject: from :func:`simulate_subject`.
        stack: index of the stack within the subject.
        contrast: signal per tissue name, replacing the drawn one (e.g. brain = 1, all else 0 to see exactly
            what the mask covers). The random stream is the same either way.
    """
    rng = _rng(settings, subject.index, stack + 1)
    preset = PRESETS[settings.preset]
    # A labels-only bank cycles orientations over its fetuses too, so that one stack per fetus covers all three.
    orientation = ORIENTATIONS[(stack + subject.index * settings.labels_only) % 3]
    plan_ranges = {k: preset[k] for k in ("in_plane_mm", "field_of_view_mm", "matrix", "thickness_mm", "slices")}
    plan = plan_stack(subject.scene, orientation, rng, **plan_ranges)
    order = interleaved_order(plan.size[2], rng)
    # Every draw happens whatever the switches say, so switching motion off changes nothing else.
    level = float(rng.uniform() ** 0.7)
    motion = draw_motion(order, level, rng) * settings.motion
    breathing = draw_breathing(order, rng) * settings.motion
    level *= settings.motion
    drawn_contrast = draw_contrast(rng, settings.domain_randomisation)
    contrast = drawn_contrast if contrast is None else contrast
    artefacts = draw_artefacts(plan.size[2], order, rng, settings.artefacts)

    table = lookup_table(contrast)
    volumes = head_volumes(subject.scene, table)
    signal, brain, tissue_labels = acquire(
        subject.scene, volumes, table, plan, motion, breathing, preset["profile_samples"], settings.labels_only
    )
    stack_id = f"{subject.record['subject']}_acq-{orientation}_run-{stack + 1}"
    record = {
        "id": stack_id,
        "plan": plan.record(),
        "slice_order": order,
        "motion_level": level,
        "motion_per_slice": np.round(motion, 4).tolist(),
        "motion_columns": ["rx_deg", "ry_deg", "rz_deg", "tx_mm", "ty_mm", "tz_mm"],
        "breathing_per_slice_mm": np.round(breathing, 4).tolist(),
        "contrast": contrast,
        "artefacts": artefacts,
    }
    if settings.labels_only:
        mask = np.isin(tissue_labels, BRAIN_TISSUES).astype(np.uint8)
        return SimulatedStack(stack_id, None, mask, tissue_labels, plan, record)
    image = apply_artefacts(signal, artefacts, rng)
    return SimulatedStack(stack_id, image, (brain >= 0.5).astype(np.uint8), tissue_labels, plan, record)


def _simulate_and_write(settings: SimulationSettings, index: int, out_dir: Path) -> tuple[list[dict], dict]:
    """Simulate subject ``index`` and all its stacks, write them; return CSV rows and the subject's record."""
    subject = simulate_subject(settings, index)
    rows, stacks = [], []
    for stack_index in range(settings.stacks_per_subject):
        stack = simulate_stack(settings, subject, stack_index)
        image_path = Path("images") / f"{stack.stack_id}.nii.gz"
        mask_path = Path("segmentations") / f"{stack.stack_id}.nii.gz"
        labels_path = Path("labels") / f"{stack.stack_id}.nii.gz"
        if stack.image is None:
            image_path = labels_path
        else:
            write_like(stack.image, stack.geometry, out_dir / image_path)
        write_like(stack.mask, stack.geometry, out_dir / mask_path)
        write_like(stack.tissue_labels, stack.geometry, out_dir / labels_path)
        brain_ml = float(stack.mask.sum() * np.prod(stack.plan.spacing_mm) / 1000.0)
        rows.append(
            {
                "iFIND_id": stack.stack_id,
                "image": image_path.as_posix(),
                "segmentation": mask_path.as_posix(),
                "labels": labels_path.as_posix(),
                "subject": subject.record["subject"],
                "ga_weeks": round(subject.record["ga_weeks"], 2),
                "orientation": stack.plan.orientation,
                "motion_level": round(stack.record["motion_level"], 3),
                "brain_ml_in_stack": round(brain_ml, 1),
                **({"labels_only": True} if settings.labels_only else {}),
            }
        )
        stacks.append(stack.record | {"seed_spawn_key": [index, stack_index + 1]})
    return rows, subject.record | {"seed_spawn_key": [index, 0], "stacks": stacks}


def simulate_cohort(
    settings: SimulationSettings, out_dir: str | Path, workers: int | None = None, overwrite: bool = False
) -> Path:
    """Simulate a cohort and write it in the iFIND CSV format.

    Writes ``out_dir/images/<id>.nii.gz`` (uint16), ``out_dir/segmentations/<id>.nii.gz`` (uint8 brain mask),
    ``out_dir/labels/<id>.nii.gz`` (uint8 tissue label map, ``Tissue`` values: what on-the-fly rendering draws
    new contrasts from), ``out_dir/cohort.csv`` (relative paths, plus labels, subject, GA, orientation, motion
    level) and
    ``out_dir/simulation.json`` (settings and every parameter drawn per subject and stack).

    Args:
        settings: what to simulate.
        out_dir: output folder (created).
        workers: parallel processes (default: one per CPU core, at most one per subject).
        overwrite: replace a cohort already in ``out_dir``.

    Returns:
        The path of ``cohort.csv``.

    Raises:
        FileExistsError: if ``out_dir`` already holds a cohort and ``overwrite`` is False.
    """
    out_dir = Path(out_dir)
    csv_path = out_dir / "cohort.csv"
    if csv_path.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already holds a cohort ({csv_path}); pass --overwrite to replace it.")
    for folder in ("segmentations", "labels") if settings.labels_only else ("images", "segmentations", "labels"):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    workers = max(1, min(workers or os.cpu_count() or 1, settings.subjects))
    indices = range(settings.subjects)
    total = settings.subjects * settings.stacks_per_subject
    with tqdm(total=total, desc="simulating stacks", unit="stack") as progress:
        if workers == 1:
            results = []
            for index in indices:
                results.append(_simulate_and_write(settings, index, out_dir))
                progress.update(settings.stacks_per_subject)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(_simulate_and_write, settings, index, out_dir) for index in indices]
                for future in futures:
                    future.add_done_callback(lambda _: progress.update(settings.stacks_per_subject))
                results = [future.result() for future in futures]
    rows = [row for subject_rows, _ in results for row in subject_rows]
    record = {
        "fetal_keras_version": __version__,
        "settings": dataclasses.asdict(settings),
        "preset_parameters": PRESETS[settings.preset],
        "seeding": "numpy SeedSequence(settings.seed, spawn_key=(subject, 0)) for a subject's anatomy, "
        "(subject, stack + 1) for each stack",
        "tissue_labels": {tissue.name: int(tissue) for tissue in Tissue},
        "brain_mask": "intracranial volume: fetal brain parenchyma (cortex, white matter, deep grey, germinal "
        "matrix), ventricles and extra-axial CSF; excludes skull and scalp; brain fraction over the slice profile >= 0.5",
        "subjects": [subject_record for _, subject_record in results],
    }
    write_json(out_dir / "simulation.json", record, indent=1)
    with atomic_output(csv_path) as temporary:
        pd.DataFrame(rows).to_csv(temporary, index=False)
    return csv_path
