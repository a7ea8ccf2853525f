"""Random ranges of the label-to-image generator, in one frozen object (never in the body of a function)."""

from __future__ import annotations

from dataclasses import dataclass

from fetal_keras.choices import NORMALISATIONS


@dataclass(frozen=True)
class RenderConfig:
    """Ranges of everything :func:`fetal_keras.rendering.label_to_image.render_slabs` draws per slab.

    Intensities are on a unit scale before normalisation; sizes are in pixels of the slab (at about 1.1 mm per
    pixel, 27-118 px blobs are 30-130 mm).

    Attributes:
        t2_probability: share of slabs rendered with the realistic T2 contrast (jittered) instead of random means.
        t2_jitter: log-normal sd of the per-tissue jitter of the T2 contrast.
        mean_range: per-label mean intensity range (uniform), for the random contrasts.
        spread_max: within-label voxel noise sd is drawn uniformly in [0, spread_max] per label.
        subclasses: sub-classes per label (texture): each has its own intensity offset.
        subclass_sd_max: sd of the sub-class offsets is drawn uniformly in [0, subclass_sd_max] per slab.
        texture_cells: the texture field is smooth noise on this many cells per slab side.
        blobs: (fewest, most) non-anatomical shapes laid over the maternal background, each with its own label.
        blob_size_px: (smallest, largest) blob diameter.
        blob_roughness: how irregular blob outlines are (0: ellipses).
        blobs_over_fetal_body: the blobs also replace the fetal body outside the head (trunk, limbs, face, neck),
            not only the maternal tissues, so that no part of the surroundings keeps the simulator's anatomy.
        clutter_blobs: (fewest, most) small shapes laid over the same tissues as the blobs, on top of them, each with
            its own label: the small structures (bowel loops, limbs, vessels, organs) that fill real surroundings.
        clutter_size_px: (smallest, largest) clutter diameter.
        distractors: (fewest, most) fluid-filled round structures of brain size laid over the surroundings (never
            over the head: brain, skull, scalp): stomach, bladder, cysts, fluid pockets. Their core takes the mean of
            one of the brain's tissues, their wall that of the skull, so that a round bright blob with a dark rim is
            not enough to be a brain.
        distractor_size_px: (smallest, largest) distractor diameter (brain size at about 1.1 mm per pixel).
        distractor_rim_px: (thinnest, thickest) distractor wall.
        blur_sigma_px: (least, most) in-plane Gaussian blur (resolution loss, partial volume).
        air_max: air (no signal in MR) stays dark whatever the contrast: its mean is drawn in [0, air_max].
        normalisation: how each slab is normalised, as the stacks the model will see at deploy
            (``PreprocessConfig.normalisation``: ``"zscore"`` or ``"foreground"``).
    """

    t2_probability: float = 0.2
    t2_jitter: float = 0.1
    mean_range: tuple[float, float] = (0.0, 1.0)
    spread_max: float = 0.05
    subclasses: int = 3
    subclass_sd_max: float = 0.08
    texture_cells: int = 16
    blobs: tuple[int, int] = (8, 16)
    blob_size_px: tuple[float, float] = (27.0, 118.0)
    blob_roughness: float = 0.3
    blobs_over_fetal_body: bool = False
    clutter_blobs: tuple[int, int] = (0, 0)
    clutter_size_px: tuple[float, float] = (6.0, 24.0)
    distractors: tuple[int, int] = (0, 0)
    distractor_size_px: tuple[float, float] = (35.0, 90.0)
    distractor_rim_px: tuple[float, float] = (0.0, 4.0)
    blur_sigma_px: tuple[float, float] = (0.0, 1.2)
    air_max: float = 0.03
    normalisation: str = "zscore"

    @classmethod
    def body_surroundings(cls, normalisation: str = "zscore") -> RenderConfig:
        """Random shapes over the fetal body outside the head too, with 10-30 small clutter shapes on top
        (``TrainConfig.random_surroundings="body"``)."""
        return cls(normalisation=normalisation, blobs_over_fetal_body=True, clutter_blobs=(10, 30))

    @classmethod
    def with_distractors(cls, normalisation: str = "zscore") -> RenderConfig:
        """The maternal shapes plus 1-3 brain-sized fluid-filled round structures beside the head
        (``TrainConfig.random_surroundings="distractors"``)."""
        return cls(normalisation=normalisation, distractors=(1, 3))

    def __post_init__(self):
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}.")
        if not 0.0 <= self.t2_probability <= 1.0:
            raise ValueError(f"t2_probability must be in [0, 1], got {self.t2_probability}.")
        if not 0 <= self.blobs[0] <= self.blobs[1]:
            raise ValueError(f"blobs must be (fewest, most) with 0 <= fewest <= most, got {self.blobs}.")
        if not 0 <= self.clutter_blobs[0] <= self.clutter_blobs[1]:
            raise ValueError(
                f"clutter_blobs must be (fewest, most) with 0 <= fewest <= most, got {self.clutter_blobs}."
            )
        if not 0 <= self.distractors[0] <= self.distractors[1]:
            raise ValueError(f"distractors must be (fewest, most) with 0 <= fewest <= most, got {self.distractors}.")
        if not 0.0 < self.distractor_size_px[0] <= self.distractor_size_px[1]:
            raise ValueError(f"distractor_size_px must be (smallest, largest) > 0, got {self.distractor_size_px}.")
        if not 0.0 <= self.distractor_rim_px[0] <= self.distractor_rim_px[1]:
            raise ValueError(f"distractor_rim_px must be (thinnest, thickest) >= 0, got {self.distractor_rim_px}.")
        if not 0.0 < self.clutter_size_px[0] <= self.clutter_size_px[1]:
            raise ValueError(f"clutter_size_px must be (smallest, largest) > 0, got {self.clutter_size_px}.")
        if not 0.0 < self.blob_size_px[0] <= self.blob_size_px[1]:
            raise ValueError(f"blob_size_px must be (smallest, largest) > 0, got {self.blob_size_px}.")
        if self.subclasses < 1 or self.texture_cells < 2:
            raise ValueError("subclasses must be >= 1 and texture_cells >= 2.")
        if not 0.0 <= self.blur_sigma_px[0] <= self.blur_sigma_px[1]:
            raise ValueError(f"blur_sigma_px must be (least, most) >= 0, got {self.blur_sigma_px}.")
