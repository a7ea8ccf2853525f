"""Load a model for inference: the packaged pretrained model, a run folder, a SavedModel folder or a ``.keras`` file."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

# Imported for their registrations: a .keras file names fetal_keras' custom layers, initialisers, losses and
# metrics, and Keras finds them only once their modules have run (a fresh process has not imported them).
import fetal_keras.models.losses
import fetal_keras.models.metrics
import fetal_keras.models.networks  # noqa: F401
from fetal_keras.data.preprocess import PreprocessConfig
from fetal_keras.deploy.inference import AveragedPredictor
from fetal_keras.deploy.localise import LocalisedSegmenter
from fetal_keras.models.pretrained import (
    PAIR_FILE,
    PRETRAINED_SPEC,
    SAVED_MODEL_INFO,
    is_pair,
    packaged_name,
    read_pair,
    sha256_of,
    sha256_of_folder,
    verified_pair,
    verified_weights,
)
from fetal_keras.models.train_config import config_of_model

DEFAULT_STRIDE = 8


class SavedModelPredictor:
    """An exported SavedModel used like a Keras model by ``fetal_keras.deploy.inference``."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._loaded = tf.saved_model.load(str(self.folder))  # keep it: its variables live with it
        info = self.folder / SAVED_MODEL_INFO
        self.stride = json.loads(info.read_text())["stride"] if info.exists() else DEFAULT_STRIDE

    def __call__(self, slabs, training: bool = False):
        return self._loaded.serve(tf.constant(np.asarray(slabs, np.float32)))


def newest_saved_model(root: str | Path) -> Path:
    """The newest export under ``root``: folders are named by UTC timestamp, so the largest name is the newest
    (modification time breaks ties and orders folders named otherwise).

    Raises:
        FileNotFoundError: if ``root`` holds no SavedModel.
    """
    exports = [folder for folder in Path(root).iterdir() if (folder / "saved_model.pb").is_file()]
    if not exports:
        raise FileNotFoundError(f"{root} holds no SavedModel (no <folder>/saved_model.pb).")
    return max(exports, key=lambda folder: (folder.name[:1].isdigit(), folder.name, folder.stat().st_mtime))


def load_keras_file(path: Path) -> keras.Model:
    """A fetal_keras model from a ``.keras`` file, for inference: loaded with ``safe_mode=True`` (no code from the
    file runs) and without its training state (``compile=False``: loss, metrics and optimizer are not needed).

    Raises:
        ValueError: if the file is not a model fetal_keras can load (named in the message).
    """
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except (ValueError, OSError, TypeError, KeyError) as error:
        raise ValueError(f"{path} cannot be loaded as a fetal_keras model: {error}") from None
    inputs = tuple(model.inputs[0].shape) if getattr(model, "inputs", None) else None
    outputs = tuple(model.outputs[0].shape) if getattr(model, "outputs", None) else None
    if inputs is None or len(inputs) != 5 or inputs[1] != 3 or inputs[-1] != 1 or outputs[-1] != 2:
        raise ValueError(
            f"{path} is not a fetal_keras slab model: it maps {inputs} to {outputs}, where [batch, 3, y, x, 1] to "
            "[batch, 3, y, x, 2] brain probabilities is expected."
        )
    return model


def load_single(spec: str | Path, role: str | None = None):
    """(predictor, preprocessing, description, task) of one model (see :func:`load_predictor`); ``role``: the role
    it plays in a pair, which names that model of a packaged pair (``--localiser pretrained``)."""
    name = packaged_name(spec)
    if name is not None and is_pair(name):
        if role is None:
            raise ValueError(f"{spec} ({name}) is a localiser + segmenter pair, not one model.")
        folder, checksums = verified_pair(name)
        path = folder / role / "model.keras"
        return (
            load_keras_file(path),
            config_of_model(path).preprocess,
            f"{name} {role} (sha256 {checksums[role]})",
            role,
        )
    if name is not None:
        weights, sha256 = verified_weights(name)
        return load_keras_file(weights), PreprocessConfig(), f"{name} (sha256 {sha256})", "whole"
    path = Path(spec)
    config = config_of_model(path) if path.exists() else None
    preprocess, task = (config.preprocess, config.task) if config else (PreprocessConfig(), "whole")
    if config is None and path.exists():
        warnings.warn(
            f"No config.json found for {path} (in its folder, or in the run folder above it): it is deployed with "
            "the default preprocessing (native spacing, z-score, task 'whole'); a model trained otherwise (e.g. a "
            "localiser or segmenter) gives wrong masks this way. Put its run's config.json beside it.",
            stacklevel=2,
        )
    if path.is_dir() and (path / "saved_model").is_dir():
        path = newest_saved_model(path / "saved_model")
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return SavedModelPredictor(path), preprocess, f"{path} (sha256 {sha256_of_folder(path)})", task
    if path.is_file() and path.suffix == ".keras":
        return load_keras_file(path), preprocess, f"{path} (sha256 {sha256_of(path)})", task
    if not path.exists():
        raise FileNotFoundError(f"Model {spec} does not exist.")
    raise FileNotFoundError(
        f"{spec} is neither a run folder (with saved_model/), a SavedModel folder (with saved_model.pb), a pair "
        f"folder (with {PAIR_FILE}) nor a .keras file."
    )


def load_role(specs: str | Path | list, role: str, weights: list[float] | None = None):
    """(predictor, preprocessing, description) of a pair's ``role`` given as one model or a list of models; a list
    is deployed as an ``AveragedPredictor`` (the mean of their predictions, weighted by ``weights`` if given).

    Raises:
        ValueError: if a model's training config names another task (e.g. a segmenter given as the localiser), or
            the averaged models were trained with different preprocessing.
    """
    loaded = []
    for spec in specs if isinstance(specs, list | tuple) else [specs]:
        predictor, preprocess, description, task = load_single(spec, role)
        if task not in (role, "whole"):
            raise ValueError(f"{spec} was trained as a {task}, not a {role} (its config.json says task {task!r}).")
        loaded.append((predictor, preprocess, description))
    if len(loaded) == 1:
        return loaded[0]
    preprocess = loaded[0][1]
    different = [description for _, other, description in loaded[1:] if other != preprocess]
    if different:
        raise ValueError(
            f"The {role} models to average must share their preprocessing: {', '.join(different)} differ from "
            f"{loaded[0][2]}."
        )
    averaged = AveragedPredictor(tuple(predictor for predictor, _, _ in loaded), tuple(weights) if weights else None)
    named = [description for _, _, description in loaded]
    if averaged.weights:
        named = [f"{weight:.2f} x {description}" for weight, description in zip(averaged.weights, named, strict=True)]
    return averaged, preprocess, "mean of " + " and ".join(named)


def load_pair(
    localiser_spec: str | Path | list, segmenter_spec: str | Path | list, weights: dict[str, list[float]] | None = None
):
    """A localiser and a segmenter to deploy together (``fetal_keras.deploy.localise``); either may be ``pretrained``
    (that role of the packaged pair), e.g. a fine-tuned segmenter with the packaged localiser, or a list of models
    whose predictions are averaged (:func:`load_role`; ``weights``: per role, the models' weights in the mean).

    Returns:
        (``LocalisedSegmenter``, the segmenter's preprocessing, description), as :func:`load_predictor`.

    Raises:
        ValueError: as :func:`load_role`.
    """
    weights = weights or {}
    localiser, localiser_preprocess, localiser_description = load_role(
        localiser_spec, "localiser", weights.get("localiser")
    )
    segmenter, preprocess, segmenter_description = load_role(segmenter_spec, "segmenter", weights.get("segmenter"))
    description = f"localiser {localiser_description} + segmenter {segmenter_description}"
    return LocalisedSegmenter(localiser, localiser_preprocess, segmenter, description), preprocess, description


def load_predictor(spec: str | Path = PRETRAINED_SPEC):
    """Load what ``spec`` names, for inference.

    Args:
        spec: ``"pretrained"`` (default: the packaged model, its SHA-256 checked against its model card;
            ``"pretrained:v1"``, ``"pretrained:v2"`` name each packaged model), a
            training run folder (its newest ``saved_model/<timestamp>/``), a SavedModel folder, a ``.keras``
            file (loaded with ``safe_mode=True``: no code from the file is run; its preprocessing from the
            ``config.json`` beside it or one folder above), or a pair folder whose ``pair.json`` names a
            ``localiser`` and a ``segmenter`` (paths relative to it; a list of paths for a role whose models'
            predictions are averaged, and optionally their "weights") to deploy together.

    Returns:
        (predictor, preprocessing the model was trained with, description of what was loaded); for a pair the
        predictor is a ``LocalisedSegmenter`` and the preprocessing the segmenter's.

    Raises:
        FileNotFoundError: if nothing loadable is found at ``spec``.
        ValueError: if the file is not a model fetal_keras can load, or the packaged model's checksum differs
            from its card's.
    """
    name = packaged_name(spec)
    if name is not None and is_pair(name):
        folder, checksums = verified_pair(name)
        predictor, preprocess, _ = load_pair(folder / "localiser" / "model.keras", folder / "segmenter" / "model.keras")
        description = f"{name} (sha256 localiser {checksums['localiser']}, segmenter {checksums['segmenter']})"
        return dataclasses.replace(predictor, description=description), preprocess, description
    if (Path(spec) / PAIR_FILE).is_file():
        models, weights = read_pair(spec)
        return load_pair(models["localiser"], models["segmenter"], weights)
    predictor, preprocess, description, _ = load_single(spec)
    return predictor, preprocess, description
