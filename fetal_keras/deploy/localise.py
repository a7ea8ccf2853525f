"""Localise, then segment: a coarse localiser finds the fetal head, a segmenter masks a crop around it.

The localiser (a slab model trained with ``task="localiser"``, about 3 mm in-plane, so one slab sees the whole field
of view) gives a coarse brain probability; its connected components are weighed by their evidence (summed
probability) among those of a plausible fetal brain volume, and the best one is the *focus*. The segmenter
(``task="segmenter"``) is then run on a crop around the focus at its own fine spacing (``PreprocessConfig.
crop_margin_mm``), and post-processing keeps the part of its mask that meets the focus rather than the largest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from fetal_keras.data.preprocess import PreprocessConfig

# Fetal brain volume from 18 to 40 weeks is about 30-500 ml; a coarse mask of it may be smaller or larger.
PLAUSIBLE_HEAD_ML = (5.0, 900.0)


@dataclass(frozen=True)
class LocalisedSegmenter:
    """A localiser and a segmenter deployed together (see the module's docstring).

    Attributes:
        localiser: the localiser's predictor (a Keras model or ``SavedModelPredictor``).
        localiser_preprocess: the preprocessing the localiser was trained with.
        segmenter: the segmenter's predictor; its preprocessing is passed beside the pair, as for a single model.
        description: what was loaded, for ``predictions.csv``.
    """

    localiser: object
    localiser_preprocess: PreprocessConfig
    segmenter: object
    description: str = ""


def head_component(
    probability: np.ndarray, spacing_zyx_mm, plausible_ml: tuple[float, float] = PLAUSIBLE_HEAD_ML
) -> np.ndarray:
    """The most plausible head of a localiser's ``[z, y, x]`` brain probability, as a uint8 mask.

    Components of ``probability >= 0.5`` are ranked by summed probability; those whose volume lies in
    ``plausible_ml`` come first (a tiny speck or a whole uterus is not a fetal brain). Empty if nothing is found.
    """
    components = sitk.GetArrayFromImage(
        sitk.ConnectedComponent(sitk.GetImageFromArray((probability >= 0.5).astype(np.uint8)))
    )
    count = int(components.max())
    if count == 0:
        return np.zeros(probability.shape, np.uint8)
    labels = components.ravel()
    evidence = np.bincount(labels, weights=probability.ravel().astype(np.float64), minlength=count + 1)[1:]
    volume_ml = np.bincount(labels, minlength=count + 1)[1:] * float(np.prod(spacing_zyx_mm)) / 1000.0
    plausible = (volume_ml >= plausible_ml[0]) & (volume_ml <= plausible_ml[1])
    best = int(np.lexsort((evidence, plausible))[-1]) + 1
    return (components == best).astype(np.uint8)


def keep_component_at_focus(mask: np.ndarray, focus: np.ndarray) -> np.ndarray:
    """The 3D connected component of ``mask`` that overlaps ``focus`` most (the largest if none does), holes
    filled (uint8 0/1)."""
    if not mask.any():
        return mask.astype(np.uint8)
    components = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8))))
    labels = components.ravel()
    overlap = np.bincount(labels, weights=(focus.ravel() > 0).astype(np.float64), minlength=int(labels.max()) + 1)
    size = np.bincount(labels, minlength=len(overlap))
    overlap[0], size[0] = -1, -1
    best = int(np.argmax(overlap)) if overlap.max() > 0 else int(np.argmax(size))
    kept = sitk.GetImageFromArray((components == best).astype(np.uint8))
    return sitk.GetArrayFromImage(sitk.BinaryFillhole(kept)).astype(np.uint8)
