"""Measurements of a predicted brain mask against its stack, for the QC score (``fetal_keras.deploy.stack_qc``).

Each function measures one way a real mask fails: an outline that does not lie on the brain's boundary, lobes or parts
joined to the brain, holes left on bright ventricles, mask outside the localiser's head, and brain probability
left outside the written mask. All work in-plane, slice by slice: slices are thick and each may be displaced.
Arrays are ``[z, y, x]``; spacings (x, y, z) in mm, as SimpleITK gives them.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from fetal_keras.data.preprocess import crop_region

# ``bright_rim_share`` compares, at each outline point, the intensity of a band inside the mask (extra-axial CSF
# under the skull, bright on fetal T2) with a band outside it (skull, scalp, uterine wall), in mm from the outline.
INSIDE_BAND_MM = (1.0, 6.0)
OUTSIDE_BAND_MM = (1.0, 6.0)
# Neighbourhood over which each band's intensity is averaged around an outline point (Gaussian sigma, mm).
LOCAL_SIGMA_MM = 3.0
# How much brighter (in the stack's 2nd-98th percentile range) the inside band must be than the outside one.
RIM_CONTRAST = 0.1


def in_plane_outline(mask: np.ndarray) -> np.ndarray:
    """The ``[z, y, x]`` mask's in-plane outline: its voxels with one of their 4 in-plane neighbours outside it (or
    outside the array)."""
    cross = np.zeros((3, 3, 3), bool)
    cross[1] = ndimage.generate_binary_structure(2, 1)
    return mask & ~ndimage.binary_erosion(mask, cross, border_value=0)


def bright_rim_share(image: np.ndarray, mask: np.ndarray, spacing_mm) -> float:
    """Share of the mask's in-plane outline that lies where a fetal T2 intracranial boundary looks like one: the
    band just inside the mask (extra-axial CSF) brighter than the band just outside it (skull, scalp, what touches
    the head). A mask that ends inside the brain, or runs into the fetal body, uterine wall or placenta, ends where
    no such step is. Manual masks of real stacks score about 0.1-0.5 (the skull is thin and the CSF rim narrow on
    many slices); masks that leak or fall short score lower. 0 for an empty mask."""
    mask = np.asarray(mask) > 0
    if not mask.any():
        return 0.0
    low, high = np.percentile(image, [2.0, 98.0])
    sampling = (float(spacing_mm[1]), float(spacing_mm[0]))
    reach_mm = max(INSIDE_BAND_MM[1], OUTSIDE_BAND_MM[1]) + 3 * LOCAL_SIGMA_MM
    _, rows, columns = crop_region(mask, spacing_mm[::-1], reach_mm, (1, 1, 1))
    box = (slice(None), rows, columns)
    mask = mask[box]
    outlines = in_plane_outline(mask)
    scaled = (np.asarray(image, np.float64)[box] - low) / max(high - low, 1e-6)
    sigma = (LOCAL_SIGMA_MM / sampling[0], LOCAL_SIGMA_MM / sampling[1])
    stepped = total = 0
    for index in np.flatnonzero(mask.any(axis=(1, 2))):
        inside = mask[index]
        inside_mm = ndimage.distance_transform_edt(inside, sampling=sampling)
        outside_mm = ndimage.distance_transform_edt(~inside, sampling=sampling)
        bands = (
            inside & (inside_mm >= INSIDE_BAND_MM[0]) & (inside_mm <= INSIDE_BAND_MM[1]),
            ~inside & (outside_mm >= OUTSIDE_BAND_MM[0]) & (outside_mm <= OUTSIDE_BAND_MM[1]),
        )
        outline = outlines[index]
        means = []
        for band in bands:
            weight = ndimage.gaussian_filter(band.astype(np.float64), sigma)[outline]
            weighted = ndimage.gaussian_filter(scaled[index] * band, sigma)[outline]
            means.append(np.where(weight > 1e-3, weighted / np.maximum(weight, 1e-3), np.nan))
        stepped += int(np.count_nonzero(means[0] > means[1] + RIM_CONTRAST))
        total += int(np.count_nonzero(outline))
    return stepped / max(total, 1)


def in_plane_solidity(mask: np.ndarray, spacing_mm) -> float:
    """The mask's area over its convex hull's, slice by slice, weighted by area: about 0.9-1 for a brain's slices,
    lower when parts of other structures hang on to it or it has lobes and bays. 1 for an empty mask."""
    mask = np.asarray(mask) > 0
    area = hull_area = 0.0
    for plane in mask:
        rows, columns = np.nonzero(plane)
        if len(rows) == 0:
            continue
        # The corners of every voxel, so that a one-voxel line still has an area.
        corners = np.concatenate([np.stack([rows + dr, columns + dc], axis=1) for dr in (0, 1) for dc in (0, 1)])
        try:
            hull = ConvexHull(corners).volume  # the area, for 2D points
        except QhullError:
            hull = float(len(rows))
        area += float(len(rows))
        hull_area += max(hull, float(len(rows)))
    return area / hull_area if hull_area else 1.0


def slice_hole_share(mask: np.ndarray) -> float:
    """Share of the mask's slice-filled area that is holes (closed in-plane, open to a neighbouring slice): a mask
    that left bright ventricles out. 0 when every slice is solid."""
    mask = np.asarray(mask) > 0
    filled_total = holes = 0
    for plane in mask:
        if not plane.any():
            continue
        filled = sitk.GetArrayFromImage(sitk.BinaryFillhole(sitk.GetImageFromArray(plane.astype(np.uint8)))) > 0
        filled_total += int(np.count_nonzero(filled))
        holes += int(np.count_nonzero(filled & ~plane))
    return holes / max(filled_total, 1)


def outside_head_share(mask: np.ndarray, head: np.ndarray) -> float:
    """Share of the mask's voxels outside the localiser's head: the segmenter marked surroundings of its crop."""
    mask = np.asarray(mask) > 0
    return float(np.count_nonzero(mask & ~(np.asarray(head) > 0)) / max(np.count_nonzero(mask), 1))


def dropped_share(probability: np.ndarray, mask: np.ndarray) -> float:
    """Share of the voxels the model called brain (probability >= 0.5) that post-processing left out of the mask:
    regions apart from the head that the model found as brain-like as the brain."""
    called = np.asarray(probability) >= 0.5
    return float(np.count_nonzero(called & ~(np.asarray(mask) > 0)) / max(np.count_nonzero(called), 1))
