"""Fetal motion during a stack: one rigid transform per slice, correlated along the acquisition order.

Each slice of a single-shot stack is acquired in a fraction of a second, in interleaved order, while the fetus
moves. Its six rigid parameters (rotations about the brain centre in degrees, translations in mm, in the fetal
frame) follow a first-order autoregressive process in acquisition time, with occasional sudden jumps (a kick)
that persist. ``level`` in [0, 1] scales everything; 0 is a still fetus.
"""

from __future__ import annotations

import numpy as np

from fetal_keras.simulate.shapes import rotation_matrix


def interleaved_order(n_slices: int, rng: np.random.Generator) -> list[int]:
    """Acquisition order of slice positions: odd then even (or step 3, or reversed), as scanners interleave."""
    step = 3 if rng.uniform() < 0.2 and n_slices >= 6 else 2
    order = [position for start in range(step) for position in range(start, n_slices, step)]
    return order[::-1] if rng.uniform() < 0.3 else order


def draw_motion(
    order: list[int],
    level: float,
    rng: np.random.Generator,
    max_rotation_deg: float = 20.0,
    max_translation_mm: float = 10.0,
) -> np.ndarray:
    """Rigid parameters of every slice.

    Args:
        order: slice positions in acquisition order (``interleaved_order``).
        level: 0 (still) to 1 (very restless).
        rng: the stack's random generator.
        max_rotation_deg: bound on each rotation angle.
        max_translation_mm: bound on each translation.

    Returns:
        ``[n_slices, 6]`` indexed by slice position: rotations about x, y, z (degrees), translations x, y, z (mm).
    """
    n_slices = len(order)
    limits = np.array([max_rotation_deg] * 3 + [max_translation_mm] * 3)
    motion_by_time = np.zeros((n_slices, 6))
    if level <= 0:
        return motion_by_time
    correlation = rng.uniform(0.75, 0.97)
    spread = level * limits / 3.0
    state = rng.normal(0.0, spread)
    offset = np.zeros(6)
    for time in range(n_slices):
        if rng.uniform() < 0.04 * level:
            offset = rng.normal(0.0, level * limits / 2.0)
        state = correlation * state + np.sqrt(1 - correlation**2) * rng.normal(0.0, spread)
        motion_by_time[time] = np.clip(offset + state, -limits, limits)
    motion = np.empty_like(motion_by_time)
    motion[order] = motion_by_time
    return motion


def rigid(parameters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rotation matrix, translation) of one slice's six parameters."""
    return rotation_matrix(parameters[:3]), np.asarray(parameters[3:], dtype=float)


def draw_breathing(order: list[int], rng: np.random.Generator) -> np.ndarray:
    """Maternal breathing: a periodic shift (mm, world frame) of the whole scene per slice position."""
    amplitude = rng.uniform(0.0, 4.0) * np.array([0.2, 0.6, 1.0])
    slices_per_breath = rng.uniform(4.0, 8.0)
    phase = rng.uniform(0, 2 * np.pi)
    shift = np.zeros((len(order), 3))
    for time, position in enumerate(order):
        shift[position] = amplitude * np.sin(2 * np.pi * time / slices_per_breath + phase)
    return shift
