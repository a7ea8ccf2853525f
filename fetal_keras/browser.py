"""Interactive slice browser for visual QC in Jupyter (ipywidgets slider over the slices of a stack)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from fetal_keras.plots import draw_slice


def slice_browser(
    image: np.ndarray,
    spacing_mm: Sequence[float],
    prediction: np.ndarray | None = None,
    truth: np.ndarray | None = None,
    uncertainty: np.ndarray | None = None,
    flagged: Sequence[int] = (),
):
    """A slider that steps through the slices of a stack with its masks outlined (for a Jupyter notebook).

    Args: as :func:`draw_slice`; ``flagged`` slices (QC flags of ``predictions.csv``) are titled in orange.

    Returns:
        The ``ipywidgets`` box (slider + plot); display it as the last expression of a cell.
    """
    import ipywidgets

    output = ipywidgets.Output()
    start = int(np.argmax(prediction.reshape(len(prediction), -1).sum(axis=1))) if prediction is not None else 0
    slider = ipywidgets.IntSlider(value=start, min=0, max=len(image) - 1, description="slice", continuous_update=False)

    def show(index: int) -> None:
        with output:
            output.clear_output(wait=True)
            figure, ax = plt.subplots(figsize=(5, 5))
            draw_slice(ax, image, index, spacing_mm, prediction, truth, uncertainty, flagged)
            plt.show()
            plt.close(figure)

    slider.observe(lambda change: show(change["new"]), names="value")
    show(start)
    return ipywidgets.VBox([slider, output])
