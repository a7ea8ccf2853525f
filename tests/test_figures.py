import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from conftest import synthetic_pair, write_volume

from fetal_keras.data.explore import describe_cohort, orientation_code
from fetal_keras.evaluation.qc import load_qc_case
from fetal_keras.figures.metric_plots import (
    plot_metric_boxes,
    plot_training_curves,
    plot_volume_agreement,
    real_dice_over_training_figure,
)
from fetal_keras.figures.paper import cohort_views_figure, metrics_latex_table, metrics_with_cohort, paper_figures
from fetal_keras.figures.plots import save_figure, show_example_panel, show_slice_montage
from fetal_keras.files import output_paths


def _metrics(n=6):
    rng = np.random.default_rng(0)
    true = rng.uniform(50, 250, n)
    return pd.DataFrame(
        {
            "iFIND_id": [f"sub-{i:02d}" for i in range(n)],
            "dice": np.linspace(0.80, 0.95, n),
            "jaccard": np.linspace(0.67, 0.90, n),
            "hd95_mm": np.linspace(6.0, 2.0, n),
            "assd_mm": np.linspace(1.5, 0.5, n),
            "sensitivity": 0.9,
            "precision": 0.92,
            "true_volume_ml": true,
            "predicted_volume_ml": true + rng.normal(0, 5, n),
            "preset": (["unet", "fetal_fcn"] * n)[:n],
            "error": "",
        }
    )


def _written(figure, tmp_path, name):
    paths = save_figure(figure, tmp_path, name, dpi=30)
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_every_metric_plot_writes_an_image(tmp_path):
    history = pd.DataFrame(
        {"epoch": [0, 1, 2], "brain_dice": [0.3, 0.6, 0.8], "val_brain_dice": [0.2, 0.5, 0.7]}
        | {"val_volume_dice": [0.1, np.nan, 0.75]}
    )
    figure = plot_training_curves(history)
    assert len(figure.axes[0].lines) == 3
    assert list(figure.axes[0].lines[2].get_xdata()) == [1, 3]  # epochs without whole-volume Dice are skipped
    _written(figure, tmp_path, "curves")
    figure = plot_metric_boxes(_metrics(), "dice", by="preset")
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["fetal_fcn", "unet"]
    _written(figure, tmp_path, "boxes")
    _written(plot_volume_agreement(_metrics()), tmp_path, "volumes")


def test_slice_plots_use_the_in_plane_aspect_and_mark_flagged_slices(tmp_path):
    image, labels = synthetic_pair(shape=(7, 20, 16))
    figure = show_slice_montage(
        image, (1.0, 2.0, 4.0), labels > 0, labels > 0, np.zeros(image.shape), flagged=[3], every=2
    )
    shown = [ax for ax in figure.axes if ax.images]
    assert len(shown) == 4  # slices 0, 2, 4, 6
    assert shown[0].get_aspect() == 2.0
    assert [ax.get_title() for ax in shown] == ["slice 0", "slice 2", "slice 4", "slice 6"]
    figure = show_slice_montage(image, (1.0, 1.0, 4.0), flagged=[2], every=2)
    assert "QC flag" in [ax for ax in figure.axes if ax.images][1].get_title()
    _written(figure, tmp_path, "montage")
    figure = show_example_panel(image, (1.0, 1.0, 4.0), labels > 0, labels > 0)
    assert figure.axes[0].get_title() == "input (slice 3)"  # the slice with the most brain
    _written(figure, tmp_path, "example")


def test_latex_table_holds_mean_and_sd_per_group():
    table = metrics_latex_table(_metrics(), by="preset")
    assert table.startswith(r"\begin{tabular}") and table.rstrip().endswith(r"\end{tabular}")
    unet = _metrics().query("preset == 'unet'")["dice"]
    assert f"${unet.mean():.3f} \\pm {unet.std(ddof=1):.3f}$" in table
    assert "fetal\\_fcn & 3 &" in table


def _predicted_cohort(write_cohort, tmp_path, n=3):
    csv = write_cohort(n)
    text = csv.read_text().splitlines()
    csv.write_text(
        "\n".join([text[0] + ",ga_weeks"] + [line + f",{22 + 6 * i}" for i, line in enumerate(text[1:])]) + "\n"
    )
    pred_dir = tmp_path / "predictions"
    for i in range(n):
        image, labels = synthetic_pair(seed=i)
        write_volume(output_paths(pred_dir, f"sub-{i:02d}")["mask"], (labels == 2).astype(np.uint8))
        write_volume(output_paths(pred_dir, f"sub-{i:02d}")["uncertainty"], np.full(image.shape, 0.1, np.float32))
    pd.DataFrame({"iFIND_id": ["sub-01"], "flagged_slices": ["1;3"]}).to_csv(pred_dir / "predictions.csv", index=False)
    return csv, pred_dir


def test_qc_case_gathers_stack_masks_uncertainty_and_flags(write_cohort, tmp_path):
    csv, pred_dir = _predicted_cohort(write_cohort, tmp_path)
    case = load_qc_case(csv, pred_dir, "sub-01", brain_labels=[2])
    assert case.image.shape == case.prediction.shape == case.truth.shape == case.uncertainty.shape
    assert case.flagged_slices == (1, 3)
    assert load_qc_case(csv, pred_dir, "sub-00").flagged_slices == ()
    with pytest.raises(KeyError, match="sub-99"):
        load_qc_case(csv, pred_dir, "sub-99")


def test_paper_figures_write_every_figure_and_the_table(write_cohort, tmp_path):
    csv, pred_dir = _predicted_cohort(write_cohort, tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame({"epoch": [0, 1], "brain_dice": [0.5, 0.7], "val_volume_dice": [0.4, 0.6]}).to_csv(run / "history.csv")
    metrics = _metrics(3).drop(columns="preset")
    joined = metrics_with_cohort(metrics, csv)
    assert list(joined["ga_band"].astype(str)) == ["18-24 w", "28-32 w", "32-36 w"]
    paths = paper_figures(run, csv, pred_dir, metrics, tmp_path / "figures", by="ga_band", brain_labels=[2], dpi=30)
    names = sorted(p.name for p in paths)
    for figure in ("dice_over_training", "example", "metric_boxes", "volume_agreement"):
        assert f"{figure}.png" in names and f"{figure}.pdf" in names
    assert "metrics_table.tex" in names
    assert all(p.stat().st_size > 100 for p in paths)
    with pytest.raises(ValueError, match="nothing to draw"):
        paper_figures(run, csv, pred_dir, metrics.assign(error="unreadable"), tmp_path / "none")


def test_cohort_description_and_views(write_cohort, tmp_path):
    csv = write_cohort(2, spacing=(0.8, 0.8, 4.0))
    (tmp_path / "cohort" / "images" / "sub-01.nii.gz").write_bytes(b"not a NIfTI file")
    table = describe_cohort(csv, brain_labels=[2], progress=False)
    first = table.iloc[0]
    _, labels = synthetic_pair(seed=0)
    assert (first["slices"], first["rows"], first["columns"]) == (5, 12, 10)
    assert first["slice_thickness_mm"] == 4.0 and first["orientation"] == orientation_code((1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert first["brain_volume_ml"] == pytest.approx((labels == 2).sum() * 0.8 * 0.8 * 4.0 / 1000)
    assert table.iloc[1]["error"] and "sub-01" in table.iloc[1]["error"]
    figure = cohort_views_figure(csv, stack_ids=["sub-00"], brain_labels=[2])
    assert len(figure.axes) == 3
    _written(figure, tmp_path / "views", "views")


def test_normalised_intensities_figure_has_a_panel_per_normalisation(tmp_path, write_cohort):
    from fetal_keras.figures.paper import normalised_intensities_figure

    real, simulated = write_cohort(2, folder="real"), write_cohort(2, folder="sim")
    paths = normalised_intensities_figure(real, simulated, tmp_path / "figures", dpi=30)
    assert [path.suffix for path in paths] == [".png", ".pdf"] and all(path.stat().st_size > 1000 for path in paths)


def test_real_dice_over_training_draws_the_monitored_curve_over_batches(tmp_path):
    run = tmp_path / "segmenter"
    run.mkdir()
    (run / "config.json").write_text('{"config": {"steps_per_epoch": 50}}')
    history = {"epoch": [0, 1, 2], "brain_dice": [0.5, 0.6, 0.7], "val_volume_dice": [0.6, float("nan"), 0.8]}
    pd.DataFrame(history | {"monitor_volume_dice": [0.4, float("nan"), 0.5]}).to_csv(run / "history.csv", index=False)
    png, pdf = real_dice_over_training_figure({"segmenter": run}, tmp_path / "figures")
    assert png.stat().st_size > 0 and pdf.stat().st_size > 0
    figure = plot_training_curves(pd.read_csv(run / "history.csv"), steps_per_epoch=50, monitor_label="real")
    (monitored,) = [line for line in figure.axes[0].lines if line.get_label() == "real"]
    assert list(monitored.get_xdata()) == [50, 150] and list(monitored.get_ydata()) == [0.4, 0.5]
    with pytest.raises(FileNotFoundError, match="history.csv"):
        real_dice_over_training_figure({"localiser": tmp_path}, tmp_path / "figures")
