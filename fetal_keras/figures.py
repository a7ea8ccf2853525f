"""Named figures, each made by one function and saved as PNG and PDF."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from fetal_keras.io import read_stack
from fetal_keras.plots import show_orthogonal_views
from fetal_keras.simulate import SimulationSettings, simulate_stack
from fetal_keras.simulate.cohort import simulate_subject


def save_figure(figure: plt.Figure, out_dir: str | Path, name: str, dpi: int = 100) -> list[Path]:
    """Save ``figure`` as ``out_dir/name.png`` and ``.pdf``; return both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    for path in paths:
        figure.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return paths


def simulated_vs_real_figure(
    out_dir: str | Path,
    real_stacks: list[str | Path],
    ages_weeks: tuple[float, ...] = (22.0, 30.0, 37.0),
    preset: str = "realistic",
    seed: int = 0,
    dpi: int = 100,
) -> list[Path]:
    """Simulated stacks at several ages and orientations above real stacks, each in three views.

    Args:
        out_dir: folder for ``simulated_vs_real.png`` / ``.pdf``.
        real_stacks: real stacks (no labels) to show below the simulated ones.
        ages_weeks: one simulated fetus per age; stack orientations cycle axial, coronal, sagittal.
        preset: simulator preset.
        seed: simulation seed.
        dpi: resolution of the PNG.

    Returns:
        The paths written.
    """
    rows = len(ages_weeks) + len(real_stacks)
    figure, axes = plt.subplots(rows, 3, figsize=(10, 3.2 * rows), squeeze=False)
    for row, age in enumerate(ages_weeks):
        settings = SimulationSettings(subjects=1, seed=seed + row, preset=preset, ga_range_weeks=(age, age))
        stack = simulate_stack(settings, simulate_subject(settings, 0), row)
        title = f"simulated, {age:.0f} weeks, {stack.plan.orientation} to the brain, motion {stack.record['motion_level']:.2f}"
        show_orthogonal_views(stack.image, stack.plan.spacing_mm, stack.mask, axes[row], title)
    for row, path in enumerate(real_stacks, start=len(ages_weeks)):
        real = read_stack(path)
        show_orthogonal_views(real.array, real.geometry.spacing_mm, None, axes[row], f"real: {Path(path).name}")
    figure.tight_layout()
    return save_figure(figure, out_dir, "simulated_vs_real", dpi)
