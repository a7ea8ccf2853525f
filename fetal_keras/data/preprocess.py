"""Per-stack preprocessing, done once when a cohort is loaded: label mapping, resampling, whitening, padding.

The original whitened the whole volume, background included: ``(x - mean) / (std + 1e-8)``. Percentile clipping
before whitening is an option (robust to a few very bright voxels such as vessels or fat). In-plane resampling to a
target spacing is optional and off by default, as in the original: native resolution keeps every detail of
the scanner's grid, while a common spacing makes a 128-pixel slab cover the same field of view in every stack
(fetal heads of one age then look the same size) at the cost of interpolating every stack. Stacks smaller than a
slab are padded with their background, never rejected.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from tqdm.auto import tqdm

from fetal_keras.choices import NORMALISATIONS
from fetal_keras.data.check import CheckOptions, image_problems
from fetal_keras.data.cohort import ID_COLUMN, IMAGE_COLUMN, LABELS_COLUMN, SEGMENTATION_COLUMN, read_cohort
from fetal_keras.data.io import StackGeometry, read_stack
from fetal_keras.data.labels import brain_mask_from_labels, label_value_problem
from fetal_keras.data.problems import Severity

FOREGROUND_FRACTION = 0.05
FOREGROUND_CLIP = 5.0


@dataclass(frozen=True)
class PreprocessConfig:
    """How each stack is prepared.

    Attributes:
        clip_percentiles: clip intensities to these percentiles before whitening; None: no clipping (original).
        target_spacing_mm: resample in-plane to this spacing (mm); None: keep the native grid (original).
        min_shape: pad ``[z, y, x]`` up to at least this shape (a slab: 3 x 128 x 128).
        brain_labels: label values that count as brain; None: any non-zero label.
        image_is_label_map: the image is a tissue label map to render training images from (resampled with
            nearest neighbours, not whitened, padded with 0); False for every image a model sees at deploy.
        normalisation: ``"zscore"`` over the whole stack (the original), or ``"foreground"``: z-score over the
            voxels with signal (see :func:`foreground_zscore`), robust to how much air the field of view holds.
        crop_margin_mm: a segmenter's crop: the stack is cut to the bounding box of its focus region (the brain
            mask in training, the localiser's head at deploy) plus this margin, grown to at least ``min_shape``,
            before intensity normalisation; None: the whole stack.
    """

    clip_percentiles: tuple[float, float] | None = None
    target_spacing_mm: float | None = None
    min_shape: tuple[int, int, int] = (3, 128, 128)
    brain_labels: tuple[int, ...] | None = None
    image_is_label_map: bool = False
    normalisation: str = "zscore"
    crop_margin_mm: float | None = None

    def __post_init__(self):
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}.")
        if self.crop_margin_mm is not None and self.crop_margin_mm < 0:
            raise ValueError(f"crop_margin_mm must be at least 0, got {self.crop_margin_mm}.")


@dataclass(frozen=True)
class PreparedStack:
    """A stack ready for sampling: whitened float16 image and uint8 brain mask, ``[z, y, x]``, padded.

    ``valid`` is the region of the arrays that holds the stack (the rest is padding); ``geometry`` is the grid of
    the unpadded arrays (the file's own grid unless resampled) and ``source_geometry`` the file's grid.
    ``labels_outside`` counts the brain voxels (on ``geometry``'s spacing) that a crop left out: a validation Dice
    counts them as missed.
    """

    stack_id: str
    image: np.ndarray
    labels: np.ndarray | None
    valid: tuple[slice, slice, slice]
    geometry: StackGeometry
    source_geometry: StackGeometry
    labels_outside: int = 0

    @property
    def unpadded_image(self) -> np.ndarray:
        """The image without padding, on ``geometry``'s grid."""
        return self.image[self.valid]

    @property
    def unpadded_labels(self) -> np.ndarray | None:
        """The brain mask without padding, or None for an unlabelled stack."""
        return None if self.labels is None else self.labels[self.valid]


def whiten(image: np.ndarray, clip_percentiles: tuple[float, float] | None = None) -> np.ndarray:
    """Whole-volume whitening ``(x - mean) / (std + 1e-8)`` in float32, optionally after percentile clipping."""
    image = image.astype(np.float32)
    if clip_percentiles is not None:
        image = np.clip(image, *np.percentile(image, clip_percentiles))
    return (image - image.mean()) / (image.std() + 1e-8)


def foreground_zscore(image: np.ndarray) -> np.ndarray:
    """Z-score over the foreground, clipped to +-``FOREGROUND_CLIP``, in float32.

    Foreground: voxels brighter than ``FOREGROUND_FRACTION`` of the 99.5th intensity percentile, i.e. everything
    but air and the scanner's empty field of view. A whole-stack z-score depends on how much air surrounds the
    mother (a wide real field of view put the brain at +1.9 sd, a simulated one filled by the abdomen at -0.2 sd);
    the foreground's statistics do not. The same rule normalises rendered training slabs
    (``fetal_keras.rendering.label_to_image.normalise``).
    """
    image = image.astype(np.float32)
    foreground = image[image > FOREGROUND_FRACTION * np.percentile(image, 99.5)]
    if foreground.size < 2:
        foreground = image.ravel()
    return np.clip((image - foreground.mean()) / (foreground.std() + 1e-8), -FOREGROUND_CLIP, FOREGROUND_CLIP)


def normalise_intensity(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """The stack's intensities as ``config.normalisation`` says (float32)."""
    if config.normalisation == "foreground":
        return foreground_zscore(image)
    return whiten(image, config.clip_percentiles)


def resample_in_plane(image: sitk.Image, spacing_mm: float, is_label: bool) -> sitk.Image:
    """Resample the in-plane axes of a stack to ``spacing_mm`` (slices untouched): linear, or nearest for labels."""
    old_spacing, old_size = np.array(image.GetSpacing()), np.array(image.GetSize())
    new_spacing = np.array([spacing_mm, spacing_mm, old_spacing[2]])
    new_size = np.maximum(np.round(old_size * old_spacing / new_spacing), 1).astype(int)
    new_size[2] = old_size[2]
    # Keep the centre of the field of view: the first voxel centre moves by half the change of voxel size.
    origin = np.array(image.GetOrigin()) + np.array(image.GetDirection()).reshape(3, 3) @ (
        (new_spacing - old_spacing) / 2 * [1, 1, 0]
    )
    interpolator = sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear
    return sitk.Resample(
        image,
        [int(v) for v in new_size],
        sitk.Transform(),
        interpolator,
        origin.tolist(),
        new_spacing.tolist(),
        image.GetDirection(),
        0.0,
        image.GetPixelID(),
    )


def _resampled(array: np.ndarray, geometry: StackGeometry, spacing_mm: float, is_label: bool):
    image = geometry.apply_to(sitk.GetImageFromArray(array))
    resampled = resample_in_plane(image, spacing_mm, is_label)
    grid = StackGeometry(
        size=tuple(resampled.GetSize()),
        spacing_mm=tuple(resampled.GetSpacing()),
        origin_mm=tuple(resampled.GetOrigin()),
        direction=tuple(resampled.GetDirection()),
    )
    return sitk.GetArrayFromImage(resampled), grid


def pad_to(array: np.ndarray, min_shape: Sequence[int], value: float) -> tuple[np.ndarray, tuple[slice, ...]]:
    """Pad ``array`` symmetrically up to at least ``min_shape`` with ``value``; return it and the original region."""
    before = [max(0, (m - n) // 2) for n, m in zip(array.shape, min_shape, strict=True)]
    after = [max(0, m - n - b) for n, m, b in zip(array.shape, min_shape, before, strict=True)]
    padded = np.pad(array, list(zip(before, after, strict=True)), constant_values=value)
    return padded, tuple(slice(b, b + n) for b, n in zip(before, array.shape, strict=True))


def crop_region(
    focus: np.ndarray, spacing_zyx_mm: Sequence[float], margin_mm: float, min_shape: Sequence[int]
) -> tuple[slice, slice, slice]:
    """The ``[z, y, x]`` region around ``focus``'s non-zero voxels: their bounding box plus ``margin_mm`` on every
    side, grown about its centre to at least ``min_shape``, kept inside the array (the whole array if it is smaller).
    """
    region = []
    for axis, (size, spacing, smallest) in enumerate(zip(focus.shape, spacing_zyx_mm, min_shape, strict=True)):
        occupied = np.flatnonzero(focus.any(axis=tuple(other for other in range(3) if other != axis)))
        margin = int(np.ceil(margin_mm / spacing))
        low, high = max(int(occupied[0]) - margin, 0), min(int(occupied[-1]) + 1 + margin, size)
        missing = max(smallest - (high - low), 0)
        low = max(low - missing // 2, 0)
        high = min(max(high + missing - missing // 2, low + smallest), size)
        low = max(min(low, high - smallest), 0)
        region.append(slice(low, high))
    return tuple(region)


def prepare_stack(
    stack_id: str,
    image_path: str | Path,
    segmentation_path: str | Path | None,
    config: PreprocessConfig,
    focus: np.ndarray | None = None,
) -> PreparedStack:
    """Read, check, resample, crop (segmenters), whiten and pad one stack (and its brain mask).

    ``focus`` (``[z, y, x]`` on the file's grid) is the region a segmenter's crop is cut around
    (``config.crop_margin_mm``); without it the brain mask is used, and a stack with neither is not cropped.

    Raises:
        FileNotFoundError: if a file is missing.
        ValueError: naming the file, if it is unreadable, holds NaNs or a constant image, or the segmentation's
            grid or label values are wrong.
    """
    stack = read_stack(image_path)
    errors = [message for severity, message in image_problems(stack, CheckOptions()) if severity is Severity.ERROR]
    if errors:
        raise ValueError(f"{image_path}: " + "; ".join(errors) + ".")
    brain = None
    if segmentation_path:
        segmentation = read_stack(segmentation_path)
        differences = stack.geometry.differences(segmentation.geometry)
        if differences:
            raise ValueError(f"{segmentation_path} does not match the grid of {image_path}: " + "; ".join(differences))
        problem = label_value_problem(segmentation.array)
        if problem:
            raise ValueError(f"{segmentation_path}: {problem}.")
        brain = brain_mask_from_labels(segmentation.array, config.brain_labels)
    image, geometry = stack.array, stack.geometry
    focus = brain if focus is None else focus.astype(np.uint8)
    if config.target_spacing_mm is not None:
        image = image if config.image_is_label_map else image.astype(np.float32)
        image, geometry = _resampled(image, stack.geometry, config.target_spacing_mm, config.image_is_label_map)
        if brain is not None:
            brain, _ = _resampled(brain, stack.geometry, config.target_spacing_mm, True)
        if focus is not None:
            focus, _ = _resampled(focus, stack.geometry, config.target_spacing_mm, True)
    labels_outside = 0
    if config.crop_margin_mm is not None and focus is not None and focus.any():
        region = crop_region(focus, geometry.spacing_mm[::-1], config.crop_margin_mm, config.min_shape)
        image, geometry = image[region], geometry.cropped(region)
        if brain is not None:
            labels_outside = int(brain.sum()) - int(brain[region].sum())
            brain = brain[region]
    if not config.image_is_label_map:
        image = normalise_intensity(image, config)
    image, valid = pad_to(image, config.min_shape, 0.0 if config.image_is_label_map else float(image.min()))
    if brain is not None:
        brain, _ = pad_to(brain, config.min_shape, 0)
    return PreparedStack(stack_id, image.astype(np.float16), brain, valid, geometry, stack.geometry, labels_outside)


def label_maps_as_images(table: pd.DataFrame, csv_path: str | Path) -> pd.DataFrame:
    """The cohort ``table`` with its tissue label maps (``labels`` column) in place of its images, to render
    training images from.

    Raises:
        ValueError: if the cohort has no ``labels`` column or a row lacks its label map.
    """
    if LABELS_COLUMN not in table.columns:
        raise ValueError(
            f"{csv_path} has no '{LABELS_COLUMN}' column of tissue label maps, needed to render training images "
            "from them (fetal-keras simulate writes it); train on the images instead (image_source 'images')."
        )
    missing = [f"line {line} ({row[ID_COLUMN]})" for line, row in table.iterrows() if not row[LABELS_COLUMN]]
    if missing:
        raise ValueError(f"{csv_path}: no tissue label map on " + ", ".join(missing) + ".")
    return table.assign(**{IMAGE_COLUMN: table[LABELS_COLUMN]})


def label_map_preprocess(config: PreprocessConfig) -> PreprocessConfig:
    """``config`` for tissue label maps: the same grid, label-preserving resampling and no whitening."""
    return dataclasses.replace(config, image_is_label_map=True)


def prepared_shape(geometry: StackGeometry, config: PreprocessConfig) -> tuple[int, int, int]:
    """The ``[z, y, x]`` shape :func:`prepare_stack` gives a stack on ``geometry``, without reading its voxels."""
    size = np.array(geometry.size, dtype=float)
    if config.target_spacing_mm is not None:
        in_plane = np.maximum(np.round(size[:2] * np.array(geometry.spacing_mm[:2]) / config.target_spacing_mm), 1)
        size[:2] = in_plane
    return tuple(max(int(n), m) for n, m in zip(size[::-1], config.min_shape, strict=True))


def iter_prepared(
    cohort: str | Path | pd.DataFrame,
    config: PreprocessConfig,
    require_labels: bool = True,
    progress: bool = True,
    focus: Mapping[str, np.ndarray] | None = None,
) -> Iterator[PreparedStack]:
    """Prepare the stacks of a cohort CSV (or an already read cohort table) one by one, with a progress bar.

    ``focus`` maps stack ids to the region a segmenter's crop is cut around (see :func:`prepare_stack`), e.g. what
    a localiser found; stacks it does not name are cropped around their brain mask.

    Raises:
        ValueError: naming the CSV line and file of a stack that cannot be prepared.
    """
    table = cohort if isinstance(cohort, pd.DataFrame) else read_cohort(cohort, require_segmentation=require_labels)
    for line, row in tqdm(
        table.iterrows(), total=len(table), desc="loading stacks", unit="stack", disable=not progress
    ):
        try:
            yield prepare_stack(
                row[ID_COLUMN],
                row[IMAGE_COLUMN],
                row[SEGMENTATION_COLUMN] or None,
                config,
                (focus or {}).get(row[ID_COLUMN]),
            )
        except (ValueError, FileNotFoundError) as error:
            raise type(error)(f"line {line} (iFIND_id {row[ID_COLUMN]!r}): {error}") from None


def load_stacks(
    cohort: str | Path | pd.DataFrame,
    config: PreprocessConfig,
    require_labels: bool = True,
    progress: bool = True,
    focus: Mapping[str, np.ndarray] | None = None,
) -> list[PreparedStack]:
    """Prepare every stack of a cohort (see :func:`iter_prepared`) and keep them all in memory."""
    return list(iter_prepared(cohort, config, require_labels, progress, focus))
