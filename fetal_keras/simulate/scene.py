"""The whole simulated scene: the fetus (head grid and body shapes) lying in the uterus of a supine mother.

World frame: scanner coordinates in mm (LPS, as ITK): x to the mother's left, y posterior, z superior, origin at
the centre of her abdomen. The fetus is placed in the uterine cavity (cephalic in 70 % of pregnancies, else
breech) with a random rotation; its body shapes are in the fetal frame of ``head`` and move with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from fetal_keras.simulate.growth import uterus_semi_axes_mm
from fetal_keras.simulate.head import HeadModel
from fetal_keras.simulate.shapes import Ellipsoid, ellipsoid, rotation_between, rotation_matrix
from fetal_keras.simulate.tissues import Tissue

_TEXTURE_GRID = 48  # voxels per side of the periodic texture volumes


@dataclass(frozen=True)
class Scene:
    """Everything a stack can image. ``fetal_rotation`` maps fetal-frame vectors to world vectors."""

    head: HeadModel
    body: list[Ellipsoid]
    maternal: list[Ellipsoid]
    cavity: Ellipsoid
    placenta_direction: np.ndarray
    placenta_cos_angle: float
    placenta_thickness_mm: float
    fetal_rotation: np.ndarray
    head_centre_world: np.ndarray
    texture: np.ndarray
    warp_mm: float
    record: dict


def _fetal_body(head: HeadModel, rng: np.random.Generator) -> list[Ellipsoid]:
    """Face, eyes, neck, trunk (lungs, heart, liver, stomach, bladder, spine) and limbs, in the fetal frame."""
    width, length, height = head.biometry.brain_size_mm
    bpd = head.biometry.bpd_mm
    trunk_length = 1.4 * length * rng.uniform(0.9, 1.1)
    flexion = rotation_matrix((rng.uniform(-35, 10), rng.uniform(-10, 10), 0))
    neck = np.array([0.0, 0.1 * length, -0.55 * height])
    trunk_centre = neck + flexion @ np.array([0.0, 0.0, -0.5 * trunk_length - 0.1 * height])

    def in_trunk(tissue, local_centre, semi, rotation=None):
        rotation = flexion if rotation is None else flexion @ rotation
        return ellipsoid(tissue, trunk_centre + flexion @ np.asarray(local_centre), semi, rotation)

    t, b = trunk_length, bpd
    shapes = [
        in_trunk(Tissue.FETAL_SOFT_TISSUE, (0, 0, 0), (0.55 * b, 0.48 * b, 0.5 * t)),
        in_trunk(Tissue.FETAL_LUNG, (0.18 * b, 0.05 * b, 0.22 * t), (0.17 * b, 0.24 * b, 0.17 * t)),
        in_trunk(Tissue.FETAL_LUNG, (-0.18 * b, 0.05 * b, 0.22 * t), (0.17 * b, 0.24 * b, 0.17 * t)),
        in_trunk(Tissue.VESSEL, (0.04 * b, -0.14 * b, 0.16 * t), (0.14 * b, 0.13 * b, 0.1 * t)),
        in_trunk(Tissue.FETAL_LIVER, (-0.08 * b, -0.04 * b, -0.07 * t), (0.32 * b, 0.28 * b, 0.14 * t)),
        in_trunk(Tissue.FETAL_FLUID, (0.2 * b, -0.06 * b, -0.04 * t), (0.09 * b, 0.08 * b, 0.07 * t)),
        in_trunk(Tissue.FETAL_FLUID, (0.0, -0.12 * b, -0.4 * t), (0.08 * b, 0.08 * b, 0.06 * t)),
        in_trunk(Tissue.FETAL_BONE, (0.0, 0.3 * b, 0.0), (0.06 * b, 0.06 * b, 0.48 * t)),
    ]
    for side in (-1, 1):
        for level, reach in ((0.35, 0.3), (-0.45, 0.45)):  # arms at the shoulders, folded legs at the pelvis
            limb_rotation = rotation_matrix(rng.uniform(-80, 80, size=3))
            shapes.append(
                in_trunk(
                    Tissue.FETAL_SOFT_TISSUE,
                    (side * 0.45 * b, -0.35 * b, level * t) + rng.normal(0, 0.08 * b, 3),
                    (0.12 * b, 0.12 * b, reach * t),
                    limb_rotation,
                )
            )
    shapes += [
        ellipsoid(Tissue.FETAL_SOFT_TISSUE, neck, (0.27 * b, 0.27 * b, 0.3 * height)),
        ellipsoid(
            Tissue.FETAL_SOFT_TISSUE, (0, -0.38 * length, -0.32 * height), (0.3 * b, 0.22 * length, 0.3 * height)
        ),
        ellipsoid(Tissue.FETAL_FLUID, (0.17 * width, -0.5 * length, -0.14 * height), [0.07 * b] * 3),
        ellipsoid(Tissue.FETAL_FLUID, (-0.17 * width, -0.5 * length, -0.14 * height), [0.07 * b] * 3),
    ]
    return shapes


def _maternal_abdomen(semi_uterus: np.ndarray, rng: np.random.Generator) -> tuple[list[Ellipsoid], dict]:
    """Fat, muscle, bowel, spine, psoas, paraspinal muscles, great vessels, kidneys and bladder (world frame)."""
    fat = rng.uniform(10, 45)
    muscle = rng.uniform(6, 14)
    half_width = rng.uniform(150, 190)
    half_depth = max(rng.uniform(110, 150), semi_uterus[1] + fat + muscle + 40)
    infinite = 1e5  # the abdomen is an elliptic cylinder along z
    spine_y = half_depth - fat - rng.uniform(35, 50)
    z_kidney = rng.uniform(-60, 120)
    shapes = [
        ellipsoid(Tissue.MATERNAL_FAT, (0, 0, 0), (half_width, half_depth, infinite)),
        ellipsoid(Tissue.MATERNAL_MUSCLE, (0, 0, 0), (half_width - fat, half_depth - fat, infinite)),
        ellipsoid(Tissue.MATERNAL_BOWEL, (0, 0, 0), (half_width - fat - muscle, half_depth - fat - muscle, infinite)),
        ellipsoid(Tissue.MATERNAL_MUSCLE, (-32, spine_y - 5, 0), (18, 22, infinite)),
        ellipsoid(Tissue.MATERNAL_MUSCLE, (32, spine_y - 5, 0), (18, 22, infinite)),
        ellipsoid(Tissue.MATERNAL_MUSCLE, (-28, spine_y + 40, 0), (22, 18, infinite)),
        ellipsoid(Tissue.MATERNAL_MUSCLE, (28, spine_y + 40, 0), (22, 18, infinite)),
        ellipsoid(Tissue.MATERNAL_BONE, (0, spine_y, 0), (22, 19, infinite)),
        ellipsoid(Tissue.MATERNAL_MARROW, (0, spine_y, 0), (19, 16, infinite)),
        ellipsoid(Tissue.MATERNAL_BONE, (0, spine_y + 30, 0), (6, 12, infinite)),
        ellipsoid(Tissue.VESSEL, (-12, spine_y - 32, 0), (9, 9, infinite)),
        ellipsoid(Tissue.VESSEL, (16, spine_y - 30, 0), (11, 8, infinite)),
        ellipsoid(Tissue.MATERNAL_ORGAN, (-65, spine_y - 5, z_kidney), (26, 22, 55), rotation_matrix((0, 0, 20))),
        ellipsoid(Tissue.MATERNAL_ORGAN, (65, spine_y - 5, z_kidney + 15), (26, 22, 55), rotation_matrix((0, 0, -20))),
    ]
    organ_tissues = (Tissue.MATERNAL_ORGAN, Tissue.MATERNAL_BOWEL, Tissue.MATERNAL_MUSCLE, Tissue.MATERNAL_FLUID)
    inner = np.array([half_width - fat - muscle, half_depth - fat - muscle])
    for _ in range(rng.integers(6, 12)):  # loops of bowel, organs, vessels: the clutter around the uterus
        angle, distance = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0.1, 0.8))
        centre = (*(inner * distance * np.array([np.cos(angle), np.sin(angle)])), rng.uniform(-150, 150))
        tissue = organ_tissues[rng.choice(4, p=[0.45, 0.35, 0.1, 0.1])]
        shapes.append(ellipsoid(tissue, centre, rng.uniform(12, 45, size=3), rotation_matrix(rng.uniform(0, 180, 3))))
    record = {"fat_mm": fat, "muscle_mm": muscle, "abdomen_semi_axes_mm": [half_width, half_depth]}
    return shapes, record


def _head_position(semi_axes: np.ndarray, radius: float, margin_mm: float) -> tuple[float, np.ndarray]:
    """How far along the long axis a head of ``radius`` can sit in the cavity, and the lateral room left there.

    The head goes as far towards the pole as a sphere of ``radius`` plus ``margin_mm`` still fits inside the
    ellipsoidal cavity's cross-section (the fetal head lies low in the uterus, or high when breech).
    """
    for axial in np.linspace(max(semi_axes[2] - radius - margin_mm, 0.0), 0.0, 40):
        section = semi_axes[:2] * np.sqrt(max(1.0 - ((axial + radius) / semi_axes[2]) ** 2, 0.0))
        room = section - radius - margin_mm
        if (room >= 0).all():
            return float(axial), room
    return 0.0, np.zeros(2)


def draw_scene(head: HeadModel, rng: np.random.Generator) -> Scene:
    """Place the fetus and its mother: uterus, placenta, maternal abdomen, fetal pose."""
    ga = head.biometry.ga_weeks
    biometry = head.biometry
    head_radius = max(biometry.brain_size_mm) / 2 + biometry.extra_axial_csf_mm + biometry.skull_mm + biometry.scalp_mm
    # The cavity must hold the head whole (the fetus displaces fluid and placenta, it is never cut by them).
    semi_uterus = np.maximum(
        np.asarray(uterus_semi_axes_mm(ga, rng)), [head_radius + 12, head_radius + 12, 1.6 * head_radius]
    )
    maternal, record = _maternal_abdomen(semi_uterus, rng)
    half_depth = record["abdomen_semi_axes_mm"][1]
    wall = rng.uniform(5, 10)
    uterus_rotation = rotation_matrix(rng.uniform(-15, 15, size=3))
    uterus_centre = np.array(
        [rng.normal(0, 10), -(half_depth - record["fat_mm"] - record["muscle_mm"] - wall - semi_uterus[1]), 0.0]
    )
    cavity = ellipsoid(Tissue.AMNIOTIC_FLUID, uterus_centre, semi_uterus, uterus_rotation)
    bladder_centre = uterus_centre + uterus_rotation @ [0, -0.3 * semi_uterus[1], -semi_uterus[2] - wall - 25]
    maternal += [
        ellipsoid(Tissue.MATERNAL_FLUID, bladder_centre, rng.uniform(20, 45, size=3)),
        cavity.grown(wall, Tissue.UTERINE_WALL),
        cavity,
    ]
    placenta_direction = rng.normal(size=3)
    placenta_direction /= np.linalg.norm(placenta_direction)

    cephalic = rng.uniform() < 0.7
    pole = uterus_rotation @ np.array([0.0, 0.0, -1.0 if cephalic else 1.0])
    axial, lateral_room = _head_position(semi_uterus, head_radius, margin_mm=rng.uniform(4, 12))
    lateral = np.clip(rng.normal(0, 0.4, 2), -1, 1) * lateral_room
    head_centre = uterus_centre + pole * axial + uterus_rotation @ np.array([lateral[0], lateral[1], 0.0])
    spin = rotation_matrix((rng.uniform(-25, 25), rng.uniform(-25, 25), rng.uniform(0, 360)))
    fetal_rotation = rotation_between([0, 0, 1], pole) @ spin
    texture = ndimage.gaussian_filter(
        rng.normal(size=(5,) + (_TEXTURE_GRID,) * 3), sigma=(0, 1.5, 1.5, 1.5), mode="wrap"
    )
    texture /= texture.std(axis=(1, 2, 3), keepdims=True)
    placenta_thickness = rng.uniform(20, 40)
    warp = rng.uniform(3, 8)
    placenta_angle = rng.uniform(45, 70)
    record |= {
        "uterus_semi_axes_mm": semi_uterus.tolist(),
        "uterine_wall_mm": wall,
        "placenta_thickness_mm": placenta_thickness,
        "placenta_half_angle_deg": placenta_angle,
        "presentation": "cephalic" if cephalic else "breech",
        "maternal_warp_mm": warp,
        "fetal_head_centre_mm": head_centre.tolist(),
        "fetal_rotation": fetal_rotation.tolist(),
    }
    return Scene(
        head=head,
        body=_fetal_body(head, rng),
        maternal=maternal,
        cavity=cavity,
        placenta_direction=placenta_direction,
        placenta_cos_angle=float(np.cos(np.deg2rad(placenta_angle))),
        placenta_thickness_mm=float(placenta_thickness),
        fetal_rotation=fetal_rotation,
        head_centre_world=head_centre,
        texture=texture.astype(np.float32),
        warp_mm=float(warp),
        record=record,
    )
