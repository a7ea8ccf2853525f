"""Signal and brain fraction of the scene at arbitrary points: what one slice-profile sample of a stack sees."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from fetal_keras.simulate.scene import Scene
from fetal_keras.simulate.shapes import Ellipsoid, bounding_sphere, paint
from fetal_keras.simulate.tissues import BRAIN_TISSUES, Tissue

_BOWEL_TEXTURE_MM = 14.0  # size of bowel loops
_FINE_TEXTURE_MM = 4.0  # tissue heterogeneity
_FINE_TEXTURE_AMPLITUDE = 0.06
_WARP_SCALE_MM = 12.0  # smooth warp that makes the maternal ellipsoids irregular


@dataclass(frozen=True)
class HeadVolumes:
    """The head's signal (premultiplied by coverage), coverage and brain fraction, ``[z, y, x]`` float32."""

    signal: np.ndarray
    coverage: np.ndarray
    brain: np.ndarray


def head_volumes(scene: Scene, table: np.ndarray) -> HeadVolumes:
    """Turn the head's tissue labels into volumes that can be interpolated, for one contrast ``table``."""
    labels = scene.head.labels
    coverage = (labels != Tissue.AIR).astype(np.float32)
    return HeadVolumes(
        signal=table[labels] * coverage,
        coverage=coverage,
        brain=np.isin(labels, BRAIN_TISSUES).astype(np.float32),
    )


def _texture(scene: Scene, channel: int, points: np.ndarray, scale_mm: float) -> np.ndarray:
    coordinates = (points[:, ::-1] / scale_mm).T
    return ndimage.map_coordinates(scene.texture[channel], coordinates, order=1, mode="grid-wrap")


def _sample_head(scene: Scene, volumes: HeadVolumes, fetal_points: np.ndarray):
    """Interpolate the head volumes at fetal-frame points; zero outside the head grid."""
    head = scene.head
    index = (fetal_points - head.origin_mm) / head.spacing_mm
    inside = np.all((index > -1) & (index < np.array(head.labels.shape[::-1])), axis=1)
    sampled = [np.zeros(len(fetal_points), np.float32) for _ in range(3)]
    if inside.any():
        coordinates = index[inside][:, ::-1].T
        for out, volume in zip(sampled, (volumes.signal, volumes.coverage, volumes.brain), strict=True):
            out[inside] = ndimage.map_coordinates(volume, coordinates, order=1, mode="constant", cval=0.0)
    return sampled


def _placenta_fraction(scene: Scene, points: np.ndarray, edge_mm: float) -> np.ndarray:
    cavity = scene.cavity
    local = (points - cavity.centre) @ cavity.rotation / cavity.semi_axes
    radius = np.linalg.norm(local, axis=1)
    depth_mm = (1.0 - radius) * float(np.min(cavity.semi_axes))
    cosine = local @ (cavity.rotation.T @ scene.placenta_direction) / np.maximum(radius, 1e-6)
    in_shell = np.clip(0.5 + (scene.placenta_thickness_mm - depth_mm) / edge_mm, 0.0, 1.0)
    in_cap = np.clip(0.5 + (cosine - scene.placenta_cos_angle) * 20.0, 0.0, 1.0)
    return in_shell * in_cap


def _near_body(scene: Scene, fetal_points: np.ndarray, edge_mm: float) -> np.ndarray:
    """Which fetal-frame points lie inside the fetal body's bounding sphere (grown by ``edge_mm``)."""
    centre, radius = bounding_sphere(scene.body)
    return np.einsum("ij,ij->i", fetal_points - centre, fetal_points - centre) < (radius + edge_mm) ** 2


def _paint_body(scene: Scene, fetal_points: np.ndarray, table: np.ndarray, edge_mm: float):
    """``paint`` of the fetal body, evaluated only at points inside its bounding sphere."""
    near = _near_body(scene, fetal_points, edge_mm)
    signal, coverage = np.zeros(len(fetal_points), np.float32), np.zeros(len(fetal_points), np.float32)
    if near.any():
        signal[near], coverage[near] = paint(scene.body, fetal_points[near], table, edge_mm)
    return signal, coverage


def _warped(scene: Scene, world_points: np.ndarray) -> np.ndarray:
    """World points moved by the smooth warp that makes the maternal ellipsoids irregular."""
    warp = np.stack([_texture(scene, channel, world_points, _WARP_SCALE_MM) for channel in (2, 3, 4)], axis=1)
    return world_points + scene.warp_mm * warp


def _top_tissue(shapes: list[Ellipsoid], points: np.ndarray, edge_mm: float) -> np.ndarray:
    """Tissue of the topmost shape covering at least half of each point (``paint``'s order); AIR where none does."""
    labels = np.full(len(points), Tissue.AIR, np.uint8)
    points = points.astype(np.float32)
    for shape in shapes:
        labels[shape.membership(points, edge_mm) >= 0.5] = shape.tissue
    return labels


def label_points(scene: Scene, world_points: np.ndarray, fetal_points: np.ndarray, edge_mm: float = 1.0) -> np.ndarray:
    """The tissue label (``Tissue``) at points: what :func:`render_points` paints there, without partial volume.

    Each point takes the tissue that covers most of it, composited in the same order as the signal (maternal
    shapes, placenta inside the cavity, the fetus in front); bowel stays ``MATERNAL_BOWEL`` whatever its content.

    Returns:
        ``[n]`` uint8 labels.
    """
    world_points = _warped(scene, world_points)
    labels = _top_tissue(scene.maternal, world_points, edge_mm)
    in_cavity = scene.cavity.membership(world_points, edge_mm) >= 0.5
    labels[in_cavity & (_placenta_fraction(scene, world_points, edge_mm) >= 0.5)] = Tissue.PLACENTA
    head = scene.head
    index = np.round((fetal_points - head.origin_mm) / head.spacing_mm).astype(int)
    inside = np.all((index >= 0) & (index < np.array(head.labels.shape[::-1])), axis=1)
    fetus = np.full(len(fetal_points), Tissue.AIR, np.uint8)
    fetus[inside] = head.labels[index[inside, 2], index[inside, 1], index[inside, 0]]
    near = (fetus == Tissue.AIR) & _near_body(scene, fetal_points, edge_mm)
    fetus[near] = _top_tissue(scene.body, fetal_points[near], edge_mm)
    visible = in_cavity & (fetus != Tissue.AIR)
    labels[visible] = fetus[visible]
    return labels


def render_points(
    scene: Scene,
    volumes: HeadVolumes,
    table: np.ndarray,
    world_points: np.ndarray,
    fetal_points: np.ndarray,
    edge_mm: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Signal and brain fraction at points.

    Args:
        scene: the scene.
        volumes: ``head_volumes(scene, table)``.
        table: signal per tissue (``tissues.lookup_table``).
        world_points: ``[n, 3]`` positions in the world frame (mm) where the mother is sampled.
        fetal_points: ``[n, 3]`` the same positions in the (moving) fetal frame.
        edge_mm: width of the partial-volume ramp at shape edges.

    Returns:
        (signal, brain fraction), each ``[n]`` float32.
    """
    world_points = _warped(scene, world_points)
    loops = _texture(scene, 0, world_points, _BOWEL_TEXTURE_MM)
    gas_or_fluid = 1.0 / (1.0 + np.exp(-4.0 * (_texture(scene, 1, world_points, _BOWEL_TEXTURE_MM) - 1.0)))
    signal = list(table)
    bowel = table[Tissue.MATERNAL_ORGAN] + (table[Tissue.MATERNAL_BOWEL] - table[Tissue.MATERNAL_ORGAN]) / (
        1.0 + np.exp(-3.0 * loops)
    )
    signal[Tissue.MATERNAL_BOWEL] = bowel + gas_or_fluid * (table[Tissue.MATERNAL_FLUID] - bowel)
    maternal, coverage = paint(scene.maternal, world_points, signal, edge_mm)
    maternal += (1.0 - coverage) * table[Tissue.AIR]
    maternal *= 1.0 + _FINE_TEXTURE_AMPLITUDE * _texture(scene, 1, world_points, _FINE_TEXTURE_MM)

    in_cavity = scene.cavity.membership(world_points, edge_mm)
    placenta = in_cavity * _placenta_fraction(scene, world_points, edge_mm)
    maternal += placenta * (table[Tissue.PLACENTA] * (1.0 + 0.15 * _texture(scene, 0, world_points, 6.0)) - maternal)

    head_signal, head_coverage, brain = _sample_head(scene, volumes, fetal_points)
    body_signal, body_coverage = _paint_body(scene, fetal_points, table, edge_mm)
    fetus_signal = head_signal + (1.0 - head_coverage) * body_signal
    fetus_coverage = head_coverage + (1.0 - head_coverage) * body_coverage
    fetus_signal *= 1.0 + _FINE_TEXTURE_AMPLITUDE * _texture(scene, 1, fetal_points, _FINE_TEXTURE_MM)
    # The fetus lies in front of the placenta: it displaces fluid and placenta alike.
    visible = in_cavity * fetus_coverage
    image = maternal * (1.0 - visible) + in_cavity * fetus_signal
    return image.astype(np.float32), (in_cavity * brain).astype(np.float32)
