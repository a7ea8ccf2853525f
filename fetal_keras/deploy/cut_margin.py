"""A head at the image's edge: where the segmenter's crop lost its margin, its border is replicated outward.

A segmenter learns on crops with ``PreprocessConfig.crop_margin_mm`` of surroundings on every side of the head.
When the field of view cuts the head, or ends a few millimetres from it, the crop reaches the image's edge and the
network sees its own zero padding right beside the brain, which it never saw in training: on simulated stacks cut
through the middle of the brain the packaged pair's Dice fell to 0.44. Replicating the crop's last rows or columns
outward on those sides only (``CUT_MARGIN_PADDING`` voxels) brings it to 0.87, and heads 3 mm from the edge from 0.84
to 0.88; stacks whose head has its margin are not changed (docs/qc.md, "Heads at the image's edge"). Off by default
(``predict --pad-cut-margin``; ``fetal_keras.choices.DEPLOY_DEFAULTS`` says why).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Voxels replicated on a side that lost its margin (the segmenter's grid): 16 recovered part of the loss on the
# development cut stacks (Dice 0.71), 32 and 64 all of it (0.87).
CUT_MARGIN_PADDING = 32


def sides_without_margin(
    focus: np.ndarray, spacing_zyx_mm: Sequence[float], margin_mm: float
) -> tuple[tuple[bool, bool], tuple[bool, bool]]:
    """For the in-plane axes (y, x) of a ``[z, y, x]`` focus (the localiser's head, on the stack's grid): whether its
    low and its high side lies closer to the image's edge than ``margin_mm`` (no side for an empty focus)."""
    sides = []
    for axis in (1, 2):
        occupied = np.flatnonzero(np.asarray(focus).any(axis=tuple(other for other in range(3) if other != axis)))
        if not len(occupied):
            return (False, False), (False, False)
        low_mm = occupied[0] * float(spacing_zyx_mm[axis])
        high_mm = (focus.shape[axis] - 1 - occupied[-1]) * float(spacing_zyx_mm[axis])
        sides.append((bool(low_mm < margin_mm), bool(high_mm < margin_mm)))
    return sides[0], sides[1]


def pad_sides(
    image: np.ndarray, sides: tuple[tuple[bool, bool], tuple[bool, bool]], voxels: int = CUT_MARGIN_PADDING
) -> tuple[np.ndarray, tuple[slice, slice, slice]]:
    """``image`` (``[z, y, x]``) with its border replicated ``voxels`` deep on the in-plane ``sides`` marked true, and
    the region of the padded array that is the image (to crop a prediction back)."""
    padding = [(0, 0)] + [(voxels * low, voxels * high) for low, high in sides]
    padded = np.pad(image, padding, mode="edge")
    region = tuple(slice(before, size - after) for (before, after), size in zip(padding, padded.shape, strict=True))
    return padded, region
