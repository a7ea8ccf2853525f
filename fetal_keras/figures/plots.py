"""Plot helpers for stacks and masks: they take ``ax``/``axes=None``, return the figure, and respect voxel spacing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from fetal_keras.files import atomic_output


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


def draw_slice(
    ax: plt.Axes,
    image: np.ndarray,
    index: int,
    spacing_mm: Sequence[float],
    prediction: np.ndarray | None = None,
    truth: np.ndarray | None = None,
    uncertainty: np.ndarray | None = None,
    flagged: Sequence[int] = (),
    window: tuple[float, float] | None = None,
    fontsize: float = 10,
) -> Figure:
    """Draw slice ``index`` of a ``[z, y, x]`` stack with prediction (red) / truth (green) outlines into ``ax``.

    ``uncertainty`` is overlaid in a translucent heat colour map; ``flagged`` slices are titled in orange;
    ``window`` is the intensity display range (default: percentiles of the whole stack).
    """
    ax.clear()
    vmin, vmax = window or intensity_window(image)
    aspect = spacing_mm[1] / spacing_mm[0]
    ax.imshow(image[index], cmap="gray", vmin=vmin, vmax=vmax, aspect=aspect, interpolation="none", origin="lower")
    if uncertainty is not None:
        ax.imshow(uncertainty[index], cmap="hot", alpha=0.4, vmin=0, vmax=0.5, aspect=aspect, origin="lower")
    for mask, colour in ((truth, "lime"), (prediction, "red")):
        if mask is not None and mask[index].any():
            ax.contour(mask[index], levels=[0.5], colors=colour, linewidths=0.8)
    flag = " - QC flag" if index in set(flagged) else ""
    ax.set_title(f"slice {index}{flag}", color="darkorange" if flag else "black", fontsize=fontsize)
    ax.axis("off")
    return ax.figure


def show_slice_montage(
    image: np.ndarray,
    spacing_mm: Sequence[float],
    prediction: np.ndarray | None = None,
    truth: np.ndarray | None = None,
    uncertainty: np.ndarray | None = None,
    flagged: Sequence[int] = (),
    every: int = 1,
    columns: int = 6,
    title: str | None = None,
) -> Figure:
    """Every ``every``-th slice of a ``[z, y, x]`` stack with prediction (red) and truth (green) outlines.

    Args:
        image: ``[z, y, x]`` stack.
        spacing_mm: (x, y, z) voxel spacing, for the in-plane aspect ratio.
        prediction: ``[z, y, x]`` predicted mask, outlined in red.
        truth: ``[z, y, x]`` reference mask, outlined in green.
        uncertainty: ``[z, y, x]`` map (e.g. TTA standard deviation) overlaid in a translucent heat colour map.
        flagged: slice indices to mark (e.g. the QC flags of ``predictions.csv``): their titles turn orange.
        every: show every n-th slice.
        columns: panels per row.
        title: figure title.

    Returns:
        The figure.
    """
    slices = list(range(0, image.shape[0], max(1, every)))
    rows = -(-len(slices) // columns)
    aspect = spacing_mm[1] / spacing_mm[0]
    figure, axes = plt.subplots(rows, columns, figsize=(2 * columns, 2 * rows * aspect), squeeze=False)
    window = intensity_window(image)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, slices, strict=False):
        draw_slice(ax, image, index, spacing_mm, prediction, truth, uncertainty, flagged, window, fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def show_example_panel(
    image: np.ndarray,
    spacing_mm: Sequence[float],
    truth: np.ndarray,
    prediction: np.ndarray,
    axes: Sequence[plt.Axes] | None = None,
    slice_index: int | None = None,
) -> Figure:
    """Input, truth and prediction of one slice side by side (default: the slice with the most brain in truth).

    Args:
        image: ``[z, y, x]`` stack.
        spacing_mm: (x, y, z) voxel spacing.
        truth: ``[z, y, x]`` reference mask.
        prediction: ``[z, y, x]`` predicted mask.
        axes: three axes to draw in (default: a new figure).
        slice_index: slice to show.
    """
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(9, 3.2))
    index = int(truth.reshape(len(truth), -1).sum(axis=1).argmax()) if slice_index is None else slice_index
    aspect = spacing_mm[1] / spacing_mm[0]
    vmin, vmax = intensity_window(image)
    for ax, (overlay, label) in zip(axes, ((None, "input"), (truth, "truth"), (prediction, "prediction")), strict=True):
        ax.imshow(image[index], cmap="gray", vmin=vmin, vmax=vmax, aspect=aspect, interpolation="none", origin="lower")
        if overlay is not None:
            shown = np.ma.masked_where(overlay[index] == 0, overlay[index])
            ax.imshow(shown, cmap="autumn", alpha=0.5, aspect=aspect, interpolation="none", origin="lower")
        ax.set_title(f"{label} (slice {index})", fontsize=9)
        ax.axis("off")
    return axes[0].figure


def save_figure(figure: plt.Figure, out_dir: str | Path, name: str, dpi: int = 100) -> list[Path]:
    """Save ``figure`` as ``out_dir/name.png`` and ``.pdf`` (each written atomically); return both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    for path in paths:
        with atomic_output(path) as temporary:
            figure.savefig(temporary, dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return paths
