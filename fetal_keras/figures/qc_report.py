"""A visual QC report of a ``predict`` run: one self-contained HTML page (``qc_report.html``, images embedded, no
server, no network) with every stack's slices and mask outline, sorted so that the masks most likely wrong come
first (``fetal-keras predict --report``), as fMRIPrep's and MRIQC's reports give their users."""

from __future__ import annotations

import base64
import datetime
import html
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from fetal_keras.data.io import read_stack
from fetal_keras.data.preprocess import crop_region
from fetal_keras.figures.plots import draw_slice, intensity_window, show_orthogonal_views
from fetal_keras.files import atomic_output

REPORT_FILE = "qc_report.html"
MOSAIC_SLICES = 12
MOSAIC_COLUMNS = 6
MOSAIC_MARGIN_MM = 30.0

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
.stack { border: 1px solid #ccc; border-radius: 6px; padding: 0.6em 1em; margin: 1em 0; }
.stack.flagged { border: 3px solid #d9480f; }
.stack h2 { font-size: 1.1em; margin: 0.2em 0; }
.badge { display: inline-block; padding: 0.1em 0.5em; border-radius: 4px; color: white; font-weight: bold; }
.badge.flagged { background: #d9480f; } .badge.passed { background: #2b8a3e; } .badge.failed { background: #555; }
.facts { margin: 0.3em 0; } img { max-width: 100%; display: block; margin: 0.4em 0; }
table.summary { border-collapse: collapse; } table.summary td, table.summary th { padding: 0.2em 0.8em; border-bottom: 1px solid #ddd; text-align: left; }
"""


def report_order(table: pd.DataFrame) -> pd.DataFrame:
    """The stacks as the report lists them: flagged masks first, then the others, each by QC score (highest, i.e.
    most likely wrong, first; ties by id); stacks that failed to segment last. ``qc_flag`` is boolean and
    ``error`` empty for the stacks that were segmented, as :func:`write_qc_report` reads them."""
    done = table[table["error"] == ""]
    done = done.sort_values(["qc_flag", "qc_score", "iFIND_id"], ascending=[False, False, True], kind="stable")
    failed = table[table["error"] != ""].sort_values("iFIND_id", kind="stable")
    return pd.concat([done, failed])


def mosaic_slices(mask: np.ndarray, count: int = MOSAIC_SLICES) -> list[int]:
    """Up to ``count`` slice indices spread evenly over the slices the mask covers (over the whole stack when the
    mask is empty), first and last included."""
    covered = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    first, last = (int(covered[0]), int(covered[-1])) if covered.size else (0, mask.shape[0] - 1)
    return sorted({int(round(index)) for index in np.linspace(first, last, min(count, last - first + 1))})


def mosaic_box(
    mask: np.ndarray, spacing_mm: Sequence[float], margin_mm: float = MOSAIC_MARGIN_MM
) -> tuple[slice, slice]:
    """In-plane ``(rows, columns)`` slices of the mask's bounding box over all slices grown by ``margin_mm``
    (spacing in SimpleITK's x, y, z order; ``data.preprocess.crop_region``, as a segmenter's crop), so that the
    mosaic shows the outline's detail and the tissue around it; the whole slice when the mask is empty."""
    if not mask.any():
        return slice(None), slice(None)
    _, rows, columns = crop_region(mask, spacing_mm[::-1], margin_mm, (1, 1, 1))
    return rows, columns


def stack_mosaic_png(
    image: np.ndarray,
    spacing_mm: Sequence[float],
    mask: np.ndarray,
    uncertainty: np.ndarray | None = None,
    flagged: Sequence[int] = (),
    dpi: int = 72,
) -> bytes:
    """PNG of a stack's slices spread over the mask (:func:`mosaic_slices`), zoomed on it (:func:`mosaic_box`), with
    the mask outlined in red (and the TTA uncertainty overlaid when given), then the whole middle slice and the two
    through-plane reformats through the mask's centre."""
    slices = mosaic_slices(mask)
    box = (slice(None), *mosaic_box(mask, spacing_mm))
    zoomed_uncertainty = None if uncertainty is None else uncertainty[box]
    rows = -(-len(slices) // MOSAIC_COLUMNS)
    aspect = spacing_mm[1] / spacing_mm[0]
    figure = Figure(figsize=(2 * MOSAIC_COLUMNS, 2 * rows * aspect + 3.2))
    grid = figure.add_gridspec(rows + 1, MOSAIC_COLUMNS, height_ratios=[2 * aspect] * rows + [3.2])
    window = intensity_window(image)
    for position, index in enumerate(slices):
        ax = figure.add_subplot(grid[position // MOSAIC_COLUMNS, position % MOSAIC_COLUMNS])
        draw_slice(ax, image[box], index, spacing_mm, mask[box], None, zoomed_uncertainty, flagged, window, fontsize=8)
    views = [figure.add_subplot(grid[rows, 2 * k : 2 * k + 2]) for k in range(3)]
    show_orthogonal_views(image, spacing_mm, mask, axes=views)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def write_qc_report(predictions_csv: str | Path, out_html: str | Path | None = None, title: str | None = None) -> Path:
    """Write the HTML report of a ``predictions.csv`` (default: ``qc_report.html`` beside it); return its path.

    Paths in the table are read as written by ``predict`` (relative to the working folder) or, failing that,
    relative to the table's folder. A stack whose files cannot be read any more gets its row and the reason,
    not a picture.
    """
    predictions_csv = Path(predictions_csv)
    out_html = Path(out_html) if out_html else predictions_csv.with_name(REPORT_FILE)
    text_columns = ("input", "mask", "uncertainty", "error", "qc_reasons", "flagged_slices", "model")
    table = pd.read_csv(predictions_csv, dtype=dict.fromkeys(text_columns, str))
    table = table.fillna({"error": "", "qc_reasons": "", "flagged_slices": "", "uncertainty": ""})
    table["qc_flag"] = table["qc_flag"].astype(str).str.lower().isin(("true", "1"))  # failed stacks: empty, False
    table = report_order(table)
    sections = [_stack_section(row, predictions_csv.parent) for _, row in table.iterrows()]
    page = _page(title or f"fetal_keras QC report: {predictions_csv.parent.name}", table, sections)
    with atomic_output(out_html) as temporary:
        temporary.write_text(page, encoding="utf-8")
    return out_html


def _resolved(path: str, folder: Path) -> Path:
    candidate = Path(path)
    return candidate if candidate.exists() or candidate.is_absolute() else folder / candidate


def _stack_section(row: pd.Series, folder: Path) -> str:
    stack_id = html.escape(str(row["iFIND_id"]))
    if row["error"]:
        return (
            f'<section class="stack failed" id="{stack_id}"><h2>{stack_id} <span class="badge failed">not segmented'
            f'</span></h2><p class="facts">{html.escape(str(row["input"]))}: {html.escape(row["error"])}</p></section>'
        )
    flagged = bool(row["qc_flag"])
    reasons = ", ".join(row["qc_reasons"].split(";")) if row["qc_reasons"] else "none"
    facts = (
        f"QC score {float(row['qc_score']):.2f}; reasons: {html.escape(reasons)}; brain volume "
        f"{float(row['brain_volume_ml']):.1f} ml; {int(row['slices'])} slices"
        + (
            f"; slices flagged by TTA uncertainty: {html.escape(row['flagged_slices'])}"
            if row["flagged_slices"]
            else ""
        )
    )
    try:
        picture = _picture(row, folder)
    except (OSError, ValueError) as error:
        picture = f"<p>No picture: {html.escape(str(error))}</p>"
    badge = '<span class="badge flagged">QC flag</span>' if flagged else '<span class="badge passed">passed</span>'
    return (
        f'<section class="stack{" flagged" if flagged else ""}" id="{stack_id}"><h2>{stack_id} {badge}</h2>'
        f'<p class="facts">{facts}</p><p class="facts">{html.escape(str(row["input"]))}</p>{picture}</section>'
    )


def _picture(row: pd.Series, folder: Path) -> str:
    stack = read_stack(_resolved(str(row["input"]), folder))
    mask = (read_stack(_resolved(str(row["mask"]), folder)).array > 0).astype(np.uint8)
    if mask.shape != stack.array.shape:
        raise ValueError(f"the mask's grid {mask.shape} is not the stack's {stack.array.shape}")
    uncertainty = read_stack(_resolved(row["uncertainty"], folder)).array if row["uncertainty"] else None
    flagged = [int(index) for index in row["flagged_slices"].split(";") if index]
    png = stack_mosaic_png(
        stack.array.astype(np.float32), stack.geometry.spacing_mm, mask, uncertainty, flagged, dpi=90
    )
    alt = f"slices of {row['iFIND_id']} with the mask outlined in red, and its through-plane reformats"
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _page(title: str, table: pd.DataFrame, sections: list[str]) -> str:
    done = table[table["error"] == ""]
    flagged = int(done["qc_flag"].sum())
    model = html.escape(str(done["model"].iloc[0])) if len(done) else ""
    created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    summary = (
        '<table class="summary"><tr><th>stacks</th><th>segmented</th><th>flagged</th><th>failed</th></tr>'
        f"<tr><td>{len(table)}</td><td>{len(done)}</td><td>{flagged}</td><td>{len(table) - len(done)}</td></tr>"
        "</table>"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>Model: {model}<br>Written {created} by fetal_keras. Flagged masks first, then by QC score (highest: "
        "most likely wrong). Red: the mask's outline; heat: TTA uncertainty (with <code>--tta</code>).</p>"
        f"{summary}{''.join(sections)}</body></html>\n"
    )
