"""Interactive slice browser for visual QC in Jupyter (ipywidgets slider over the slices of a stack).

The slice is shown as an ``ipywidgets.Image`` (a PNG redrawn when the slider moves), not inside an
``ipywidgets.Output`` widget: headless executors (nbclient, papermill) mimic Output widgets by sending their state
back to the kernel on the shell channel while the cell still runs, and that send can swallow the wake-up of the
cell's execute reply on the same socket, so the notebook stalls until a timeout (seen in this project's tests).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from fetal_keras.figures.plots import draw_slice


def slice_png(
    image: np.ndarray,
    index: int,
    spacing_mm: Sequence[float],
    prediction: np.ndarray | None = None,
    truth: np.ndarray | None = None,
    uncertainty: np.ndarray | None = None,
    flagged: Sequence[int] = (),
    dpi: int = 100,
) -> bytes:
    """Slice ``index`` of a ``[z, y, x]`` stack drawn as :func:`draw_slice` does, as PNG bytes."""
    figure = Figure(figsize=(5, 5))  # not pyplot: nothing is displayed or kept open
    draw_slice(figure.subplots(), image, index, spacing_mm, prediction, truth, uncertainty, flagged)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def slice_browser(
    image: np.ndarray,
    spacing_mm: Sequence[float],
    prediction: np.ndarray | None = None,
    truth: np.ndarray | None = None,
    uncertainty: np.ndarray | None = None,
    flagged: Sequence[int] = (),
):
    """A slider that steps through the slices of a stack with its masks outlined (for a Jupyter notebook).

    Args: as :func:`draw_slice`; ``flagged`` slices (QC flags of ``predictions.csv``) are titled in orange. It
    opens on the slice with the largest predicted brain area.

    Returns:
        The ``ipywidgets`` box (slider + image); display it as the last expression of a cell.
    """
    import ipywidgets

    start = int(np.argmax(prediction.reshape(len(prediction), -1).sum(axis=1))) if prediction is not None else 0
    slider = ipywidgets.IntSlider(value=start, min=0, max=len(image) - 1, description="slice", continuous_update=False)

    def png(index: int) -> bytes:
        return slice_png(image, index, spacing_mm, prediction, truth, uncertainty, flagged)

    picture = ipywidgets.Image(value=png(start), format="png")
    slider.observe(lambda change: setattr(picture, "value", png(change["new"])), names="value")
    return ipywidgets.VBox([slider, picture])
