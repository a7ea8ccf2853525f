"""Real fetal brain anatomy: the label maps of a CC0 spatio-temporal atlas of the fetal brain (``atlas_sb/``).

Fidon et al. 2021, spina bifida aperta, 15 label maps from 21 to 34 weeks at 0.8 mm (the folder's README has the
citation and the labels). Their physical axes are the fetal frame's (``fetal_keras.simulate.head``: x towards the
fetus's left, y posterior, z superior). ``fetal_keras.simulate.head.build_atlas_head`` scales the map of the nearest
age to a fetus and varies it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from fetal_keras.simulate.growth import biparietal_diameter_mm
from fetal_keras.simulate.tissues import Tissue

ATLAS_FOLDER = Path(__file__).with_name("atlas_sb")
_FILE_PATTERN = re.compile(r"parcellation_GA(\d+)_(operated|notoperated)\.nii\.gz")

EXTRA_AXIAL_CSF_LABEL = 4
# Atlas label -> the simulator's tissue. The cerebellum and the corpus callosum are dark on fetal T2 like the cortex;
# the brainstem is read as deep grey matter.
TISSUE_OF_LABEL = {
    0: Tissue.AIR,
    1: Tissue.WHITE_MATTER,
    2: Tissue.VENTRICLE,
    3: Tissue.CORTEX,
    EXTRA_AXIAL_CSF_LABEL: Tissue.EXTRA_AXIAL_CSF,
    5: Tissue.CORTEX,
    6: Tissue.DEEP_GREY,
    7: Tissue.DEEP_GREY,
    8: Tissue.CORTEX,
}
# The same as a look-up array: ``TISSUE_TABLE[atlas_labels]`` is the simulator's tissue labels.
TISSUE_TABLE = np.array([TISSUE_OF_LABEL[label] for label in range(len(TISSUE_OF_LABEL))], np.uint8)


@dataclass(frozen=True)
class AtlasBrain:
    """One atlas label map and what the head builder needs to know of it.

    Attributes:
        name: the file's age and condition, e.g. ``GA25_operated``.
        ga_weeks: its gestational age.
        labels: the label map (uint8 atlas labels, 0.8 mm, its own physical space).
        centre_mm: centre (x, y, z) of the brain without extra-axial CSF, in the map's physical space.
        size_mm: extent (left-right, anterior-posterior, inferior-superior) of that brain in mm.
        volume_ml: its volume (parenchyma and ventricles, the extra-axial CSF left out).
    """

    name: str
    ga_weeks: float
    labels: sitk.Image
    centre_mm: tuple[float, float, float]
    size_mm: tuple[float, float, float]
    volume_ml: float


def atlas_names() -> list[str]:
    """Names of the packaged label maps (``GA21_notoperated`` ... ``GA34_operated``), youngest first."""
    names = [match.group(0) for path in ATLAS_FOLDER.glob("*.nii.gz") if (match := _FILE_PATTERN.fullmatch(path.name))]
    if not names:
        raise FileNotFoundError(f"no atlas label maps in {ATLAS_FOLDER}: reinstall fetal_keras (package data).")
    return sorted(name.removeprefix("parcellation_").removesuffix(".nii.gz") for name in names)


def _age(name: str) -> float:
    return float(name[2:4])


@functools.cache
def load_atlas_brain(name: str) -> AtlasBrain:
    """Read one packaged label map (once per process) and measure its brain."""
    path = ATLAS_FOLDER / f"parcellation_{name}.nii.gz"
    if not path.is_file():
        raise FileNotFoundError(f"atlas label map {path} not found; known: {', '.join(atlas_names())}")
    labels = sitk.Cast(sitk.ReadImage(str(path)), sitk.sitkUInt8)
    array = sitk.GetArrayViewFromImage(labels)
    brain = (array > 0) & (array != EXTRA_AXIAL_CSF_LABEL)
    corners = np.argwhere(brain)
    low, high = (
        np.array(labels.TransformIndexToPhysicalPoint([int(v) for v in corner[::-1]]))
        for corner in (corners.min(0), corners.max(0))
    )
    spacing = np.asarray(labels.GetSpacing())
    return AtlasBrain(
        name=name,
        ga_weeks=_age(name),
        labels=labels,
        centre_mm=tuple(float(v) for v in (low + high) / 2),
        size_mm=tuple(float(v) for v in np.abs(high - low) + spacing),
        volume_ml=float(brain.sum() * np.prod(spacing) / 1000.0),
    )


def _nearest_names(ga_weeks: float) -> list[str]:
    """The label maps of the age nearest ``ga_weeks`` (clipped to the atlas's ages): two at 25 weeks, else one."""
    names = atlas_names()
    ages = np.array([_age(name) for name in names])
    distance = np.abs(ages - np.clip(round(ga_weeks), ages.min(), ages.max()))
    return [name for name, d in zip(names, distance, strict=True) if d == distance.min()]


def nearest_atlas_brain(ga_weeks: float, rng: np.random.Generator) -> AtlasBrain:
    """The label map of the age nearest ``ga_weeks`` (clipped to 21-34); one of the two at 25 weeks at random."""
    candidates = _nearest_names(ga_weeks)
    return load_atlas_brain(candidates[int(rng.integers(len(candidates)))])


def growth_factor(ga_weeks: float, atlas_ga_weeks: float) -> float:
    """Linear size factor from an atlas brain of ``atlas_ga_weeks`` to a median brain of ``ga_weeks`` (the ratio of
    median biparietal diameters), which also extrapolates beyond the atlas's ages."""
    return biparietal_diameter_mm(ga_weeks) / biparietal_diameter_mm(atlas_ga_weeks)


def expected_brain_volume_ml(ga_weeks: float) -> float:
    """The brain volume (parenchyma and ventricles) the atlas heads follow at ``ga_weeks``: the nearest atlas's
    volume scaled by the cube of :func:`growth_factor` (mean of the two maps at 25 weeks)."""
    brains = [load_atlas_brain(name) for name in _nearest_names(ga_weeks)]
    return float(np.mean([brain.volume_ml * growth_factor(ga_weeks, brain.ga_weeks) ** 3 for brain in brains]))
