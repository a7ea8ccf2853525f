"""Start training from trained weights (fine-tuning): find them, check them layer by layer, load them, freeze.

``TrainConfig.init_from`` names the starting weights as ``fetal-keras predict --model`` names a model:
``pretrained`` / ``pretrained:<version>`` (the packaged model; of a packaged pair, the role the run trains), a run
folder (its ``checkpoints/best.keras``), a pair folder (``pair.json``; the role the run trains) or a ``.keras`` file.
What preprocessing and network the starting model was trained with is inherited (:func:`inherited_settings`), so a
fine-tuned model sees its inputs as the starting model did.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fetal_keras.models.pretrained import (
    PAIR_FILE,
    PAIR_ROLES,
    is_pair,
    packaged_name,
    read_pair_file,
    sha256_of,
    verified_pair,
    verified_weights,
)
from fetal_keras.models.train_config import TrainConfig, config_of_model

# Settings a fine-tuned model must share with its starting model: the network and how its inputs are prepared.
INHERITED_SETTINGS = (
    "preset",
    "base_filters",
    "target_spacing_mm",
    "clip_percentiles",
    "normalisation",
    "crop_margin_mm",
)


@dataclass(frozen=True)
class InitialWeights:
    """Where a run's starting weights come from.

    Attributes:
        spec: what the user named (``pretrained``, a run folder, a pair folder, a ``.keras`` file).
        path: the ``.keras`` file loaded.
        sha256: its SHA-256 (checked against the model card for packaged models).
        config: the starting model's training config, or None when none goes with the file (packaged v1).
    """

    spec: str
    path: Path
    sha256: str
    config: TrainConfig | None

    def record(self) -> dict:
        """What ``config.json`` records of the starting weights."""
        return {"spec": self.spec, "path": str(self.path), "sha256": self.sha256}


def _role_of_pair(spec: str, task: str | None) -> str:
    if task not in PAIR_ROLES:
        raise ValueError(
            f"{spec} is a localiser + segmenter pair: say which role the run fine-tunes (task 'localiser' or "
            f"'segmenter'; got {task!r})."
        )
    return task


def resolve_initial_weights(spec: str | Path, task: str | None) -> InitialWeights:
    """The ``.keras`` file, SHA-256 and training config of the starting weights ``spec`` names, for a run of ``task``
    (the role taken from a pair; None when not chosen).

    Raises:
        FileNotFoundError: if ``spec`` names nothing loadable.
        ValueError: for a pair without a role to take (task ``whole``), a pair whose role averages several models,
            a packaged file whose checksum differs from its card's, or a SavedModel (it holds no Keras weights to
            fine-tune).
    """
    text = str(spec)
    name = packaged_name(text)
    if name is not None:
        if is_pair(name):
            role = _role_of_pair(text, task)
            folder, checksums = verified_pair(name)
            path = folder / role / "model.keras"
            return InitialWeights(text, path, checksums[role], TrainConfig.load(path.parent / "config.json"))
        path, sha256 = verified_weights(name)
        return InitialWeights(text, path, sha256, None)
    path = Path(spec)
    if (path / PAIR_FILE).is_file():
        role = _role_of_pair(text, task)
        paths = read_pair_file(path)[role]
        if len(paths) > 1:
            raise ValueError(
                f"{spec} deploys the {role} as the average of {len(paths)} models "
                f"({', '.join(map(str, paths))}): start from one of them."
            )
        path = paths[0]
    elif path.is_dir():
        candidates = [path / "checkpoints" / "best.keras", path / "checkpoints" / "last.keras", path / "model.keras"]
        found = [candidate for candidate in candidates if candidate.is_file()]
        if not found:
            raise FileNotFoundError(
                f"{path} holds no Keras weights to start from (looked for {', '.join(str(c) for c in candidates)}); "
                "a SavedModel cannot be fine-tuned: name the run folder or its .keras file."
            )
        path = found[0]
    if not path.is_file():
        raise FileNotFoundError(f"Starting weights {spec}: {path} does not exist.")
    if path.suffix != ".keras":
        raise ValueError(f"Starting weights {spec}: {path} is not a .keras file.")
    return InitialWeights(text, path, sha256_of(path), config_of_model(path))


def inherited_settings(spec: str | Path, task: str | None = None) -> dict:
    """``init_from``, ``task`` and the network and preprocessing settings (``INHERITED_SETTINGS``) of the starting
    model, for a run of ``task`` (None: the starting model's own task; a pair needs one of its roles).

    Settings the starting model's config does not record (packaged v1) are left out: TrainConfig's defaults are
    what it was trained with. ``crop_margin_mm`` is inherited by segmenters only.
    """
    initial = resolve_initial_weights(spec, task)
    if initial.config is None:
        return {"init_from": str(spec), "task": task or "whole"}
    task = task or initial.config.task
    settings = {name: getattr(initial.config, name) for name in INHERITED_SETTINGS}
    if task != "segmenter":
        settings.pop("crop_margin_mm")
    return settings | {"init_from": str(spec), "task": task}


def fine_tuning_config(train_csv: str, val_csv: str, run_dir: str, init_from: str, **settings) -> TrainConfig:
    """A ``TrainConfig`` that starts from ``init_from`` with its network and preprocessing; ``settings`` override.

    ``settings`` must name the ``task`` when ``init_from`` is a pair (which role to fine-tune).
    """
    inherited = inherited_settings(init_from, settings.get("task"))
    return TrainConfig(train_csv, val_csv, run_dir, **(inherited | settings))


def load_initial_weights(model, initial: InitialWeights) -> None:
    """Copy the starting weights into ``model`` (built, same architecture), after checking every variable's shape.

    Raises:
        ValueError: naming the first variable whose shape differs (or the counts, when they differ).
    """
    from fetal_keras.deploy.loading import load_keras_file  # TensorFlow only when training

    source = load_keras_file(initial.path)
    for index, (target, given) in enumerate(zip(model.weights, source.weights, strict=False)):
        if tuple(target.shape) != tuple(given.shape):
            raise ValueError(
                f"Cannot start from {initial.path}: its variable {index} ({given.path}) has shape "
                f"{tuple(given.shape)}, where this run's network ({model.name}) has {target.path} of shape "
                f"{tuple(target.shape)}. Use the starting model's preset and base filters."
            )
    if len(model.weights) != len(source.weights):
        raise ValueError(
            f"Cannot start from {initial.path}: it has {len(source.weights)} variables, this run's network "
            f"({model.name}) {len(model.weights)}. Use the starting model's preset and base filters."
        )
    model.set_weights(source.get_weights())
