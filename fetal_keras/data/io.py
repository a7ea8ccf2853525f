"""Read stacks and segmentations with SimpleITK; write masks that carry exactly the stack's header.

Arrays are ``[z, y, x]`` as SimpleITK returns them: the first array axis is the third voxel axis of the file,
which for a 2D slice acquisition is the slice axis. Nothing is resampled or reoriented, whatever the direction
cosines say, so a mask written back lines up voxel for voxel with the stack it came from.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from fetal_keras.data.nifti1 import (
    NIFTI1_HEADER_BYTES,
    copy_spatial_fields,
    nonfinite_counts,
    read_nifti1_header,
    spacing_problem,
    truncation_problem,
)
from fetal_keras.files import atomic_output


class StackReadError(ValueError):
    """A stack or segmentation file exists but cannot be used (corrupt, wrong dimension, ...)."""


@dataclass(frozen=True)
class StackGeometry:
    """Voxel grid of a stack in world coordinates (millimetres), as SimpleITK reads it.

    ``size``, ``spacing_mm`` and ``origin_mm`` are in SimpleITK's (x, y, z) order; ``direction`` is the
    row-major 3 x 3 matrix of direction cosines. ``nifti1_header`` keeps the file's own header bytes so that
    outputs can copy them verbatim; ``metadata`` keeps SimpleITK's metadata dictionary.
    """

    size: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float]
    direction: tuple[float, ...]
    nifti1_header: bytes | None = field(default=None, repr=False, compare=False)
    metadata: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        """Array shape ``[z, y, x]`` of this grid."""
        return self.size[2], self.size[1], self.size[0]

    @property
    def slice_thickness_mm(self) -> float:
        """Spacing along the slice axis (the array's first axis), in mm."""
        return self.spacing_mm[2]

    def differences(
        self,
        other: StackGeometry,
        spacing_rtol: float = 1e-4,
        origin_atol_mm: float = 1e-3,
        direction_atol: float = 1e-4,
    ) -> list[str]:
        """Describe how ``other`` differs from this grid beyond the given tolerances (empty list: same grid).

        Args:
            other: the grid to compare with (e.g. a segmentation's).
            spacing_rtol: relative tolerance on each spacing.
            origin_atol_mm: absolute tolerance on each origin coordinate, in mm.
            direction_atol: absolute tolerance on each direction cosine.
        """
        found = []
        if self.size != other.size:
            found.append(f"size {other.size} != {self.size}")
        if not np.allclose(other.spacing_mm, self.spacing_mm, rtol=spacing_rtol, atol=0):
            found.append(f"spacing {_fmt(other.spacing_mm)} mm != {_fmt(self.spacing_mm)} mm")
        if not np.allclose(other.origin_mm, self.origin_mm, rtol=0, atol=origin_atol_mm):
            found.append(f"origin {_fmt(other.origin_mm)} mm != {_fmt(self.origin_mm)} mm")
        if not np.allclose(other.direction, self.direction, rtol=0, atol=direction_atol):
            found.append(f"direction {_fmt(other.direction)} != {_fmt(self.direction)}")
        return found

    def cropped(self, region: tuple[slice, slice, slice]) -> StackGeometry:
        """The grid of ``array[region]`` for an array on this grid (``region`` in ``[z, y, x]`` order, step 1)."""
        start_xyz = np.array([part.start for part in region[::-1]], dtype=float)
        size = tuple(int(part.stop - part.start) for part in region[::-1])
        offset = np.array(self.direction).reshape(3, 3) @ (start_xyz * np.array(self.spacing_mm))
        return StackGeometry(size, self.spacing_mm, tuple((np.array(self.origin_mm) + offset).tolist()), self.direction)

    def apply_to(self, image: sitk.Image) -> sitk.Image:
        """Set this grid's spacing, origin and direction on ``image`` (in place) and return it."""
        image.SetSpacing(self.spacing_mm)
        image.SetOrigin(self.origin_mm)
        image.SetDirection(self.direction)
        return image


@dataclass(frozen=True)
class Stack:
    """A stack's voxels as a ``[z, y, x]`` array in the file's own dtype, with its geometry and source path."""

    array: np.ndarray
    geometry: StackGeometry
    path: Path


def mask_image(mask: np.ndarray, spacing_mm) -> sitk.Image:
    """A ``[z, y, x]`` mask as a uint8 SimpleITK image with voxel sizes ``spacing_mm`` (x, y, z), for physical-space
    filters (distances in mm, shape statistics); origin and direction left at their defaults."""
    image = sitk.GetImageFromArray(np.asarray(mask).astype(np.uint8))
    image.SetSpacing(tuple(float(size) for size in spacing_mm))
    return image


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


def _geometry_of(reader_or_image, path: Path) -> StackGeometry:
    return StackGeometry(
        size=tuple(int(v) for v in reader_or_image.GetSize()),
        spacing_mm=tuple(reader_or_image.GetSpacing()),
        origin_mm=tuple(reader_or_image.GetOrigin()),
        direction=tuple(reader_or_image.GetDirection()),
        nifti1_header=read_nifti1_header(path),
        metadata={key: reader_or_image.GetMetaData(key) for key in reader_or_image.GetMetaDataKeys()},
    )


def _reader(path: Path) -> sitk.ImageFileReader:
    """An ImageFileReader whose header has been read and found to be a scalar 3D image."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist.")
    if path.is_dir():
        raise StackReadError(f"{path} is a folder, not an image file.")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise StackReadError(f"{path} cannot be read as an image: {_itk_reason(error)}") from None
    dimension = reader.GetDimension()
    size = tuple(reader.GetSize())
    if dimension == 4 and size[3] == 1:
        # A 4D file with one volume is a 3D stack; ITK keeps the singleton axis, we drop it below.
        pass
    elif dimension != 3:
        raise StackReadError(
            f"{path} is a {dimension}D image of size {size}; a stack must be a 3D volume of 2D slices."
        )
    if reader.GetNumberOfComponents() != 1:
        raise StackReadError(
            f"{path} has {reader.GetNumberOfComponents()} components per voxel (e.g. RGB or vector); "
            "a stack must be a scalar image."
        )
    header = read_nifti1_header(path)
    if header is not None:
        unusable = truncation_problem(path, header) or spacing_problem(header)
        if unusable:
            raise StackReadError(f"{path} cannot be used: {unusable}.")
        nan, infinite = nonfinite_counts(path, header)
        if nan or infinite:
            raise StackReadError(
                f"{path} holds {nan} NaN and {infinite} infinite voxel values (SimpleITK would silently read them "
                "as 0); fix or mask them before use."
            )
    return reader


def _itk_reason(error: RuntimeError) -> str:
    """The informative line of an ITK exception (they are many lines long and start with a source location)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith("Exception thrown")]
    reason = (useful or lines or ["unknown error"])[-1]
    for prefix in ("sitk::ERROR:", "itk::ERROR:", "Description:"):
        reason = reason.split(prefix, 1)[-1].strip()
    if reason.startswith("Unable to determine ImageIO reader"):
        return "no SimpleITK reader recognises its content (not a NIfTI or other medical image file?)"
    return reason


def _as_3d(image: sitk.Image) -> sitk.Image:
    if image.GetDimension() == 4:
        size = list(image.GetSize())
        return sitk.Extract(image, size[:3] + [0], [0, 0, 0, 0])
    return image


def read_geometry(path: str | Path) -> StackGeometry:
    """Read only the header of a 3D image file and return its grid.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        StackReadError: if it is not a readable scalar 3D image.
    """
    path = Path(path)
    reader = _reader(path)
    if reader.GetDimension() == 4:
        return _geometry_of(_as_3d(reader.Execute()), path)
    return _geometry_of(reader, path)


def read_stack(path: str | Path) -> Stack:
    """Read a 3D image file into a ``[z, y, x]`` array in its own dtype, with its geometry.

    Args:
        path: a NIfTI file (``.nii`` / ``.nii.gz``) or any 3D format SimpleITK reads.

    Returns:
        The stack; ``array.shape == geometry.shape_zyx``.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        StackReadError: if the file is corrupt or truncated, not an image, not 3D, or not scalar.
    """
    path = Path(path)
    reader = _reader(path)
    try:
        image = _as_3d(reader.Execute())
    except RuntimeError as error:
        raise StackReadError(f"{path} cannot be read (truncated or corrupt?): {_itk_reason(error)}") from None
    return Stack(array=sitk.GetArrayFromImage(image), geometry=_geometry_of(image, path), path=path)


def write_like(array: np.ndarray, geometry: StackGeometry, path: str | Path) -> Path:
    """Write a ``[z, y, x]`` array as an image on ``geometry``'s grid, atomically.

    For NIfTI-1 stacks the mask gets the stack's own geometry header fields byte for byte (see
    ``fetal_keras.data.nifti1``), so size, spacing, origin, direction and qform/sform codes read back
    identical. Other formats are written by SimpleITK with the same spacing, origin and direction.

    Args:
        array: voxel values, shape ``geometry.shape_zyx``; written in its own dtype.
        geometry: the grid of the stack the array belongs to.
        path: output file; ``.nii.gz`` or ``.nii`` for NIfTI.

    Returns:
        ``path``.

    Raises:
        ValueError: if the array's shape does not match the grid.
    """
    path = Path(path)
    if tuple(array.shape) != geometry.shape_zyx:
        raise ValueError(
            f"Cannot write {path}: array shape {tuple(array.shape)} [z, y, x] does not match the stack's "
            f"{geometry.shape_zyx}."
        )
    image = geometry.apply_to(sitk.GetImageFromArray(np.ascontiguousarray(array)))
    copy_header = geometry.nifti1_header is not None and path.name.endswith((".nii", ".nii.gz"))
    with atomic_output(path) as temporary:
        if copy_header:
            _write_with_stack_header(image, geometry, temporary)
        else:
            sitk.WriteImage(image, str(temporary), useCompression=True)
    return path


def _write_with_stack_header(image: sitk.Image, geometry: StackGeometry, path: Path) -> None:
    """Write ``image`` as NIfTI-1 at ``path`` carrying the geometry fields of ``geometry.nifti1_header``.

    The copied header must describe ``geometry`` (it would not if a caller replaced the spacing of a geometry
    read from a file); otherwise the file keeps SimpleITK's own header for ``geometry``.
    """
    uncompressed = path.with_name(path.name.removesuffix(".gz").removesuffix(".nii") + ".raw.nii")
    try:
        sitk.WriteImage(image, str(uncompressed), useCompression=False)
        written_header = uncompressed.read_bytes()[:NIFTI1_HEADER_BYTES]
        copy_spatial_fields(geometry.nifti1_header, uncompressed)
        if read_geometry(uncompressed).differences(geometry):
            with open(uncompressed, "r+b") as stream:
                stream.write(written_header)
        if path.name.endswith(".gz"):
            with open(uncompressed, "rb") as source, gzip.open(path, "wb", compresslevel=6) as target:
                shutil.copyfileobj(source, target)
        else:
            uncompressed.replace(path)
    finally:
        uncompressed.unlink(missing_ok=True)


def write_mask(mask: np.ndarray, geometry: StackGeometry, path: str | Path) -> Path:
    """Write a binary brain mask as uint8 NIfTI (0 = background, 1 = brain) with the stack's exact header.

    Args:
        mask: ``[z, y, x]`` array of 0/1 or booleans, shape ``geometry.shape_zyx``.
        geometry: the grid of the stack the mask belongs to.
        path: output file, normally ``<id>_mask.nii.gz``.

    Returns:
        ``path``.

    Raises:
        ValueError: if the shape does not match or the mask holds values other than 0 and 1.
    """
    values = np.unique(mask)
    if not np.isin(values, (0, 1)).all():
        raise ValueError(f"Cannot write {path}: a mask must hold only 0 and 1, found values {values[:10].tolist()}.")
    return write_like(mask.astype(np.uint8), geometry, path)
