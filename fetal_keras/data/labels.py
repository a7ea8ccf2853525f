"""Turn a segmentation's label values into the binary brain mask that training and evaluation use."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def parse_label_values(text: str | None) -> tuple[int, ...] | None:
    """Parse a comma-separated list of integer label values such as ``"2"`` or ``"0,2,9,10"``.

    Returns:
        The values, or None for None / an empty string.

    Raises:
        ValueError: if an entry is not a non-negative integer.
    """
    if text is None or not text.strip():
        return None
    values = []
    for entry in text.split(","):
        entry = entry.strip()
        if not entry.isdigit():
            raise ValueError(f"Label value {entry!r} in {text!r} is not a non-negative integer.")
        values.append(int(entry))
    return tuple(values)


def label_value_problem(segmentation: np.ndarray, allowed_labels: Sequence[int] | None = None) -> str | None:
    """Say what is wrong with a segmentation's values, or return None when they are a valid label map.

    A label map holds non-negative integers; when ``allowed_labels`` is given (e.g. ``(0, 2, 9, 10)`` for the
    iFIND data), every value must be one of them. Non-integer values usually mean the segmentation was
    resampled with linear interpolation.
    """
    values = np.unique(segmentation)
    if not np.isfinite(values).all():
        return "segmentation holds NaN or infinite values"
    if (values < 0).any():
        return f"segmentation holds negative values {values[values < 0][:5].tolist()}"
    non_integer = values[values != np.round(values)]
    if non_integer.size:
        return (
            f"segmentation holds non-integer values such as {non_integer[:3].tolist()} "
            "(was it resampled with linear interpolation?)"
        )
    if allowed_labels is not None:
        unexpected = np.setdiff1d(values, np.asarray(allowed_labels))
        if unexpected.size:
            return (
                f"segmentation holds label values {unexpected[:10].astype(int).tolist()} outside the allowed "
                f"set {sorted(allowed_labels)}"
            )
    return None


def brain_mask_from_labels(segmentation: np.ndarray, brain_labels: Sequence[int] | None = None) -> np.ndarray:
    """Binary brain mask from a label map.

    Args:
        segmentation: label map of any shape, e.g. ``[z, y, x]``.
        brain_labels: label values that count as brain. None (default): every non-zero voxel is brain.
            The original iFIND data uses 2 = brain, 9 = placenta, 10 = uterus, i.e. ``brain_labels=(2,)``.

    Returns:
        uint8 array of the same shape: 1 = brain, 0 = everything else.
    """
    if brain_labels is None:
        return (segmentation != 0).astype(np.uint8)
    return np.isin(segmentation, np.asarray(brain_labels)).astype(np.uint8)


def read_brain_mask(segmentation_path: str | Path, brain_labels: Sequence[int] | None = None) -> np.ndarray:
    """Binary brain mask ``[z, y, x]`` (uint8) of a label-map file; ``brain_labels`` as in
    :func:`brain_mask_from_labels`.

    Raises:
        FileNotFoundError / ValueError: if the file is missing or cannot be read as a stack (named in the message).
    """
    from fetal_keras.data.io import read_stack  # SimpleITK only where a file is read: the CLI parses labels without it

    return brain_mask_from_labels(read_stack(segmentation_path).array, brain_labels)
