"""Plots of training histories and evaluation metrics: they take ``ax``/``axes=None`` and return the figure."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from fetal_keras.figures.plots import save_figure
from fetal_keras.models.metrics import MONITOR_DICE, VOLUME_DICE


def plot_training_curves(
    history: pd.DataFrame,
    ax: plt.Axes | None = None,
    steps_per_epoch: int | None = None,
    monitor_label: str = "monitored (whole volumes)",
) -> Figure:
    """Dice over training: patch Dice of training and validation batches, whole-volume validation Dice and, when
    the run watched a monitor cohort (``TrainConfig.monitor_csv``), that cohort's whole-volume Dice.

    Args:
        history: a run's ``history.csv`` (columns ``epoch``, ``brain_dice``, ``val_brain_dice`` and, on the
            epochs where they were computed, ``val_volume_dice`` and ``monitor_volume_dice``).
        ax: axes to draw in (default: a new figure).
        steps_per_epoch: with it, the x axis counts training batches instead of epochs.
        monitor_label: legend of the monitor cohort's curve (e.g. "real stacks (whole volumes)").
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    epochs = history["epoch"] + 1 if "epoch" in history else np.arange(1, len(history) + 1)
    x = np.asarray(epochs) * (steps_per_epoch or 1)
    curves = (
        ("brain_dice", "train (patches)", "tab:blue", "-"),
        ("val_brain_dice", "validation (patches)", "tab:orange", "--"),
        (VOLUME_DICE, "validation (whole volumes)", "tab:orange", "-"),
        (MONITOR_DICE, monitor_label, "tab:green", "-"),
    )
    for column, label, colour, style in curves:
        if column in history:
            values = history[column].to_numpy(float)
            shown = np.isfinite(values)
            ax.plot(x[shown], values[shown], style, color=colour, marker="o", markersize=3, label=label)
    ax.set_xlabel("training batches" if steps_per_epoch else "epoch")
    ax.set_ylabel("Dice (brain)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)  # "best": a fixed corner hid low real-stack points
    return ax.figure


def plot_metric_boxes(
    metrics: pd.DataFrame, metric: str = "dice", by: str | None = None, ax: plt.Axes | None = None
) -> Figure:
    """Box plot (with every stack as a dot) of one metric column, optionally one box per value of ``by``.

    Args:
        metrics: one row per stack (``fetal-keras evaluate`` output, possibly joined with cohort columns).
        metric: column to plot, e.g. ``dice`` or ``hd95_mm``.
        by: column whose values make the groups (e.g. ``preset`` or ``ga_band``); None for one box.
        ax: axes to draw in (default: a new figure).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3.5))
    groups = [("all", metrics)] if by is None else list(metrics.groupby(by, sort=True))
    values = [group[metric].dropna().to_numpy(float) for _, group in groups]
    ax.boxplot(values, showfliers=False)
    ax.set_xticks(range(1, len(groups) + 1), [str(name) for name, _ in groups])
    jitter = np.random.default_rng(0)
    for position, group_values in enumerate(values, start=1):
        ax.plot(position + jitter.uniform(-0.12, 0.12, len(group_values)), group_values, "k.", alpha=0.6)
    ax.set_ylabel(metric)
    if by:
        ax.set_xlabel(by)
    ax.grid(axis="y", alpha=0.3)
    return ax.figure


def plot_volume_agreement(metrics: pd.DataFrame, axes: Sequence[plt.Axes] | None = None) -> Figure:
    """Predicted vs true brain volume (identity line) and its Bland-Altman plot (bias and 95% limits).

    Args:
        metrics: columns ``true_volume_ml`` and ``predicted_volume_ml`` (``fetal-keras evaluate`` output).
        axes: two axes to draw in (default: a new figure).
    """
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    rows = metrics[["true_volume_ml", "predicted_volume_ml"]].dropna()
    true, predicted = rows["true_volume_ml"].to_numpy(float), rows["predicted_volume_ml"].to_numpy(float)
    scatter, bland_altman = axes
    scatter.plot(true, predicted, "o", color="tab:blue", alpha=0.7)
    limits = [0.0, 1.05 * max(true.max(initial=1.0), predicted.max(initial=1.0))]
    scatter.plot(limits, limits, "k--", linewidth=0.8)
    scatter.set_xlim(limits)
    scatter.set_ylim(limits)
    scatter.set_aspect("equal")
    scatter.set_xlabel("true brain volume in stack (ml)")
    scatter.set_ylabel("predicted (ml)")
    mean, difference = (true + predicted) / 2, predicted - true
    bias = float(difference.mean()) if len(difference) else 0.0
    spread = 1.96 * float(difference.std(ddof=1)) if len(difference) > 1 else 0.0
    bland_altman.plot(mean, difference, "o", color="tab:blue", alpha=0.7)
    for level, style, label in (
        (bias, "-", "bias"),
        (bias + spread, ":", "+1.96 sd"),
        (bias - spread, ":", "-1.96 sd"),
    ):
        bland_altman.axhline(level, color="k", linestyle=style, linewidth=0.8)
        bland_altman.annotate(
            f"{label} {level:+.1f}",
            (1.0, level),
            xycoords=("axes fraction", "data"),
            fontsize=7,
            ha="right",
            va="bottom",
        )
    bland_altman.set_xlabel("mean of true and predicted (ml)")
    bland_altman.set_ylabel("predicted - true (ml)")
    for ax in axes:
        ax.grid(alpha=0.3)
    return scatter.figure


def real_dice_over_training_figure(
    run_dirs: Mapping[str, str | Path],
    out_dir: str | Path,
    name: str = "real_dice_over_training",
    monitor_label: str = "real stacks (whole volumes)",
    dpi: int = 100,
) -> list[Path]:
    """One panel per training run (e.g. ``{"localiser": RUN, "segmenter": RUN}``): its Dice curves over training
    batches, with the monitor cohort's whole-volume Dice (``TrainConfig.monitor_csv``, e.g. real stacks) beside the
    simulated validation Dice; saved as ``out_dir/<name>.png`` and ``.pdf``.

    Raises:
        FileNotFoundError: if a run folder has no ``history.csv`` or ``config.json``.
    """
    figure, axes = plt.subplots(1, len(run_dirs), figsize=(5 * len(run_dirs), 3.6), squeeze=False)
    for ax, (title, run_dir) in zip(axes[0], run_dirs.items(), strict=True):
        run_dir = Path(run_dir)
        for required in ("history.csv", "config.json"):
            if not (run_dir / required).is_file():
                raise FileNotFoundError(f"{run_dir} has no {required}: is it a training run folder?")
        steps = json.loads((run_dir / "config.json").read_text())["config"]["steps_per_epoch"]
        plot_training_curves(pd.read_csv(run_dir / "history.csv"), ax, steps, monitor_label)
        ax.set_title(title)
    figure.tight_layout()
    return save_figure(figure, out_dir, name, dpi)
