"""One frozen dataclass with every training setting, saved as ``RUN/config.json`` and reloadable from it."""

from __future__ import annotations

import dataclasses
import datetime
import json
import subprocess
import typing
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fetal_keras import __version__
from fetal_keras.choices import (
    AUGMENTATIONS,
    IMAGE_SOURCES,
    LEARNING_RATE_SCHEDULES,
    LOSSES,
    MODEL_PRESETS,
    NORMALISATIONS,
    OPTIMIZERS,
    STRATEGIES,
    SURROUNDINGS,
    TASKS,
)
from fetal_keras.files import write_json

_RECORDED_PACKAGES = ("tensorflow", "keras", "SimpleITK", "numpy", "scikit-learn", "nilearn")

# Settings each task fills when they are left as None.
TASK_DEFAULTS = {
    "localiser": {"target_spacing_mm": 3.0},
    "segmenter": {"target_spacing_mm": 1.1, "crop_margin_mm": 20.0},
}


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run.

    The defaults are fetal_keras' recipe; the original's is ``optimizer="sgd", learning_rate=0.01,
    momentum=0.9, batch_size=10, loss="cross_entropy", augmentation="original", preset="fetal_fcn"``.
    ``batch_size`` is the global batch, split over the replicas of a distribution strategy. ``max_minutes``
    stops training early, after the last epoch that fits in that many minutes of this invocation.
    ``image_source="labels"`` trains on images rendered on the fly from the training cohort's tissue label maps
    (its ``labels`` column), each slab with a fresh random contrast; validation always uses the images.
    ``random_surroundings`` says what the rendering's random background shapes replace: ``"maternal"`` tissues
    only, ``"body"``: the fetal body outside the head too, with 10-30 small clutter shapes on top, or
    ``"distractors"``: the maternal tissues plus 1-3 brain-sized fluid-filled round structures beside the head.

    ``task`` says which model this is: ``"whole"`` segments whole stacks on its own (as the original did);
    ``"localiser"`` finds the fetal head on whole slices at a coarse spacing (default 3 mm, so a slab covers the
    whole field of view); ``"segmenter"`` segments a crop around the head (default 1.1 mm, ``crop_margin_mm`` 20:
    trained and validated on crops around the brain mask, deployed on crops around what the localiser found). The
    defaults fill only settings left as None.

    ``init_from`` starts from trained weights instead of random ones (fine-tuning; see
    ``fetal_keras.training.initial_weights``: build the config with its ``fine_tuning_config`` to inherit the
    starting model's network and preprocessing). ``freeze_encoder`` then keeps the encoder's weights and batch-norm
    statistics fixed and trains the decoder only (for very few stacks). ``l2sp_strength`` > 0 pulls every convolution
    kernel toward its starting value instead (L2-SP, ``fetal_keras.models.weight_anchor``).

    ``rehearsal_csv`` (fine-tuning): another labelled cohort (e.g. simulated stacks like those the starting model
    learned from) of which every batch holds a ``rehearsal_share`` (rounded, at least one slab), so that the model
    keeps seeing what it should not forget; never validated on.

    ``learning_rate_schedule="cosine"`` anneals the learning rate to 0 by the last epoch or the end of
    ``max_minutes``, whichever comes first.

    ``validation_localiser`` (segmenters): validate on crops around what this localiser finds (as ``fetal-keras
    predict --localiser`` deploys) instead of around the manual masks, brain outside a crop counting as missed, so
    that the validation Dice is the one the pair will reach.

    ``slab_size`` is the in-plane size in pixels of the training (and patch-validation) slabs, a multiple of 8 (the
    networks' total stride): whole-volume validation and deploy run on whole slices whatever it is, so a smaller
    slab trains faster (cost grows with its area) while the model still sees the whole slice at deploy.
    """

    train_csv: str
    val_csv: str
    run_dir: str
    preset: str = "unet"
    base_filters: int = 16
    epochs: int = 20
    steps_per_epoch: int = 100
    batch_size: int = 10
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    learning_rate_schedule: str = "constant"
    momentum: float = 0.9
    loss: str = "cross_entropy+dice"
    seed: int = 42
    deterministic: bool = False
    mixed_precision: bool = False
    strategy: str = "auto"
    augmentation: str = "default"
    slabs_per_stack: int = 20
    slab_size: int = 128
    brain_fraction: float = 0.5
    validation_every: int = 1
    max_minutes: float | None = None
    validation_slabs_per_stack: int = 10
    brain_labels: tuple[int, ...] | None = None
    target_spacing_mm: float | None = None
    clip_percentiles: tuple[float, float] | None = None
    image_source: str = "images"
    random_surroundings: str = "maternal"
    normalisation: str = "zscore"
    task: str = "whole"
    crop_margin_mm: float | None = None
    init_from: str | None = None
    freeze_encoder: bool = False
    l2sp_strength: float = 0.0
    validation_localiser: str | None = None
    monitor_csv: str | None = None
    rehearsal_csv: str | None = None
    rehearsal_share: float = 0.0

    def __post_init__(self):
        for name, value in TASK_DEFAULTS.get(self.task, {}).items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.crop_margin_mm is not None and self.task != "segmenter":
            raise ValueError(f"crop_margin_mm is a segmenter's setting; this run's task is {self.task!r}.")
        for name, allowed in (
            ("preset", MODEL_PRESETS),
            ("optimizer", OPTIMIZERS),
            ("loss", LOSSES),
            ("strategy", STRATEGIES),
            ("augmentation", AUGMENTATIONS),
            ("image_source", IMAGE_SOURCES),
            ("random_surroundings", SURROUNDINGS),
            ("normalisation", NORMALISATIONS),
            ("task", TASKS),
            ("learning_rate_schedule", LEARNING_RATE_SCHEDULES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}.")
        for name in ("epochs", "steps_per_epoch", "batch_size", "base_filters", "slabs_per_stack", "validation_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.slab_size < 16 or self.slab_size % 8:
            raise ValueError(f"slab_size must be a multiple of 8 of at least 16 pixels, got {self.slab_size}.")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}.")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes must be positive, got {self.max_minutes}.")
        if self.validation_localiser is not None and self.task != "segmenter":
            raise ValueError(f"validation_localiser is a segmenter's setting; this run's task is {self.task!r}.")
        if self.freeze_encoder and not self.init_from:
            raise ValueError("freeze_encoder keeps trained encoder weights: it needs init_from.")
        if self.l2sp_strength < 0:
            raise ValueError(f"l2sp_strength must be at least 0, got {self.l2sp_strength}.")
        if self.l2sp_strength and not self.init_from:
            raise ValueError("l2sp_strength pulls toward starting weights: it needs init_from.")
        if not 0.0 <= self.rehearsal_share < 1.0:
            raise ValueError(f"rehearsal_share must be in [0, 1), got {self.rehearsal_share}.")
        if bool(self.rehearsal_csv) != (self.rehearsal_share > 0):
            raise ValueError("rehearsal_csv and a rehearsal_share above 0 go together: give both or neither.")
        if self.rehearsal_csv and not 1 <= self.rehearsed_per_batch < self.batch_size:
            raise ValueError(
                f"rehearsal_share {self.rehearsal_share} of a batch of {self.batch_size} leaves no slab for one of "
                "the two cohorts: use a batch of at least 2 and a share that rounds to fewer slabs than the batch."
            )

    @property
    def rehearsed_per_batch(self) -> int:
        """Slabs of every training batch drawn from ``rehearsal_csv`` (0 without one)."""
        return max(1, round(self.batch_size * self.rehearsal_share)) if self.rehearsal_csv else 0

    @property
    def augment(self):
        """The ``AugmentConfig`` this config names."""
        from fetal_keras.data.augment import AugmentConfig  # TensorFlow only when training

        return {
            "default": AugmentConfig(),
            "anatomy": AugmentConfig.anatomy(),
            "original": AugmentConfig.original(),
            "none": AugmentConfig.none(),
        }[self.augmentation]

    @property
    def render(self):
        """The ``RenderConfig`` of training images rendered from label maps, or None to train on the images."""
        from fetal_keras.rendering.config import RenderConfig

        if self.image_source != "labels":
            return None
        if self.random_surroundings == "body":
            return RenderConfig.body_surroundings(self.normalisation)
        if self.random_surroundings == "distractors":
            return RenderConfig.with_distractors(self.normalisation)
        return RenderConfig(normalisation=self.normalisation)

    @property
    def preprocess(self):
        """The ``PreprocessConfig`` of every stack this run trains on, and that its model must be deployed with."""
        from fetal_keras.data.preprocess import PreprocessConfig

        return PreprocessConfig(
            self.clip_percentiles,
            self.target_spacing_mm,
            brain_labels=self.brain_labels,
            normalisation=self.normalisation,
            crop_margin_mm=self.crop_margin_mm,
        )

    def save(self, path: str | Path, initial_weights: dict | None = None) -> Path:
        """Write the config with package versions, git commit and time (atomically); ``initial_weights`` records
        where the starting weights came from (path and SHA-256)."""
        record = {
            "config": dataclasses.asdict(self),
            **({"initial_weights": initial_weights} if initial_weights else {}),
            **provenance(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        write_json(path, record)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Re-create the config saved in ``path`` (a ``config.json``)."""
        record = json.loads(Path(path).read_text())
        values = record.get("config", record)
        hints = typing.get_type_hints(cls)
        unknown = set(values) - set(hints)
        if unknown:
            raise ValueError(f"{path} has settings this version does not know: {sorted(unknown)}.")
        return cls(**{name: _from_json(value, hints[name]) for name, value in values.items()})


def config_of_model(path: str | Path) -> TrainConfig | None:
    """The training config that goes with a model: ``config.json`` in a run or model folder, beside a ``.keras``
    file or one folder above it (a run's ``checkpoints/best.keras``), in a SavedModel folder or two folders above
    it (a run's ``saved_model/<timestamp>/`` exported before exports carried their config); None if there is none."""
    path = Path(path)
    if path.is_dir():
        folders = [path, path.parent.parent] if (path / "saved_model.pb").is_file() else [path]
    else:
        folders = [path.parent, path.parent.parent]
    for folder in folders:
        if (folder / "config.json").is_file():
            return TrainConfig.load(folder / "config.json")
    return None


def provenance() -> dict:
    """What produced a result: ``fetal_keras_version``, ``git_commit`` (None outside a git checkout) and
    ``package_versions``."""
    return {"fetal_keras_version": __version__, "git_commit": _git_commit(), "package_versions": _package_versions()}


def _from_json(value, hint):
    """JSON gives lists where the config holds tuples."""
    if isinstance(value, list) and "tuple" in str(hint):
        return tuple(value)
    return value


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None


def _package_versions() -> dict[str, str | None]:
    versions = {}
    for package in _RECORDED_PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return versions
