"""Raw NIfTI-1 access for what SimpleITK hides or cannot do: exact header copies, truncation, zero spacing,
non-finite values.

Copying the header: SimpleITK recomputes the qform quaternion and sform rows from the direction matrix when it writes, and that
float32 round trip is not exact for oblique directions (about 3e-8 of difference in the direction cosines),
nor does it keep the stack's qform/sform codes. Slice-to-volume reconstruction tools (NiftyMIC, NeSVoR,
SVRTK) compare mask and stack headers, so the mask must carry the stack's own bytes: the pixel data is
written by SimpleITK, only these header fields are copied.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

NIFTI1_HEADER_BYTES = 348

# (byte offset, numpy dtype, count) of the NIfTI-1 fields that define voxel-to-world geometry.
_SPATIAL_FIELDS = {
    "dim_info": (39, "u1", 1),
    "pixdim": (76, "f4", 8),  # pixdim[0] is qfac, the handedness of the qform
    "xyzt_units": (123, "u1", 1),
    "qform_code": (252, "i2", 1),
    "sform_code": (254, "i2", 1),
    "quatern_and_offset": (256, "f4", 6),
    "srow": (280, "f4", 12),
}


def _open(path: Path, mode: str):
    return gzip.open(path, mode) if path.name.endswith(".gz") else open(path, mode)


def _byte_order(header: bytes) -> str | None:
    """Return '<' or '>' for a NIfTI-1 header, or None when ``header`` is not NIfTI-1."""
    if len(header) < NIFTI1_HEADER_BYTES or header[344:347] not in (b"n+1", b"ni1"):
        return None
    for order in "<>":
        if np.frombuffer(header, dtype=f"{order}i4", count=1)[0] == NIFTI1_HEADER_BYTES:
            return order
    return None


def read_nifti1_header(path: str | Path) -> bytes | None:
    """Return the 348-byte NIfTI-1 header of ``path``, or None for any other format (NIfTI-2, MHA, NRRD...)."""
    path = Path(path)
    if not path.name.endswith((".nii", ".nii.gz")):
        return None
    try:
        with _open(path, "rb") as stream:
            header = stream.read(NIFTI1_HEADER_BYTES)
    except (OSError, EOFError):
        return None
    return header if _byte_order(header) else None


def copy_spatial_fields(source_header: bytes, target_path: str | Path) -> None:
    """Overwrite the geometry fields of the NIfTI-1 file ``target_path`` with those of ``source_header``.

    Args:
        source_header: the 348-byte header of the stack whose geometry the target must carry.
        target_path: an uncompressed ``.nii`` file (rewritten in place).

    Raises:
        ValueError: if either header is not NIfTI-1.
    """
    target_path = Path(target_path)
    source_order = _byte_order(source_header)
    with open(target_path, "r+b") as stream:
        target_header = bytearray(stream.read(NIFTI1_HEADER_BYTES))
        target_order = _byte_order(bytes(target_header))
        if source_order is None or target_order is None:
            raise ValueError(f"Cannot copy NIfTI-1 geometry onto {target_path}: not a NIfTI-1 header.")
        for offset, dtype, count in _SPATIAL_FIELDS.values():
            values = np.frombuffer(source_header, dtype=f"{source_order}{dtype}", count=count, offset=offset)
            encoded = values.astype(f"{target_order}{dtype}").tobytes()
            target_header[offset : offset + len(encoded)] = encoded
        stream.seek(0)
        stream.write(target_header)


def _expected_file_bytes(header: bytes) -> int:
    """Bytes of a single-file NIfTI-1 (``n+1``) with this header: voxel offset plus voxel data."""
    order = _byte_order(header)
    dims = np.frombuffer(header, dtype=f"{order}i2", count=8, offset=40)
    bitpix = int(np.frombuffer(header, dtype=f"{order}i2", count=1, offset=72)[0])
    vox_offset = int(np.frombuffer(header, dtype=f"{order}f4", count=1, offset=108)[0])
    n_dims = min(max(int(dims[0]), 1), 7)
    voxels = int(np.prod(np.maximum(dims[1 : n_dims + 1].astype(np.int64), 1)))
    return vox_offset + voxels * bitpix // 8


def _decompressed_bytes(path: Path) -> int | None:
    """Length of a gzip file's content, or None when the stream ends early or is corrupt."""
    total = 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(1 << 22):
                total += len(chunk)
    except (EOFError, OSError, gzip.BadGzipFile):
        return None
    return total


def truncation_problem(path: str | Path, header: bytes) -> str | None:
    """Say how a single-file NIfTI-1 is truncated, or return None when all its voxel data is present.

    SimpleITK (ITK 5.4) reads a truncated ``.nii`` or ``.nii.gz`` without any error and fills the missing voxels
    with garbage, so this is checked here. For ``.nii.gz`` the gzip trailer's length field is compared first
    (free); only when it disagrees (a truncated file, or a valid multi-member gzip) is the stream decompressed.
    """
    path = Path(path)
    if header[344:347] != b"n+1":
        return None
    expected = _expected_file_bytes(header)
    if not path.name.endswith(".gz"):
        found = path.stat().st_size
    else:
        with open(path, "rb") as stream:
            stream.seek(-4, 2)
            trailer_length = int.from_bytes(stream.read(4), "little")
        if trailer_length == expected % 2**32:
            return None
        found = _decompressed_bytes(path)
        if found is None:
            return "file is truncated or corrupt: its gzip stream ends early"
    if found < expected:
        return f"file is truncated: {expected} bytes of header and voxel data expected, {found} found"
    return None


def spacing_problem(header: bytes) -> str | None:
    """Say why the voxel spacing in a NIfTI-1 header is unusable (zero or not finite), else None.

    ITK silently reads a zero ``pixdim`` as 1 mm, which would give a mask and every distance in mm the wrong scale.
    """
    order = _byte_order(header)
    spacing = np.frombuffer(header, dtype=f"{order}f4", count=3, offset=80)
    if np.isfinite(spacing).all() and (spacing != 0).all():
        return None
    values = ", ".join(f"{value:g}" for value in spacing)
    return f"its header gives voxel spacing (pixdim) {values}: zero or not finite (SimpleITK would read 1 mm)"


_FLOAT_DATATYPES = {16: "f4", 64: "f8"}


def nonfinite_counts(path: str | Path, header: bytes) -> tuple[int, int]:
    """Count NaN and infinite voxels stored in a floating-point single-file NIfTI-1.

    SimpleITK (through niftilib) silently replaces them by 0 when it reads, so they are counted in the raw
    voxel data. Integer files cannot hold them: (0, 0) without reading anything.

    Returns:
        (number of NaN voxels, number of +/-inf voxels).
    """
    order = _byte_order(header)
    datatype = int(np.frombuffer(header, dtype=f"{order}i2", count=1, offset=70)[0])
    if datatype not in _FLOAT_DATATYPES or header[344:347] != b"n+1":
        return 0, 0
    vox_offset = int(np.frombuffer(header, dtype=f"{order}f4", count=1, offset=108)[0])
    with _open(Path(path), "rb") as stream:
        stream.seek(vox_offset)
        voxels = np.frombuffer(stream.read(), dtype=f"{order}{_FLOAT_DATATYPES[datatype]}")
    nan = int(np.isnan(voxels).sum())
    return nan, int((~np.isfinite(voxels)).sum()) - nan
