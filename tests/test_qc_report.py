"""The visual QC report of ``predict --report``: order, self-containment, and rendering in a real headless browser."""

import re
import shutil
import subprocess

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from conftest import write_volume

from fetal_keras.figures.qc_report import mosaic_box, mosaic_slices, write_qc_report

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def _predictions(tmp_path, write_cohort) -> tuple:
    """A predictions.csv as ``predict`` writes it for three segmented stacks (one passed, two flagged) and one
    that failed; the masks are the stacks' segmentations."""
    csv = write_cohort(3)
    rows = []
    for stack_id, score, flag in (("sub-00", 0.1, False), ("sub-01", 0.5, True), ("sub-02", 0.9, True)):
        image = csv.parent / "images" / f"{stack_id}.nii.gz"
        mask = csv.parent / "segmentations" / f"{stack_id}.nii.gz"
        rows.append(
            {
                "iFIND_id": stack_id,
                "input": str(image),
                "mask": str(mask),
                "uncertainty": "",
                "brain_volume_ml": 12.5,
                "slices": 5,
                "flagged_slices": "2" if flag else "",
                "qc_score": score,
                "qc_flag": flag,
                "qc_reasons": "large_volume;holes" if flag else "",
                "model": "a <tiny> model",
                "error": "",
            }
        )
    rows.append({"iFIND_id": "sub-03", "input": str(tmp_path / "gone.nii.gz"), "error": "gone.nii.gz does not exist."})
    predictions = tmp_path / "out" / "predictions.csv"
    predictions.parent.mkdir()
    pd.DataFrame(rows).to_csv(predictions, index=False)
    return predictions


def test_the_report_lists_flagged_masks_first_embeds_every_picture_and_needs_nothing_else(tmp_path, write_cohort):
    predictions = _predictions(tmp_path, write_cohort)
    page = write_qc_report(predictions).read_text()
    assert re.findall(r'<section class="stack[^"]*" id="([^"]+)"', page) == ["sub-02", "sub-01", "sub-00", "sub-03"]
    assert page.count('src="data:image/png;base64,') == 3  # the failed stack has its reason, no picture
    assert all(link.startswith("data:") for link in re.findall(r'(?:src|href)="([^"]*)"', page))  # self-contained
    assert "gone.nii.gz does not exist." in page and "large_volume, holes" in page
    assert "a &lt;tiny&gt; model" in page  # text from the table is escaped


def test_the_report_shows_a_stack_whose_files_are_gone_without_failing(tmp_path, write_cohort):
    predictions = _predictions(tmp_path, write_cohort)
    (tmp_path / "cohort" / "segmentations" / "sub-00.nii.gz").unlink()
    page = write_qc_report(predictions, tmp_path / "elsewhere.html").read_text()
    assert page.count('src="data:image/png;base64,') == 2 and "No picture:" in page


def test_the_mosaic_covers_the_mask_and_zooms_on_it():
    mask = np.zeros((30, 100, 80), np.uint8)
    mask[5:25, 40:60, 30:50] = 1
    slices = mosaic_slices(mask)
    assert slices[0] == 5 and slices[-1] == 24 and len(slices) == 12
    assert mosaic_slices(np.zeros((4, 8, 8), np.uint8)) == [0, 1, 2, 3]
    rows, columns = mosaic_box(mask, (2.0, 1.0, 3.0), margin_mm=10.0)  # x 2 mm, y 1 mm
    assert (rows.start, rows.stop, columns.start, columns.stop) == (30, 70, 25, 55)


def test_the_report_renders_in_a_headless_browser(tmp_path, write_cohort):
    """Chromium opens the page from the file (no server, no network): the stacks are listed in order and the
    embedded pictures are drawn (the masks' red outlines are on the screenshot)."""
    browser = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if browser is None:
        pytest.fail("No Chromium or Chrome found: install one (Debian: apt-get install chromium; .ci/run does).")
    predictions = _predictions(tmp_path, write_cohort)
    for stack in ("sub-00", "sub-01", "sub-02"):  # brains large enough to see: a 40 x 40 stack with a 20-pixel box
        image = np.full((5, 40, 40), 100.0, np.float32)
        image[:, 10:30, 10:30] = 300.0
        write_volume(tmp_path / "cohort" / "images" / f"{stack}.nii.gz", image)
        write_volume(tmp_path / "cohort" / "segmentations" / f"{stack}.nii.gz", (image > 200).astype(np.uint8))
    page = write_qc_report(predictions)
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert re.findall(r'id="(sub-0\d)"', dom) == ["sub-02", "sub-01", "sub-00", "sub-03"]
    screenshot = tmp_path / "page.png"
    subprocess.run(
        [*common, "--hide-scrollbars", "--window-size=1200,1400", f"--screenshot={screenshot}", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    pixels = matplotlib.image.imread(screenshot)[..., :3]
    red = (pixels[..., 0] > 0.9) & (pixels[..., 1] < 0.2) & (pixels[..., 2] < 0.2)  # not the orange of the badges
    assert pixels.std() > 0.05 and red.sum() > 50, "the page or its pictures were not drawn"
