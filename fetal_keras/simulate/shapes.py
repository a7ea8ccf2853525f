"""Soft ellipsoids: the analytic shapes of the fetal body and the maternal abdomen, with partial-volume edges."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fetal_keras.simulate.tissues import Tissue


def rotation_matrix(angles_deg) -> np.ndarray:
    """Rotation matrix from (x, y, z) angles in degrees, applied in x, then y, then z order."""
    ax, ay, az = np.deg2rad(np.asarray(angles_deg, dtype=float))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def rotation_between(a, b) -> np.ndarray:
    """The smallest rotation taking unit vector ``a`` onto unit vector ``b``."""
    a, b = np.asarray(a, float) / np.linalg.norm(a), np.asarray(b, float) / np.linalg.norm(b)
    axis, cos = np.cross(a, b), float(np.dot(a, b))
    if np.linalg.norm(axis) < 1e-9:
        if cos > 0:
            return np.eye(3)
        # Opposite vectors: half a turn about any axis perpendicular to a.
        normal = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        normal /= np.linalg.norm(normal)
        return 2.0 * np.outer(normal, normal) - np.eye(3)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + k + k @ k / (1 + cos)


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid of one tissue: centre and semi-axes in mm, rotation's columns are its axes in the frame."""

    tissue: Tissue
    centre: np.ndarray
    semi_axes: np.ndarray
    rotation: np.ndarray

    def radius(self, points: np.ndarray) -> np.ndarray:
        """Normalised radius of ``points`` ``[n, 3]``: < 1 inside, 1 on the surface."""
        to_unit = (self.rotation / self.semi_axes).astype(points.dtype)
        local = points @ to_unit - (self.centre @ to_unit).astype(points.dtype)
        return np.sqrt(np.einsum("ij,ij->i", local, local))

    def membership(self, points: np.ndarray, edge_mm: float = 1.0) -> np.ndarray:
        """Fraction of each point inside, ramping linearly over ``edge_mm`` across the surface (partial volume)."""
        scale = float(np.min(self.semi_axes)) / edge_mm
        return np.clip(0.5 + scale - scale * self.radius(points), 0.0, 1.0)

    def grown(self, margin_mm: float, tissue: Tissue | None = None) -> Ellipsoid:
        """The same ellipsoid with every semi-axis longer by ``margin_mm`` (shorter if negative)."""
        return Ellipsoid(tissue or self.tissue, self.centre, np.maximum(self.semi_axes + margin_mm, 1.0), self.rotation)


def ellipsoid(tissue: Tissue, centre, semi_axes, rotation=None) -> Ellipsoid:
    """Build an :class:`Ellipsoid` from plain sequences (rotation: identity by default)."""
    rotation = np.eye(3) if rotation is None else np.asarray(rotation, float)
    return Ellipsoid(tissue, np.asarray(centre, float), np.asarray(semi_axes, float), rotation)


def bounding_sphere(shapes: list[Ellipsoid]) -> tuple[np.ndarray, float]:
    """Centre and radius (mm) of a sphere holding every shape."""
    centre = np.mean([shape.centre for shape in shapes], axis=0)
    radius = max(np.linalg.norm(shape.centre - centre) + np.max(shape.semi_axes) for shape in shapes)
    return centre, float(radius)


def paint(shapes: list[Ellipsoid], points: np.ndarray, signal: np.ndarray, edge_mm: float = 1.0):
    """Composite shapes in order (later ones on top) at ``points``.

    Returns:
        (signal, coverage) per point. The signal is premultiplied by coverage (uncovered space contributes 0),
        so it can be laid over a background as ``background * (1 - coverage) + signal``.
    """
    value = np.zeros(len(points), np.float32)
    coverage = np.zeros(len(points), np.float32)
    points = points.astype(np.float32)
    for shape in shapes:
        weight = shape.membership(points, edge_mm).astype(np.float32)
        value += weight * (signal[shape.tissue] - value)
        coverage += weight * (1.0 - coverage)
    return value, coverage
