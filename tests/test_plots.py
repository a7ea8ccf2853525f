import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from conftest import REAL_DATA

from fetal_keras.figures.paper import simulated_vs_real_figure
from fetal_keras.figures.plots import intensity_window, show_orthogonal_views


def test_orthogonal_views_use_slice_thickness_as_pixel_height():
    image = np.random.default_rng(0).normal(size=(10, 32, 24))
    mask = np.zeros(image.shape, np.uint8)
    mask[3:8, 10:20, 8:16] = 1
    _, axes = plt.subplots(1, 3)
    figure = show_orthogonal_views(image, (1.0, 1.0, 4.0), mask, axes, title="t")
    assert figure is axes[0].figure
    assert [ax.get_aspect() for ax in axes] == [1.0, 4.0, 4.0]
    assert axes[0].get_xlabel() == "slice 5"  # centred on the mask
    plt.close(figure)


def test_intensity_window_ignores_a_few_bright_voxels():
    image = np.concatenate([np.linspace(0, 100, 10_000), [1e6]])
    low, high = intensity_window(image)
    assert low < 2 and 99 < high < 101


@pytest.mark.slow
def test_simulated_vs_real_figure_writes_png_and_pdf(tmp_path):
    real = sorted(REAL_DATA.glob("*.nii.gz"))[:1]
    paths = simulated_vs_real_figure(tmp_path, real, ages_weeks=(25.0,), preset="small", dpi=30)
    assert [p.name for p in paths] == ["simulated_vs_real.png", "simulated_vs_real.pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_slice_browser_shows_a_png_per_slice_and_follows_the_slider():
    from fetal_keras.figures.browser import slice_browser

    rng = np.random.default_rng(0)
    image = rng.normal(size=(5, 32, 40))
    prediction = np.zeros(image.shape, np.uint8)
    prediction[3, 10:20, 10:20] = 1
    box = slice_browser(image, (1.0, 1.0, 3.0), prediction, prediction)
    slider, picture = box.children
    assert slider.value == 3 and slider.max == 4  # opens on the slice with the most predicted brain
    first = picture.value
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    slider.value = 1
    assert picture.value[:8] == b"\x89PNG\r\n\x1a\n" and picture.value != first
