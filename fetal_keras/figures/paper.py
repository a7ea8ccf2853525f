"""Named figures, each made by one function and saved as PNG and PDF."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from fetal_keras.choices import NORMALISATIONS
from fetal_keras.data.cohort import ID_COLUMN, IMAGE_COLUMN, SEGMENTATION_COLUMN, read_cohort
from fetal_keras.data.io import read_stack
from fetal_keras.data.labels import read_brain_mask
from fetal_keras.data.preprocess import PreprocessConfig, normalise_intensity
from fetal_keras.evaluation.qc import load_qc_case
from fetal_keras.figures.metric_plots import plot_metric_boxes, plot_training_curves, plot_volume_agreement
from fetal_keras.figures.plots import (
    draw_slice,
    intensity_window,
    save_figure,
    show_example_panel,
    show_orthogonal_views,
)
from fetal_keras.files import atomic_output, id_from_filename, output_paths
from fetal_keras.models.pretrained import PRETRAINED_SPEC
from fetal_keras.simulate import SimulationSettings, simulate_stack
from fetal_keras.simulate.cohort import simulate_subject

GA_BAND_EDGES = (18, 24, 28, 32, 36, 42)


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


def metrics_with_cohort(metrics: pd.DataFrame, csv_path: str | Path) -> pd.DataFrame:
    """Join per-stack metrics with the cohort CSV's extra columns (e.g. ``subject``, ``ga_weeks``) by id.

    With a ``ga_weeks`` column, a ``ga_band`` column is added (bands of ``GA_BAND_EDGES`` weeks).
    """
    table = read_cohort(csv_path)
    extra = [column for column in table.columns if column not in (IMAGE_COLUMN, SEGMENTATION_COLUMN)]
    joined = metrics.merge(table[extra], on=ID_COLUMN, how="left", suffixes=("", "_cohort"))
    if "ga_weeks" in joined:
        weeks = pd.to_numeric(joined["ga_weeks"], errors="coerce")
        labels = [f"{low}-{high} w" for low, high in zip(GA_BAND_EDGES[:-1], GA_BAND_EDGES[1:], strict=True)]
        joined["ga_band"] = pd.cut(weeks, GA_BAND_EDGES, labels=labels, right=False)
    return joined


def metrics_latex_table(metrics: pd.DataFrame, by: str | None = None) -> str:
    """A LaTeX ``tabular`` of mean +/- sd of the overlap and distance metrics, one row per group of ``by``."""
    columns = [
        ("dice", "Dice", 3),
        ("jaccard", "Jaccard", 3),
        ("hd95_mm", "HD95 (mm)", 2),
        ("assd_mm", "ASSD (mm)", 2),
        ("sensitivity", "Sensitivity", 3),
        ("precision", "Precision", 3),
    ]
    groups = [("all", metrics)] if by is None else [(str(k), g) for k, g in metrics.groupby(by, observed=True)]
    lines = [
        r"\begin{tabular}{l r " + "c " * len(columns) + "}",
        r"\hline",
        " & ".join([by.replace("_", r"\_") if by else "", "$n$", *(title for _, title, _ in columns)]) + r" \\",
        r"\hline",
    ]
    for name, group in groups:
        cells = []
        for column, _, digits in columns:
            values = group[column].dropna()
            sd = f" \\pm {values.std(ddof=1):.{digits}f}" if len(values) > 1 else ""
            cells.append(f"${values.mean():.{digits}f}{sd}$" if len(values) else "--")
        lines.append(" & ".join([name.replace("_", r"\_"), str(len(group)), *cells]) + r" \\")
    lines += [r"\hline", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def paper_figures(
    run_dir: str | Path,
    csv_path: str | Path,
    pred_dir: str | Path,
    metrics: pd.DataFrame,
    out_dir: str | Path,
    by: str | None = None,
    brain_labels: Sequence[int] | None = None,
    dpi: int = 150,
) -> list[Path]:
    """Every figure of a run, as PNG and PDF in ``out_dir``, plus ``metrics_table.tex``.

    ``dice_over_training`` (from ``RUN/history.csv``), ``example`` (input / truth / prediction of the stack with the
    median Dice), ``metric_boxes`` (Dice and HD95 per stack, grouped by the ``by`` column when given),
    ``volume_agreement`` (predicted vs true brain volume and Bland-Altman).

    Args:
        run_dir: the training run folder.
        csv_path: the evaluated cohort CSV (e.g. the test split), with segmentations.
        pred_dir: the ``fetal-keras predict`` output folder for it.
        metrics: the ``fetal-keras evaluate`` table of ``csv_path`` against ``pred_dir``.
        out_dir: where the figures go (created).
        by: optional grouping column of ``metrics`` (or of the cohort CSV, e.g. ``ga_band``).
        brain_labels: label values that count as brain in the segmentations (default: every non-zero label).
        dpi: resolution of the PNGs.

    Returns:
        The paths written.
    """
    out_dir = Path(out_dir)
    metrics = metrics_with_cohort(metrics, csv_path)
    evaluated = metrics[metrics["error"].fillna("") == ""]
    if evaluated.empty:
        raise ValueError(f"no stack of {csv_path} was evaluated: nothing to draw")
    paths = save_figure(
        plot_training_curves(pd.read_csv(Path(run_dir) / "history.csv")), out_dir, "dice_over_training", dpi
    )

    median_row = evaluated.iloc[(evaluated["dice"] - evaluated["dice"].median()).abs().argmin()]
    case = load_qc_case(csv_path, pred_dir, median_row[ID_COLUMN], brain_labels)
    figure = show_example_panel(case.image, case.spacing_mm, case.truth, case.prediction)
    figure.suptitle(f"{median_row[ID_COLUMN]} (median Dice {median_row['dice']:.3f})", fontsize=9)
    paths += save_figure(figure, out_dir, "example", dpi)

    figure, axes = plt.subplots(1, 2, figsize=(8, 3.5))
    plot_metric_boxes(evaluated, "dice", by, axes[0])
    plot_metric_boxes(evaluated, "hd95_mm", by, axes[1])
    figure.tight_layout()
    paths += save_figure(figure, out_dir, "metric_boxes", dpi)
    paths += save_figure(plot_volume_agreement(evaluated), out_dir, "volume_agreement", dpi)
    table_path = out_dir / "metrics_table.tex"
    with atomic_output(table_path) as temporary:
        temporary.write_text(metrics_latex_table(evaluated, by))
    return [*paths, table_path]


def cohort_views_figure(
    csv_path: str | Path, count: int = 3, brain_labels: Sequence[int] | None = None, stack_ids: Sequence[str] = ()
) -> plt.Figure:
    """Orthogonal views (brain outlined when segmented) of ``stack_ids``, or of the first ``count`` stacks of a CSV.

    Returns:
        The figure, one row per stack.
    """
    table = read_cohort(csv_path).set_index(ID_COLUMN)
    chosen = list(stack_ids) or list(table.index[:count])
    figure, axes = plt.subplots(len(chosen), 3, figsize=(12, 3.5 * len(chosen)), squeeze=False)
    for row_axes, stack_id in zip(axes, chosen, strict=True):
        stack = read_stack(table.loc[stack_id, IMAGE_COLUMN])
        segmentation = table.loc[stack_id].get(SEGMENTATION_COLUMN) or None
        mask = read_brain_mask(segmentation, brain_labels) if segmentation else None
        show_orthogonal_views(stack.array, stack.geometry.spacing_mm, mask, row_axes, title=stack_id)
    figure.tight_layout()
    return figure


def pretrained_qc_figure(
    stacks: Sequence[str | Path],
    out_path: str | Path,
    model: str | Path = PRETRAINED_SPEC,
    truths: Mapping[str, str | Path] | None = None,
    every: int = 3,
    dpi: int = 60,
) -> Path:
    """A model's masks (red), and manual masks (green) where given, on every ``every``-th slice of each stack, in
    one PNG.

    Args:
        stacks: stack files (e.g. the real labelled and unlabelled stacks).
        out_path: the PNG to write (its folder is created).
        model: what ``fetal-keras predict --model`` takes (default: the packaged model, checksum-verified).
        truths: manual brain masks by stack file (as given in ``stacks``), drawn in green.
        every: slice step.
        dpi: resolution (small by default: the figure is committed).
    """
    from fetal_keras.deploy.loading import load_predictor
    from fetal_keras.deploy.predict import PredictOptions, predict_many

    predictor, preprocess, description = load_predictor(model)
    truths = {str(path): mask for path, mask in (truths or {}).items()}
    columns = 8
    with tempfile.TemporaryDirectory() as folder:
        ids = [id_from_filename(path) for path in stacks]
        table = predict_many(
            predictor,
            list(zip(ids, map(str, stacks), strict=True)),
            folder,
            PredictOptions(),
            preprocess,
            description,
            progress=False,
        )
        failed = table[table["error"] != ""]
        if not failed.empty:
            raise ValueError("cannot segment " + "; ".join(f"{r['input']}: {r['error']}" for _, r in failed.iterrows()))
        cases = [
            (
                stack_id,
                read_stack(path),
                read_stack(output_paths(folder, stack_id)["mask"]).array,
                read_brain_mask(truths[str(path)]) if str(path) in truths else None,
            )
            for stack_id, path in zip(ids, stacks, strict=True)
        ]
    row_counts = [-(-len(range(0, len(stack.array), every)) // columns) for _, stack, _, _ in cases]
    figure, axes = plt.subplots(sum(row_counts), columns, figsize=(1.6 * columns, 1.7 * sum(row_counts)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    first_row = 0
    for (stack_id, stack, mask, truth), rows in zip(cases, row_counts, strict=True):
        window = intensity_window(stack.array)
        panels = axes[first_row : first_row + rows].flat
        for ax, index in zip(panels, range(0, len(stack.array), every), strict=False):
            draw_slice(ax, stack.array, index, stack.geometry.spacing_mm, mask, truth, window=window, fontsize=7)
            ax.set_title(f"{stack_id} {index}", fontsize=7)
        first_row += rows
    name = description.split(" (sha256")[0]
    figure.suptitle(
        f"{name} on real stacks: predicted brain mask (red), manual mask (green) where one exists, every {every} "
        "slices",
        fontsize=9,
    )
    figure.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out_path) as temporary:
        figure.savefig(temporary, dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return out_path


def normalised_intensities_figure(
    real_csv: str | Path, simulated_csv: str | Path, out_dir: str | Path, name: str = "normalised_intensities", dpi=100
) -> list[Path]:
    """Histograms of brain and other voxels of real and simulated labelled stacks after each normalisation that
    ``PreprocessConfig.normalisation`` offers (one panel each), saved as PNG and PDF; returns both paths."""
    figure, axes = plt.subplots(1, len(NORMALISATIONS), figsize=(5.5 * len(NORMALISATIONS), 3.6), squeeze=False)
    for ax, method in zip(axes[0], NORMALISATIONS, strict=True):
        config = PreprocessConfig(normalisation=method)
        for origin, csv, colour in (("real", real_csv, "C0"), ("simulated", simulated_csv, "C1")):
            brain, other = [], []
            for _, row in read_cohort(csv, require_segmentation=True).iterrows():
                normalised = normalise_intensity(read_stack(row[IMAGE_COLUMN]).array, config)
                mask = read_brain_mask(row[SEGMENTATION_COLUMN]).astype(bool)
                brain.append(normalised[mask])
                other.append(normalised[~mask])
            for values, part, style in ((other, "other voxels", ":"), (brain, "brain", "-")):
                ax.hist(
                    np.concatenate(values),
                    bins=120,
                    range=(-4, 8),
                    density=True,
                    histtype="step",
                    color=colour,
                    linestyle=style,
                    label=f"{origin}: {part}",
                )
        ax.set(title=f"normalisation = {method!r}", xlabel="normalised intensity", ylabel="density", yscale="log")
    axes[0][0].legend(fontsize=8)
    return save_figure(figure, out_dir, name, dpi)
