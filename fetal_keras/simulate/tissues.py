"""Tissue classes of the simulated scene and their T2-weighted (single-shot fast spin echo) contrast.

Relative signal, amniotic fluid = 1: CSF and fluid brightest, unmyelinated fetal white matter brighter than the
cortex, germinal matrix and cortex dark, maternal fat bright (as on HASTE/SSFSE), muscle and bone dark, air black.
``draw_contrast`` jitters these (about 10 %) or, with domain randomisation, draws every tissue uniformly in
[0.02, 1] as SynthSeg does, so a model cannot rely on one intensity look-up table.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Tissue(IntEnum):
    """Tissue labels of the scene (the written segmentation is only the binary brain mask)."""

    AIR = 0
    MATERNAL_FAT = 1
    MATERNAL_MUSCLE = 2
    MATERNAL_ORGAN = 3
    MATERNAL_BOWEL = 4
    MATERNAL_BONE = 5
    MATERNAL_MARROW = 6
    VESSEL = 7
    UTERINE_WALL = 8
    PLACENTA = 9
    AMNIOTIC_FLUID = 10
    FETAL_SOFT_TISSUE = 11
    FETAL_LUNG = 12
    FETAL_LIVER = 13
    FETAL_FLUID = 14
    FETAL_BONE = 15
    SCALP = 16
    SKULL = 17
    EXTRA_AXIAL_CSF = 18
    CORTEX = 19
    WHITE_MATTER = 20
    DEEP_GREY = 21
    GERMINAL_MATRIX = 22
    VENTRICLE = 23
    MATERNAL_FLUID = 24


# Brain parenchyma (cortex, white matter, deep grey, germinal matrix) and the ventricles it encloses.
PARENCHYMA = (Tissue.CORTEX, Tissue.WHITE_MATTER, Tissue.DEEP_GREY, Tissue.GERMINAL_MATRIX, Tissue.VENTRICLE)
# The brain mask: the intracranial volume, i.e. the parenchyma and the extra-axial CSF around it up to the skull
# (skull and scalp outside), as brain masks for slice-to-volume reconstruction are drawn (e.g. the manual masks of
# MIALSRTK's sample dataset follow the inner table of the skull, the bright CSF ring inside them).
BRAIN_TISSUES = PARENCHYMA + (Tissue.EXTRA_AXIAL_CSF,)

T2_SIGNAL = {
    Tissue.AIR: 0.0,
    Tissue.MATERNAL_FAT: 0.7,
    Tissue.MATERNAL_MUSCLE: 0.18,
    Tissue.MATERNAL_ORGAN: 0.28,
    Tissue.MATERNAL_BOWEL: 0.55,
    Tissue.MATERNAL_BONE: 0.06,
    Tissue.MATERNAL_MARROW: 0.4,
    Tissue.VESSEL: 0.05,
    Tissue.UTERINE_WALL: 0.32,
    Tissue.PLACENTA: 0.45,
    Tissue.AMNIOTIC_FLUID: 1.0,
    Tissue.FETAL_SOFT_TISSUE: 0.33,
    Tissue.FETAL_LUNG: 0.62,
    Tissue.FETAL_LIVER: 0.2,
    Tissue.FETAL_FLUID: 0.92,
    Tissue.FETAL_BONE: 0.12,
    Tissue.SCALP: 0.38,
    Tissue.SKULL: 0.14,
    Tissue.EXTRA_AXIAL_CSF: 0.95,
    Tissue.CORTEX: 0.3,
    Tissue.WHITE_MATTER: 0.6,
    Tissue.DEEP_GREY: 0.4,
    Tissue.GERMINAL_MATRIX: 0.22,
    Tissue.VENTRICLE: 0.93,
    Tissue.MATERNAL_FLUID: 0.95,
}


def draw_contrast(rng: np.random.Generator, domain_randomisation: bool = False) -> dict[str, float]:
    """Signal of every tissue for one stack, keyed by tissue name (so it can be recorded in JSON).

    Args:
        rng: the stack's random generator.
        domain_randomisation: draw every tissue's signal uniformly in [0.02, 1] instead of jittering T2 values.
    """
    if domain_randomisation:
        values = {tissue: rng.uniform(0.02, 1.0) for tissue in Tissue}
        values[Tissue.AIR] = rng.uniform(0.0, 0.05)
    else:
        values = {tissue: signal * rng.normal(1.0, 0.1) for tissue, signal in T2_SIGNAL.items()}
    return {tissue.name: float(np.clip(value, 0.0, 1.2)) for tissue, value in values.items()}


def lookup_table(contrast: dict[str, float]) -> np.ndarray:
    """Signal per tissue label, as an array indexed by ``Tissue`` value."""
    table = np.zeros(len(Tissue), dtype=np.float32)
    for tissue in Tissue:
        table[tissue] = contrast[tissue.name]
    return table
