"""Stack geometry and slice-by-slice acquisition of the scene with a slice profile and per-slice motion.

A stack is planned as a radiographer does: slices roughly axial, coronal or sagittal to the fetal brain,
field of view centred near the fetal head. Every slice samples the scene under that slice's fetal motion, and
its signal is the slice-profile-weighted mean of several samples across the slice thickness (Gaussian profile,
FWHM = thickness), so thick slices show real partial-volume blur. The brain mask is the same weighted brain
fraction thresholded at 0.5: it follows exactly the anatomy each slice saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fetal_keras.simulate.motion import rigid
from fetal_keras.simulate.render import HeadVolumes, label_points, render_points
from fetal_keras.simulate.scene import Scene
from fetal_keras.simulate.shapes import rotation_matrix

ORIENTATIONS = ("axial", "coronal", "sagittal")
# In-plane axes and slice normal of each orientation, in the fetal frame (x left, y posterior, z superior).
_PLANE_AXES = {
    "axial": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "coronal": ((1, 0, 0), (0, 0, 1), (0, 1, 0)),
    "sagittal": ((0, 1, 0), (0, 0, 1), (1, 0, 0)),
}


@dataclass(frozen=True)
class StackPlan:
    """Voxel grid of one stack: ``direction`` columns are the world directions of the x, y (in-plane) and slice axes."""

    orientation: str
    size: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    slice_thickness_mm: float
    origin_mm: np.ndarray
    direction: np.ndarray

    def record(self) -> dict:
        """JSON-ready description."""
        return {
            "orientation": self.orientation,
            "size": list(self.size),
            "spacing_mm": list(self.spacing_mm),
            "slice_thickness_mm": self.slice_thickness_mm,
            "origin_mm": self.origin_mm.tolist(),
            "direction": self.direction.ravel().tolist(),
        }


def plan_stack(
    scene: Scene,
    orientation: str,
    rng: np.random.Generator,
    in_plane_mm: tuple[float, float],
    field_of_view_mm: tuple[float, float],
    matrix: tuple[int, int],
    thickness_mm: tuple[float, float],
    slices: tuple[int, int],
) -> StackPlan:
    """Plan one stack; every range is (low, high), drawn uniformly.

    Args:
        scene: the scene (fetal pose and head size).
        orientation: ``"axial"``, ``"coronal"`` or ``"sagittal"`` relative to the fetal brain.
        rng: the stack's random generator.
        in_plane_mm: in-plane pixel size range.
        field_of_view_mm: in-plane field of view range; the matrix is FOV / pixel, clipped to ``matrix``.
        matrix: range of the in-plane matrix size.
        thickness_mm: slice thickness range (slices are contiguous: spacing = thickness).
        slices: range of the number of slices; enough to cover the head and a margin when possible.
    """
    if orientation not in _PLANE_AXES:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}.")
    pixel = rng.uniform(*in_plane_mm)
    size_xy = [int(np.clip(round(rng.uniform(*field_of_view_mm) / pixel), *matrix)) // 2 * 2 for _ in range(2)]
    thickness = rng.uniform(*thickness_mm)
    head_extent = float(np.max(scene.head.biometry.brain_size_mm)) + 2 * 8.0
    n_slices = int(np.clip(np.ceil((head_extent + rng.uniform(0, 50)) / thickness), *slices))

    tilt = rotation_matrix(rng.normal(0.0, 7.0, size=3))
    axes = scene.fetal_rotation @ tilt @ np.array(_PLANE_AXES[orientation], dtype=float).T
    if rng.uniform() < 0.5:  # scanners and converters write both handednesses
        axes[:, 0] *= -1
    spacing = np.array([pixel, pixel, thickness])
    size = np.array(size_xy + [n_slices])
    centre = scene.head_centre_world + axes @ (rng.normal(0.0, [12.0, 12.0, 4.0]))
    origin = centre - axes @ ((size - 1) / 2 * spacing)
    return StackPlan(
        orientation=orientation,
        size=tuple(int(v) for v in size),
        spacing_mm=tuple(float(v) for v in spacing),
        slice_thickness_mm=float(thickness),
        origin_mm=origin,
        direction=axes,
    )


def slice_profile(thickness_mm: float, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (mm, along the slice normal) and weights of a Gaussian slice profile with FWHM = thickness."""
    sigma = thickness_mm / 2.355
    offsets = np.linspace(-0.8, 0.8, samples) * thickness_mm if samples > 1 else np.zeros(1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    return offsets, weights / weights.sum()


def _world_and_fetal_points(scene: Scene, world: np.ndarray, pose: tuple[np.ndarray, np.ndarray]):
    """``world`` points and the same points in the fetal frame under the slice's rigid ``pose`` (rotation, shift)."""
    rotation, translation = pose
    return world, ((world - scene.head_centre_world) @ scene.fetal_rotation - translation) @ rotation


def acquire(
    scene: Scene,
    volumes: HeadVolumes,
    table: np.ndarray,
    plan: StackPlan,
    motion: np.ndarray,
    breathing: np.ndarray,
    profile_samples: int,
    labels_only: bool = False,
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
    """Acquire every slice of ``plan``.

    Returns:
        (signal, brain fraction), each ``[z, y, x]`` float32 on the stack's grid (both None with
        ``labels_only``: about six times faster), and the tissue label map ``[z, y, x]`` uint8 at the centre of each
        slice (the same motion; no partial volume across the slice).
    """
    nx, ny, nz = plan.size
    axes, spacing = plan.direction, np.asarray(plan.spacing_mm)
    j, i = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    in_plane = (i.reshape(-1, 1) * spacing[0]) * axes[:, 0] + (j.reshape(-1, 1) * spacing[1]) * axes[:, 1]
    offsets, weights = slice_profile(plan.slice_thickness_mm, profile_samples)
    edge_mm = float(spacing[0])
    signal = np.zeros((nz, ny, nx), np.float32)
    brain = np.zeros((nz, ny, nx), np.float32)
    labels = np.zeros((nz, ny, nx), np.uint8)
    for position in range(nz):
        pose = rigid(motion[position])
        slice_centre = plan.origin_mm + in_plane + position * spacing[2] * axes[:, 2] - breathing[position]
        for offset, weight in zip(offsets, weights, strict=True) if not labels_only else ():
            world, fetal = _world_and_fetal_points(scene, slice_centre + offset * axes[:, 2], pose)
            sample, brain_fraction = render_points(scene, volumes, table, world, fetal, edge_mm)
            signal[position] += weight * sample.reshape(ny, nx)
            brain[position] += weight * brain_fraction.reshape(ny, nx)
        labels[position] = label_points(scene, *_world_and_fetal_points(scene, slice_centre, pose), edge_mm).reshape(
            ny, nx
        )
    return (None, None, labels) if labels_only else (signal, brain, labels)
