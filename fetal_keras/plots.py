"""Plot helpers for stacks and masks: they take ``ax``/``axes=None``, return the figure, and respect voxel spacing."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def intensity_window(image: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.5)) -> tuple[float, float]:
    """Display range of ``image`` from intensity percentiles (robust to a few very bright voxels)."""
    low, high = np.percentile(image, percentiles)
    return float(low), float(max(high, low + 1e-6))


def show_orthogonal_views(
    image: np.ndarray,
    spacing_mm: Sequence[float],
    mask: np.ndarray | None = None,
    axes: Sequence[plt.Axes] | None = None,
    title: str | None = None,
) -> Figure:
    """Show the middle slice of a ``[z, y, x]`` stack and its two through-plane reformats.

    Reformats are drawn with the slice thickness as their vertical pixel size, so thick slices and the jagged
    edges left by fetal motion between slices look as they are.

    Args:
        image: ``[z, y, x]`` stack.
        spacing_mm: (x, y, z) voxel spacing as SimpleITK gives it.
        mask: optional ``[z, y, x]`` brain mask, outlined in red.
        axes: three axes to draw in (default: a new figure).
        title: written above the first view.

    Returns:
        The figure.
    """
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(12, 4))
    vmin, vmax = intensity_window(image)
    sx, sy, sz = spacing_mm
    z, y, x = (n // 2 for n in image.shape)
    if mask is not None and mask.any():
        z, y, x = (int(round(c)) for c in np.argwhere(mask).mean(axis=0))
    views = [
        (image[z], None if mask is None else mask[z], sy / sx, f"slice {z}"),
        (image[:, y], None if mask is None else mask[:, y], sz / sx, f"reformat at row {y}"),
        (image[:, :, x], None if mask is None else mask[:, :, x], sz / sy, f"reformat at column {x}"),
    ]
    for ax, (plane, outline, aspect, label) in zip(axes, views, strict=True):
        ax.imshow(plane, cmap="gray", vmin=vmin, vmax=vmax, aspect=aspect, interpolation="none", origin="lower")
        if outline is not None and outline.any():
            ax.contour(outline, levels=[0.5], colors="red", linewidths=0.6)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(label, fontsize=8)
    if title:
        axes[0].set_title(title, fontsize=9, loc="left")
    return axes[0].figure
