"""Deploy: segment whole stacks, write masks with the stack's exact header, and per-stack QC in ``predictions.csv``.

For each stack: preprocess as in training, fully convolutional whole-slice inference (``fetal_keras.deploy.inference``)
(with a localiser + segmenter pair, ``fetal_keras.deploy.localise``: the segmenter's crop around the localiser's head,
its border optionally replicated where the head is at the image's edge, ``fetal_keras.deploy.cut_margin``),
optional test-time augmentation (in-plane flips, optionally transposes; probabilities averaged, their standard
deviation across the variants written as ``<id>_uncertainty.nii.gz``), optional post-processing (largest 3D
connected component, then hole filling, with SimpleITK), and per-slice QC flags: slices whose mask area jumps
relative to their neighbours, or whose brain region is uncertain under TTA. One failing stack is reported in
``predictions.csv`` and the others still complete; every output is written atomically and never over an input.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from tqdm.auto import tqdm

from fetal_keras.choices import DEFAULT_LOCALISER_SLAB_STEP, DEPLOY_DEFAULTS
from fetal_keras.data.io import StackGeometry, StackReadError, mask_image, read_geometry, write_like, write_mask
from fetal_keras.data.preprocess import PreprocessConfig, prepare_stack
from fetal_keras.deploy.cut_margin import pad_sides, sides_without_margin
from fetal_keras.deploy.inference import AveragedPredictor, predict_brain_probability, predict_sliding_window
from fetal_keras.deploy.localise import LocalisedSegmenter, head_component, keep_component_at_focus
from fetal_keras.deploy.stack_batch_norm import stack_statistics
from fetal_keras.deploy.stack_qc import stack_qc
from fetal_keras.files import atomic_output, ensure_not_input, member_probability_path, output_paths

MAX_MARGIN_MM = 50.0
PREDICTION_COLUMNS = (
    "iFIND_id",
    "input",
    "mask",
    "probability",
    "uncertainty",
    "seconds",
    "brain_volume_ml",
    "slices",
    "flagged_slices",
    "qc_score",
    "qc_flag",
    "qc_reasons",
    "margin_mm",
    "model",
    "error",
)


@dataclass(frozen=True)
class PredictOptions:
    """How stacks are segmented.

    Attributes:
        tta: average over in-plane flips (4 variants; 8 with ``tta_transpose``) and write the uncertainty.
        tta_transpose: also swap the in-plane axes in TTA.
        postprocess: keep the largest 3D connected component and fill holes.
        save_probabilities: also write ``<id>_prob.nii.gz`` (float32 brain probability) and, for a model averaged
            with others (``--average-with-packaged``), each model's own as ``<id>_member-<n>_prob.nii.gz``.
        batch_size: slabs per forward pass.
        sliding_window: use the original's 3 x 128 x 128 windows every 1 x 64 x 64 voxels instead of whole slices
            (for comparison; many more network evaluations).
        slab_step: 1 (every slice averaged over the 3 slabs containing it) or 3 (tiling slabs, about 3x faster).
        localiser_slab_step: the same for a pair's localiser, whose mask only has to find the head: 3 by default
            (the localiser's whole field of view is most of a pair's time).
        qc_area_ratio: a slice is flagged when its mask area differs from its neighbours' mean by this factor.
        qc_min_area_px: neighbours' mean area below which area jumps are not flagged (brain edges).
        qc_uncertainty: a slice is flagged when the mean TTA standard deviation over its brain region exceeds this.
        margin_mm: grow every written mask by this distance in physical space (0-50 mm; anisotropic voxels
            handled), as slice-to-volume reconstruction tools ask for; ``brain_volume_ml`` and the QC flags still
            describe the brain itself.
        fill_slice_holes: post-processing also fills every slice's holes, not only those closed in 3D.
        stack_batch_norm: each model normalises with the batch-norm statistics of the stack it masks
            (``fetal_keras.deploy.stack_batch_norm``; Keras models only).
        pad_cut_margin: for a pair, replicate the segmenter crop's border outward on the sides where the head lies
            closer to the image's edge than the crop's margin (``fetal_keras.deploy.cut_margin``).
    """

    tta: bool = False
    tta_transpose: bool = False
    postprocess: bool = True
    save_probabilities: bool = False
    batch_size: int = 4
    sliding_window: bool = False
    slab_step: int = 1
    localiser_slab_step: int = DEFAULT_LOCALISER_SLAB_STEP
    qc_area_ratio: float = 2.0
    qc_min_area_px: int = 50
    qc_uncertainty: float = 0.15
    margin_mm: float = 0.0
    fill_slice_holes: bool = DEPLOY_DEFAULTS["fill_slice_holes"]
    stack_batch_norm: bool = DEPLOY_DEFAULTS["stack_batch_norm"]
    pad_cut_margin: bool = DEPLOY_DEFAULTS["pad_cut_margin"]

    def __post_init__(self):
        if not 0.0 <= self.margin_mm <= MAX_MARGIN_MM:
            raise ValueError(f"The mask margin must be 0-{MAX_MARGIN_MM:g} mm, got {self.margin_mm:g} mm.")


def _variants(transpose: bool):
    """TTA variants as (forward, inverse) functions on ``[z, y, x]`` arrays."""
    variants = []
    for axes in ((), (1,), (2,), (1, 2)):

        def flip(array, axes=axes):
            return np.flip(array, axes) if axes else array

        variants.append((flip, flip))
        if transpose:
            variants.append((lambda a, f=flip: f(a).transpose(0, 2, 1), lambda a, f=flip: f(a.transpose(0, 2, 1))))
    return variants


def averaged_model_count(predictor) -> int:
    """How many models' probabilities ``predictor`` (a single model, an averaged one, or a pair, whose segmenter
    counts) averages: the member maps ``predict_stack`` writes with ``save_probabilities`` when above 1."""
    segmenter = predictor.segmenter if isinstance(predictor, LocalisedSegmenter) else predictor
    return len(segmenter.members) if isinstance(segmenter, AveragedPredictor) else 1


def _probability(predictor, image: np.ndarray, options: PredictOptions) -> np.ndarray:
    if options.sliding_window:
        return predict_sliding_window(predictor, image, batch_size=4 * options.batch_size)
    return predict_brain_probability(predictor, image, options.batch_size, options.slab_step)


def stack_member_probabilities(
    predictor, image: np.ndarray, options: PredictOptions
) -> tuple[list[np.ndarray], np.ndarray | None]:
    """The brain probability ``[z, y, x]`` of a whitened stack by each model of an averaged predictor
    (``fetal_keras.deploy.inference.AveragedPredictor``; one map for any other predictor), each averaged over the TTA
    variants, and the TTA standard deviation of their mean (None without TTA). Their mean (weighted as the predictor
    weighs them) is the predictor's probability: every step from the slabs to the stack is an average."""
    members = predictor.members if isinstance(predictor, AveragedPredictor) else (predictor,)
    variants = _variants(options.tta_transpose) if options.tta else [(lambda array: array, lambda array: array)]
    totals, variant_means = [0.0] * len(members), []
    with stack_statistics(predictor, image) if options.stack_batch_norm else contextlib.nullcontext():
        for forward, inverse in variants:
            maps = [inverse(_probability(member, np.ascontiguousarray(forward(image)), options)) for member in members]
            totals = [total + one for total, one in zip(totals, maps, strict=True)]
            variant_means.append(_mean(predictor, maps))
    spread = np.std(variant_means, axis=0) if options.tta else None
    return [total / len(variants) for total in totals], spread


def stack_probability(predictor, image: np.ndarray, options: PredictOptions) -> tuple[np.ndarray, np.ndarray | None]:
    """Brain probability ``[z, y, x]`` of a whitened stack, and the TTA standard deviation (None without TTA)."""
    members, spread = stack_member_probabilities(predictor, image, options)
    return _mean(predictor, members), spread


def _member_weights(predictor) -> tuple[float, ...] | None:
    """The weights an averaged predictor gives its models' maps (None: equal, or a single model)."""
    return predictor.weights if isinstance(predictor, AveragedPredictor) else None


def _mean(predictor, members: list[np.ndarray]) -> np.ndarray:
    """The predictor's probability from its models' own: their mean, weighted as the predictor weighs them."""
    return np.average(members, axis=0, weights=_member_weights(predictor)).astype(np.float32)


def grow_mask(mask: np.ndarray, spacing_mm: tuple[float, float, float], margin_mm: float) -> np.ndarray:
    """``mask`` (``[z, y, x]``, voxel sizes ``spacing_mm`` in x, y, z order) grown by every voxel whose centre lies
    within ``margin_mm`` of it (Euclidean distance in mm, so thick slices grow by fewer voxels); uint8 0/1."""
    if margin_mm <= 0 or not mask.any():
        return mask.astype(np.uint8)
    distance = sitk.SignedMaurerDistanceMap(
        mask_image(mask, spacing_mm), insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    return (sitk.GetArrayFromImage(distance) <= margin_mm).astype(np.uint8)


def postprocess_mask(mask: np.ndarray, slice_holes: bool = False) -> np.ndarray:
    """Largest 3D connected component of a ``[z, y, x]`` mask, with its holes filled (uint8 0/1; with
    ``slice_holes`` also each slice's)."""
    return keep_component_at_focus(mask, np.zeros_like(mask), slice_holes=slice_holes)


def flagged_slices(mask: np.ndarray, spread: np.ndarray | None, options: PredictOptions) -> list[int]:
    """Slices to look at before reconstruction: area jumps relative to neighbours, or uncertain brain."""
    areas = mask.reshape(len(mask), -1).sum(axis=1).astype(float)
    flagged = set()
    for index in range(len(areas)):
        neighbours = [areas[i] for i in (index - 1, index + 1) if 0 <= i < len(areas)]
        expected = float(np.mean(neighbours)) if neighbours else 0.0
        if expected >= options.qc_min_area_px:
            ratio = (areas[index] + 1.0) / (expected + 1.0)
            if ratio > options.qc_area_ratio or ratio < 1.0 / options.qc_area_ratio:
                flagged.add(index)
        if spread is not None and mask[index].any() and spread[index][mask[index] > 0].mean() > options.qc_uncertainty:
            flagged.add(index)
    return sorted(flagged)


def _to_source_grid(array: np.ndarray, grid: StackGeometry, source: StackGeometry, is_label: bool) -> np.ndarray:
    """Resample an array on the preprocessing grid back onto the stack's own grid (no-op when they are the same)."""
    if grid == source:
        return array
    image = grid.apply_to(sitk.GetImageFromArray(array.astype(np.float32)))
    reference = source.apply_to(sitk.Image([int(v) for v in source.size], sitk.sitkFloat32))
    interpolator = sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear
    return sitk.GetArrayFromImage(sitk.Resample(image, reference, sitk.Transform(), interpolator, 0.0))


def locate_head(pair: LocalisedSegmenter, stack_id: str, path: str | Path, options: PredictOptions) -> np.ndarray:
    """The localiser's head (``fetal_keras.deploy.localise.head_component``) on the stack's own grid, uint8 ``[z, y, x]``."""
    prepared = prepare_stack(stack_id, path, None, pair.localiser_preprocess)
    localiser_options = dataclasses.replace(options, slab_step=options.localiser_slab_step)
    probability, _ = stack_probability(pair.localiser, prepared.unpadded_image, localiser_options)
    head = head_component(probability, prepared.geometry.spacing_mm[::-1])
    return _to_source_grid(head, prepared.geometry, read_geometry(path), is_label=True).astype(np.uint8)


def predict_stack(
    predictor,
    stack_id: str,
    path: str | Path,
    paths: dict[str, Path],
    options: PredictOptions,
    preprocess: PreprocessConfig,
) -> dict:
    """Segment one stack and write its outputs; return its ``predictions.csv`` row (without model and error).

    ``predictor`` is a single model, or a :class:`~fetal_keras.deploy.localise.LocalisedSegmenter` pair whose segmenter
    was trained with ``preprocess``. ``paths``: where its ``mask``, ``prob`` and ``uncertainty`` go
    (``fetal_keras.files.output_paths``); their folder is created.
    """
    start = time.perf_counter()
    for output in paths.values():
        ensure_not_input(output, [path])
    focus = None
    if isinstance(predictor, LocalisedSegmenter):
        focus = locate_head(predictor, stack_id, path, options)
        predictor = predictor.segmenter
    prepared = prepare_stack(stack_id, path, None, preprocess, focus if focus is not None and focus.any() else None)
    source = read_geometry(path)
    image, region = prepared.unpadded_image, None
    if options.pad_cut_margin and focus is not None and preprocess.crop_margin_mm is not None:
        sides = sides_without_margin(focus, source.spacing_mm[::-1], preprocess.crop_margin_mm)
        if any(low or high for low, high in sides):
            image, region = pad_sides(image, sides)
    members, spread = stack_member_probabilities(predictor, image, options)
    if region is not None:
        members, spread = [member[region] for member in members], None if spread is None else spread[region]
    members = [_to_source_grid(member, prepared.geometry, source, is_label=False) for member in members]
    probability = _mean(predictor, members)
    mask = (probability >= 0.5).astype(np.uint8)
    if options.postprocess:
        mask = (
            postprocess_mask(mask, options.fill_slice_holes)
            if focus is None
            else keep_component_at_focus(mask, focus, source.spacing_mm[::-1], slice_holes=options.fill_slice_holes)
        )
    if spread is not None:
        spread = _to_source_grid(spread, prepared.geometry, source, is_label=False)
    flagged = flagged_slices(mask, spread, options)
    qc = stack_qc(
        mask,
        source.spacing_mm,
        probability,
        spread,
        focus,
        flagged,
        member_probabilities=members,
        member_weights=_member_weights(predictor),
    )
    paths["mask"].parent.mkdir(parents=True, exist_ok=True)
    write_mask(grow_mask(mask, source.spacing_mm, options.margin_mm), source, paths["mask"])
    written = {"mask": str(paths["mask"]), "probability": "", "uncertainty": ""}
    if options.save_probabilities:
        written["probability"] = str(write_like(probability.astype(np.float32), source, paths["prob"]))
        if len(members) > 1:
            for number, member in enumerate(members, start=1):
                write_like(member.astype(np.float32), source, member_probability_path(paths["prob"], number))
    if spread is not None:
        written["uncertainty"] = str(write_like(spread.astype(np.float32), source, paths["uncertainty"]))
    return {
        "iFIND_id": stack_id,
        "input": str(path),
        **written,
        "seconds": round(time.perf_counter() - start, 3),
        "brain_volume_ml": round(qc.values["volume_ml"], 3),
        "slices": int(mask.shape[0]),
        "flagged_slices": ";".join(str(index) for index in flagged),
        "qc_score": qc.score,
        "qc_flag": qc.flag,
        "qc_reasons": ";".join(qc.reasons),
        "margin_mm": options.margin_mm,
    }


def predict_many(
    predictor,
    stacks: list[tuple[str, str]],
    out_dir: str | Path,
    options: PredictOptions,
    preprocess: PreprocessConfig,
    model_description: str = "",
    progress: bool = True,
    stack_outputs: list[dict[str, Path]] | None = None,
) -> pd.DataFrame:
    """Segment every ``(id, path)`` and write ``out_dir/predictions.csv``; a failing stack is reported, not fatal.

    ``stack_outputs``: each stack's output paths (as ``fetal_keras.files.output_paths``, e.g. a BIDS derivatives
    layout); default: ``out_dir/<id>_mask.nii.gz`` and so on.

    Returns:
        The ``predictions.csv`` table (``error`` empty for stacks that succeeded).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    if stack_outputs is None:
        stack_outputs = [output_paths(out_dir, stack_id) for stack_id, _ in stacks]
    for (stack_id, path), paths in tqdm(
        list(zip(stacks, stack_outputs, strict=True)), desc="segmenting", unit="stack", disable=not progress
    ):
        try:
            row = predict_stack(predictor, stack_id, path, paths, options, preprocess) | {"error": ""}
        except (StackReadError, ValueError, FileNotFoundError, PermissionError) as error:
            row = {"iFIND_id": stack_id, "input": str(path), "error": str(error)}
        rows.append(row | {"model": model_description})
    table = pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))
    with atomic_output(out_dir / "predictions.csv") as temporary:
        table.to_csv(temporary, index=False)
    return table
