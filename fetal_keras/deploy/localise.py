"""Localise, then segment: a coarse localiser finds the fetal head, a segmenter masks a crop around it.

The localiser (a slab model trained with ``task="localiser"``, about 3 mm in-plane, so one slab sees the whole field
of view) gives a coarse brain probability; its connected components are weighed by their evidence (summed
probability) among those of a plausible fetal brain volume, and the best one is the *focus*. The segmenter
(``task="segmenter"``) is then run on a crop around the focus at its own fine spacing (``PreprocessConfig.
crop_margin_mm``), and post-processing keeps the part of its mask that meets the focus rather than the largest.

Both choices first cut thin bridges: a mask that reaches from the head through the neck into the trunk, or along
the uterine wall, is one connected component, so components are found after an in-plane erosion of ``BRIDGE_MM``
(which a fetal brain, at least 40 mm across, survives) and the chosen one is grown back inside the mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from fetal_keras.data.preprocess import PreprocessConfig

# Fetal brain volume from 18 to 40 weeks is about 30-500 ml; a coarse mask of it may be smaller or larger.
PLAUSIBLE_HEAD_ML = (5.0, 900.0)
# In-plane radius of the erosion that cuts bridges between the brain and what touches it (see the module docstring).
BRIDGE_MM = 7.0


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


def _in_plane_radius(spacing_zyx_mm, radius_mm: float) -> list[int]:
    """An ITK kernel radius (x, y, z voxels) of ``radius_mm`` in-plane and none across slices."""
    return [int(round(radius_mm / spacing_zyx_mm[2])), int(round(radius_mm / spacing_zyx_mm[1])), 0]


def _bounding_box(mask: np.ndarray, pad: int = 2) -> tuple[slice, ...]:
    """The slices of ``mask``'s bounding box grown by ``pad`` voxels (within the array): a ring of background
    around the mask, so that erosions, components and hole filling on the box equal those on the whole array."""
    box = []
    for axis in range(mask.ndim):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(max(int(present[0]) - pad, 0), min(int(present[-1]) + pad + 1, mask.shape[axis])))
    return tuple(box)


def _components_without_bridges(mask: np.ndarray, spacing_zyx_mm, bridge_mm: float) -> np.ndarray:
    """Components of ``mask`` (int labels, 0 background) with thin bridges cut: the connected components of the
    mask eroded in-plane by ``bridge_mm``, each grown back over the mask voxels within a voxel more than that of it
    (the bridge's far side stays unlabelled). Without a spacing, or where the erosion leaves nothing (a mask too
    thin to erode), the connected components of the mask itself. Computed on the mask's bounding box (a crop of
    the stack's grid is most of deploy's post-processing time otherwise)."""
    components = np.zeros(mask.shape, np.uint32)
    if mask.any():
        box = _bounding_box(mask)
        components[box] = _components_in(mask[box], spacing_zyx_mm, bridge_mm)
    return components


def _components_in(mask: np.ndarray, spacing_zyx_mm, bridge_mm: float) -> np.ndarray:
    """:func:`_components_without_bridges` on an array that has a background ring (or the image edge) around it."""
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    radius = _in_plane_radius(spacing_zyx_mm, bridge_mm) if spacing_zyx_mm is not None else [0, 0, 0]
    if max(radius) > 0:
        eroded = sitk.BinaryErode(image, radius, sitk.sitkBall)
        if sitk.GetArrayViewFromImage(eroded).any():
            cores = sitk.ConnectedComponent(eroded)
            grown = sitk.GrayscaleDilate(cores, [r + 1 if r else 0 for r in radius], sitk.sitkBall)
            return sitk.GetArrayFromImage(grown) * (mask > 0)
    return sitk.GetArrayFromImage(sitk.ConnectedComponent(image))


def _filled(mask: np.ndarray, slice_holes: bool = False) -> np.ndarray:
    """``mask`` with its holes filled (uint8 0/1): those closed in 3D and, with ``slice_holes``, also those closed
    within a slice but open to a neighbouring slice (a bright ventricle the mask left out on a few slices)."""
    filled = mask.astype(np.uint8)
    if not filled.any():
        return filled
    box = _bounding_box(filled)
    crop = sitk.GetArrayFromImage(sitk.BinaryFillhole(sitk.GetImageFromArray(filled[box])))
    if slice_holes:
        for index, plane in enumerate(crop):
            if plane.any():
                crop[index] = sitk.GetArrayFromImage(sitk.BinaryFillhole(sitk.GetImageFromArray(plane)))
    filled[box] = crop
    return filled


def head_component(
    probability: np.ndarray,
    spacing_zyx_mm,
    plausible_ml: tuple[float, float] = PLAUSIBLE_HEAD_ML,
    bridge_mm: float = BRIDGE_MM,
) -> np.ndarray:
    """The most plausible head of a localiser's ``[z, y, x]`` brain probability, as a uint8 mask.

    Components of ``probability >= 0.5`` (after cutting bridges of up to ``bridge_mm``, see the module's docstring)
    are ranked by summed probability; those whose volume lies in ``plausible_ml`` come first (a tiny speck or a
    whole uterus is not a fetal brain). Empty if nothing is found.
    """
    mask = probability >= 0.5
    components = _components_without_bridges(mask, spacing_zyx_mm, bridge_mm)
    count = int(components.max())
    if count == 0:
        return np.zeros(probability.shape, np.uint8)
    labels = components.ravel()
    evidence = np.bincount(labels, weights=probability.ravel().astype(np.float64), minlength=count + 1)[1:]
    volume_ml = np.bincount(labels, minlength=count + 1)[1:] * float(np.prod(spacing_zyx_mm)) / 1000.0
    plausible = (volume_ml >= plausible_ml[0]) & (volume_ml <= plausible_ml[1])
    best = int(np.lexsort((evidence, plausible))[-1]) + 1
    return _filled(components == best)


def keep_component_at_focus(
    mask: np.ndarray,
    focus: np.ndarray,
    spacing_zyx_mm=None,
    bridge_mm: float = BRIDGE_MM,
    slice_holes: bool = False,
) -> np.ndarray:
    """The 3D connected component of ``mask`` that overlaps ``focus`` most (the largest if none does), holes
    filled (uint8 0/1; with ``slice_holes`` also each slice's). With ``spacing_zyx_mm``, bridges of up to
    ``bridge_mm`` are cut first (module docstring)."""
    if not mask.any():
        return mask.astype(np.uint8)
    components = _components_without_bridges(mask, spacing_zyx_mm, bridge_mm)
    labels = components.ravel()
    overlap = np.bincount(labels, weights=(focus.ravel() > 0).astype(np.float64), minlength=int(labels.max()) + 1)
    size = np.bincount(labels, minlength=len(overlap))
    overlap[0], size[0] = -1, -1
    best = int(np.argmax(overlap)) if overlap.max() > 0 else int(np.argmax(size))
    return _filled(components == best, slice_holes)
