"""The fetal head on a regular grid in the fetal frame: brain tissues, CSF, skull and scalp.

Fetal frame: millimetres, origin at the centre of the brain, axes as the ICBM template's physical (LPS) axes:
x towards the fetus's left, y posterior, z superior. Two anatomies (``HEAD_ANATOMIES``):

- ``icbm``: the adult ICBM maps scaled to the fetus's brain size, their folding smoothed away in proportion to
  immaturity (``HeadBiometry.folding_sigma_mm``).
- ``atlas``: a real fetal brain, the label map of a fetal brain atlas at the nearest age
  (``fetal_keras.simulate.atlas``), scaled by growth to the fetus's age and size, with its ventricles grown or shrunk
  and its extra-axial CSF redrawn (the atlas's brains have spina bifida: large ventricles, little CSF).

Either is warped by a random smooth (B-spline) deformation, so no two brains are alike.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from fetal_keras.choices import HEAD_ANATOMIES
from fetal_keras.simulate.atlas import TISSUE_TABLE, growth_factor, nearest_atlas_brain
from fetal_keras.simulate.growth import HeadBiometry, biparietal_diameter_mm
from fetal_keras.simulate.priors import load_brain_prior
from fetal_keras.simulate.tissues import PARENCHYMA, Tissue

# Atlas heads: how much the ventricles grow (> 0) or shrink (< 0), in mm, drawn uniformly: the atlas's spina bifida
# ventricles are larger than typical, so mostly shrunk.
ATLAS_VENTRICLE_CHANGE_MM = (-2.5, 1.0)


@dataclass(frozen=True)
class HeadModel:
    """Tissue labels of one fetal head, ``[z, y, x]`` uint8 ``Tissue`` values, on an axis-aligned fetal-frame grid.

    ``origin_mm`` is the (x, y, z) position of voxel [0, 0, 0]; ``spacing_mm`` is isotropic.
    """

    labels: np.ndarray
    origin_mm: np.ndarray
    spacing_mm: float
    biometry: HeadBiometry

    @property
    def brain_volume_ml(self) -> float:
        """Volume of the brain parenchyma and ventricles (the brain mask without extra-axial CSF) in millilitres."""
        return float(np.isin(self.labels, PARENCHYMA).sum() * self.spacing_mm**3 / 1000.0)

    def brain_extent_mm(self) -> np.ndarray:
        """Extent (x, y, z) of the brain parenchyma and ventricles in mm (the biometry's brain size)."""
        voxels = np.argwhere(np.isin(self.labels, PARENCHYMA))
        return (voxels.max(0) - voxels.min(0) + 1)[::-1] * self.spacing_mm


def _reference_grid(extent_mm: np.ndarray, spacing_mm: float) -> sitk.Image:
    size = np.ceil(extent_mm / spacing_mm).astype(int) + 1
    grid = sitk.Image([int(v) for v in size], sitk.sitkFloat32)
    grid.SetSpacing([spacing_mm] * 3)
    grid.SetOrigin([float(v) for v in -(size - 1) / 2 * spacing_mm])
    return grid


def _fetal_to_template(
    grid: sitk.Image, brain_size_mm, template_size_mm, template_centre_mm, rng: np.random.Generator
) -> sitk.Transform:
    """Map fetal-frame points to a template's space: random smooth warp, then scaling a brain of
    ``brain_size_mm`` to the template's brain (``template_size_mm`` around ``template_centre_mm``)."""
    scale = np.asarray(template_size_mm) / np.asarray(brain_size_mm)
    affine = sitk.AffineTransform(3)
    affine.SetMatrix([float(v) for v in np.diag(scale).ravel()])
    affine.SetTranslation([float(v) for v in template_centre_mm])
    warp = sitk.BSplineTransformInitializer(grid, [4, 4, 4], 3)
    amplitude_mm = 0.03 * float(np.mean(brain_size_mm))
    warp.SetParameters([float(v) for v in rng.normal(0.0, amplitude_mm, warp.GetNumberOfParameters())])
    return sitk.CompositeTransform([affine, warp])


def _distance(mask: sitk.Image, inside_positive: bool) -> np.ndarray:
    """Euclidean distance (mm) to the mask's boundary: positive inside or outside as asked, negative elsewhere."""
    distance = sitk.SignedMaurerDistanceMap(
        mask, insideIsPositive=inside_positive, squaredDistance=False, useImageSpacing=True
    )
    return sitk.GetArrayFromImage(distance)


def _as_image(array: np.ndarray, grid: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(grid)
    return image


def _large_components(mask: np.ndarray, grid: sitk.Image, min_fraction: float = 0.05) -> np.ndarray:
    """Keep the connected parts of ``mask`` holding at least ``min_fraction`` of its voxels (drops deep sulci)."""
    if not mask.any():
        return mask
    components = sitk.RelabelComponent(
        sitk.ConnectedComponent(_as_image(mask.astype(np.uint8), grid)), int(min_fraction * mask.sum())
    )
    return sitk.GetArrayFromImage(components) > 0


def _layers_outside(labels: np.ndarray, intracranial_depth: np.ndarray, biometry: HeadBiometry) -> None:
    """Label skull and scalp in place, outwards from the intracranial surface (``intracranial_depth`` < 0 outside)."""
    outside = -intracranial_depth
    labels[(outside > 0) & (outside <= biometry.skull_mm + biometry.scalp_mm)] = Tissue.SCALP
    labels[(outside > 0) & (outside <= biometry.skull_mm)] = Tissue.SKULL


def build_head(biometry: HeadBiometry, rng: np.random.Generator, spacing_mm: float, anatomy: str = "icbm") -> HeadModel:
    """Build one fetal head.

    Args:
        biometry: the fetus's head sizes (see ``growth.draw_head_biometry``).
        rng: the subject's random generator (deformation).
        spacing_mm: isotropic grid spacing in mm (0.6-1.2; finer is slower).
        anatomy: ``"icbm"`` or ``"atlas"`` (module docstring).

    Returns:
        The head's tissue labels in the fetal frame.
    """
    if anatomy == "atlas":
        return build_atlas_head(biometry, rng, spacing_mm)
    if anatomy != "icbm":
        raise ValueError(f"head anatomy must be one of {HEAD_ANATOMIES}, got {anatomy!r}.")
    layers_mm = biometry.extra_axial_csf_mm + biometry.skull_mm + biometry.scalp_mm
    grid = _reference_grid(np.asarray(biometry.brain_size_mm) * 1.12 + 2 * layers_mm + 6.0, spacing_mm)
    prior = load_brain_prior()
    transform = _fetal_to_template(grid, biometry.brain_size_mm, prior.size_mm, prior.centre_mm, rng)
    grey_image = sitk.Resample(prior.grey, grid, transform, sitk.sitkLinear, 0.0)
    white_image = sitk.Resample(prior.white, grid, transform, sitk.sitkLinear, 0.0)
    grey, white = sitk.GetArrayFromImage(grey_image), sitk.GetArrayFromImage(white_image)
    tissue_image = grey_image + white_image

    hull_image = sitk.BinaryFillhole(sitk.SmoothingRecursiveGaussian(tissue_image, 2.5) > 0.35)
    hull_depth = _distance(hull_image, inside_positive=True)
    hull = hull_depth > 0
    ventricles = _large_components(hull & (grey + white < 0.3) & (hull_depth > 0.12 * biometry.brain_size_mm[0]), grid)
    if biometry.ventricle_dilation_mm > 0 and ventricles.any():
        to_ventricles = _distance(_as_image(ventricles.astype(np.uint8), grid), inside_positive=False)
        ventricles |= (to_ventricles <= biometry.ventricle_dilation_mm) & (hull_depth > 3.0)

    folded = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(tissue_image, biometry.folding_sigma_mm))
    brain_image = sitk.BinaryFillhole(_as_image(((hull & (folded > 0.5)) | ventricles).astype(np.uint8), grid))
    brain = sitk.GetArrayFromImage(brain_image).astype(bool)
    ventricles &= brain
    brain_depth = _distance(brain_image, inside_positive=True)
    to_ventricles = _distance(_as_image(ventricles.astype(np.uint8), grid), inside_positive=False)

    labels = np.full(brain.shape, Tissue.AIR, dtype=np.uint8)
    outside_hull = -hull_depth
    labels[outside_hull <= layers_mm] = Tissue.SCALP
    labels[outside_hull <= biometry.extra_axial_csf_mm + biometry.skull_mm] = Tissue.SKULL
    labels[outside_hull <= biometry.extra_axial_csf_mm] = Tissue.EXTRA_AXIAL_CSF
    labels[brain] = Tissue.WHITE_MATTER
    parenchyma = brain & ~ventricles
    labels[parenchyma & (grey > white) & (brain_depth > 3 * biometry.cortex_mm)] = Tissue.DEEP_GREY
    labels[parenchyma & (to_ventricles <= biometry.germinal_matrix_mm)] = Tissue.GERMINAL_MATRIX
    labels[parenchyma & (brain_depth <= biometry.cortex_mm)] = Tissue.CORTEX
    labels[ventricles] = Tissue.VENTRICLE
    origin = np.asarray(grid.GetOrigin())
    return HeadModel(labels=labels, origin_mm=origin, spacing_mm=spacing_mm, biometry=biometry)


def build_atlas_head(biometry: HeadBiometry, rng: np.random.Generator, spacing_mm: float) -> HeadModel:
    """Build one fetal head around a real fetal brain (the ``atlas`` anatomy of the module's docstring).

    The atlas map of the nearest age is scaled by growth (``atlas.growth_factor``) and by this fetus's biparietal
    diameter relative to the median, with a little independent jitter per axis (head shape). Its ventricles grow
    or shrink by a random margin (``ATLAS_VENTRICLE_CHANGE_MM``), its extra-axial CSF is redrawn
    ``biometry.extra_axial_csf_mm`` wide around the parenchyma, and skull and scalp follow outside. The returned
    model's biometry holds the brain size that was built.
    """
    atlas = nearest_atlas_brain(biometry.ga_weeks, rng)
    individual = biometry.bpd_mm / biparietal_diameter_mm(biometry.ga_weeks)
    factor = growth_factor(biometry.ga_weeks, atlas.ga_weeks) * individual * rng.normal(1.0, 0.04, 3)
    brain_size = np.asarray(atlas.size_mm) * factor
    layers_mm = biometry.extra_axial_csf_mm + biometry.skull_mm + biometry.scalp_mm
    grid = _reference_grid(brain_size * 1.12 + 2 * layers_mm + 6.0, spacing_mm)
    transform = _fetal_to_template(grid, brain_size, atlas.size_mm, atlas.centre_mm, rng)
    atlas_labels = sitk.GetArrayFromImage(sitk.Resample(atlas.labels, grid, transform, sitk.sitkNearestNeighbor, 0))
    labels = TISSUE_TABLE[atlas_labels]
    labels[labels == Tissue.EXTRA_AXIAL_CSF] = Tissue.AIR  # redrawn below

    ventricles = labels == Tissue.VENTRICLE
    change_mm = float(rng.uniform(*ATLAS_VENTRICLE_CHANGE_MM))
    if ventricles.any():
        ventricle_image = _as_image(ventricles.astype(np.uint8), grid)
        if change_mm < 0:
            labels[ventricles & (_distance(ventricle_image, inside_positive=True) <= -change_mm)] = Tissue.WHITE_MATTER
        else:
            to_ventricles = _distance(ventricle_image, inside_positive=False)
            labels[(labels == Tissue.WHITE_MATTER) & (to_ventricles <= change_mm)] = Tissue.VENTRICLE
        to_ventricles = _distance(_as_image((labels == Tissue.VENTRICLE).astype(np.uint8), grid), inside_positive=False)
        germinal = (
            (labels == Tissue.WHITE_MATTER) & (to_ventricles > 0) & (to_ventricles <= biometry.germinal_matrix_mm)
        )
        labels[germinal] = Tissue.GERMINAL_MATRIX

    parenchyma_image = sitk.BinaryFillhole(_as_image((labels != Tissue.AIR).astype(np.uint8), grid))
    outside_parenchyma = -_distance(parenchyma_image, inside_positive=True)
    intracranial_image = sitk.BinaryFillhole(
        _as_image((outside_parenchyma <= biometry.extra_axial_csf_mm).astype(np.uint8), grid)
    )
    intracranial = sitk.GetArrayFromImage(intracranial_image).astype(bool)
    labels[intracranial & (labels == Tissue.AIR)] = Tissue.EXTRA_AXIAL_CSF
    _layers_outside(labels, _distance(intracranial_image, inside_positive=True), biometry)

    head = HeadModel(labels=labels, origin_mm=np.asarray(grid.GetOrigin()), spacing_mm=spacing_mm, biometry=biometry)
    built = tuple(float(v) for v in head.brain_extent_mm())
    return dataclasses.replace(head, biometry=dataclasses.replace(biometry, brain_size_mm=built))
