"""The adult ICBM 2009a symmetric grey/white-matter probability maps shipped inside nilearn, as a brain shape prior.

The files are read from nilearn's installed package data with SimpleITK (nilearn itself is not imported, and
nothing is downloaded). They are adult brains: ``head`` scales them to fetal size and smooths their folding.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

_FILES = {
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
# The medulla below this level (adult mm, MNI z) is outside a fetal brain mask, which stops near the foramen magnum.
_LOWEST_BRAIN_Z_MM = -50.0


@dataclass(frozen=True)
class BrainPrior:
    """Adult tissue probability maps (0-1, float32) and the brain's centre and size in their physical space (mm)."""

    grey: sitk.Image
    white: sitk.Image
    centre_mm: tuple[float, float, float]
    size_mm: tuple[float, float, float]


def _nilearn_data_folder() -> Path:
    spec = importlib.util.find_spec("nilearn")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "The brain shape prior comes from the ICBM 2009a maps shipped with nilearn, which is not installed: "
            "pip install -r requirements.txt"
        )
    return Path(spec.origin).parent / "datasets" / "data"


@functools.lru_cache(maxsize=1)
def load_brain_prior() -> BrainPrior:
    """Load (once per process) the ICBM 2009a grey and white matter maps and measure the brain they hold."""
    folder = _nilearn_data_folder()
    maps = {}
    for name, file_name in _FILES.items():
        path = folder / file_name
        if not path.is_file():
            raise FileNotFoundError(f"ICBM 2009a {name} map not found at {path}; reinstall nilearn.")
        maps[name] = sitk.ReadImage(str(path), sitk.sitkFloat32) / 255.0
    z_index = max(
        int(np.ceil(maps["gm"].TransformPhysicalPointToContinuousIndex((0.0, 0.0, _LOWEST_BRAIN_Z_MM))[2])), 0
    )
    for name, image in maps.items():
        array = sitk.GetArrayFromImage(image)
        array[:z_index] = 0.0
        maps[name] = sitk.GetImageFromArray(array)
        maps[name].CopyInformation(image)
    brain = (sitk.GetArrayViewFromImage(maps["gm"]) + sitk.GetArrayViewFromImage(maps["wm"])) > 0.5
    corners = np.argwhere(brain)
    physical = np.array(
        [
            maps["gm"].TransformIndexToPhysicalPoint([int(v) for v in corner[::-1]])
            for corner in (corners.min(0), corners.max(0))
        ]
    )
    low, high = physical.min(0), physical.max(0)
    return BrainPrior(
        grey=maps["gm"],
        white=maps["wm"],
        centre_mm=tuple(float(v) for v in (low + high) / 2),
        size_mm=tuple(float(v) for v in high - low + 1.0),
    )
