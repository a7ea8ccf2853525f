"""Fetal biometry by gestational age (GA, in weeks), from published growth charts (approximate).

Biparietal diameter (outer-outer, mm) follows Snijders & Nicolaides 1994 (Ultrasound Obstet Gynecol 4:34), about
41 mm at 18 weeks, 47 mm at 20 and 92 mm at 38; the brain's width is the BPD less skull, scalp and extra-axial CSF. The uterus
(fundal height about GA in cm) and cortical maturation (lissencephalic at 20 weeks, most primary and secondary
sulci by 34) are coarse approximations that only need to span the real range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GA_WEEKS = np.array([18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38], dtype=float)
BPD_MM = np.array([41, 47, 53, 59, 65, 71, 76, 81, 85, 89, 92], dtype=float)


def biparietal_diameter_mm(ga_weeks: float) -> float:
    """Median biparietal diameter (outer skull to outer skull) in mm at ``ga_weeks`` (18-38)."""
    return float(np.interp(ga_weeks, GA_WEEKS, BPD_MM))


def maturity(ga_weeks: float) -> float:
    """0 at 20 weeks and before (smooth brain) to 1 at 38 weeks (folded), linear in between."""
    return float(np.clip((ga_weeks - 20.0) / 18.0, 0.0, 1.0))


@dataclass(frozen=True)
class HeadBiometry:
    """Sizes of one fetal head, in mm.

    ``brain_size_mm`` is (left-right width, anterior-posterior length, inferior-superior height) of the brain.
    ``folding_sigma_mm`` is how much the adult cortical folding is smoothed away (large = lissencephalic).
    """

    ga_weeks: float
    bpd_mm: float
    brain_size_mm: tuple[float, float, float]
    cortex_mm: float
    extra_axial_csf_mm: float
    skull_mm: float
    scalp_mm: float
    folding_sigma_mm: float
    ventricle_dilation_mm: float
    germinal_matrix_mm: float


def draw_head_biometry(ga_weeks: float, rng: np.random.Generator) -> HeadBiometry:
    """Draw one fetus's head sizes around the median for its age (about 5 % between-fetus variation)."""
    m = maturity(ga_weeks)
    bpd = biparietal_diameter_mm(ga_weeks) * rng.normal(1.0, 0.05)
    skull = rng.uniform(0.8, 1.5) + 1.0 * m
    scalp = rng.uniform(1.5, 3.0) + 1.5 * m
    csf = rng.uniform(1.5, 3.5) * (1.3 - 0.5 * m)
    width = bpd - 2 * (skull + scalp + csf)
    cephalic_index = rng.uniform(0.74, 0.86)
    length = width / cephalic_index
    height = length * rng.uniform(0.78, 0.9)
    return HeadBiometry(
        ga_weeks=float(ga_weeks),
        bpd_mm=float(bpd),
        brain_size_mm=(float(width), float(length), float(height)),
        cortex_mm=float(rng.uniform(1.0, 1.4) + 0.8 * m),
        extra_axial_csf_mm=float(csf),
        skull_mm=float(skull),
        scalp_mm=float(scalp),
        folding_sigma_mm=float((2.4 - 2.1 * m) * rng.uniform(0.85, 1.15)),
        ventricle_dilation_mm=float(rng.uniform(0.5, 1.5) * (1.2 - m)),
        germinal_matrix_mm=float(max(0.0, 1.8 * (1.0 - 1.6 * m)) * rng.uniform(0.7, 1.2)),
    )


def uterus_semi_axes_mm(ga_weeks: float, rng: np.random.Generator) -> tuple[float, float, float]:
    """Semi-axes (left-right, anterior-posterior, long axis) of the uterine cavity in mm.

    Fundal height (symphysis to fundus over the curved abdomen) is about GA in cm; the straight cavity is shorter.
    """
    long_axis = 4.0 * ga_weeks * rng.uniform(0.9, 1.1)
    return long_axis * rng.uniform(0.6, 0.72), long_axis * rng.uniform(0.48, 0.58), long_axis
