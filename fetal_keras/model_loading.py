"""Load a model for inference: the packaged pretrained model, a run folder, a SavedModel folder or a ``.keras`` file."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

# Imported for their registrations: a .keras file names fetal_keras' custom layers, initialisers, losses and
# metrics, and Keras finds them only once their modules have run (a fresh process has not imported them).
import fetal_keras.losses
import fetal_keras.metrics
import fetal_keras.model  # noqa: F401
from fetal_keras.callbacks import SAVED_MODEL_INFO
from fetal_keras.config import TrainConfig
from fetal_keras.preprocess import PreprocessConfig
from fetal_keras.pretrained import PRETRAINED_NAME, PRETRAINED_SPEC, verified_weights

DEFAULT_STRIDE = 8


class SavedModelPredictor:
    """An exported SavedModel used like a Keras model by ``fetal_keras.inference``."""

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


def load_predictor(spec: str | Path = PRETRAINED_SPEC):
    """Load what ``spec`` names, for inference.

    Args:
        spec: ``"pretrained"`` (default: the packaged model, its SHA-256 checked against its model card), a
            training run folder (its newest ``saved_model/<timestamp>/``), a SavedModel folder, or a ``.keras``
            file (loaded with ``safe_mode=True``: no code from the file is run).

    Returns:
        (predictor, preprocessing the model was trained with, description of what was loaded).

    Raises:
        FileNotFoundError: if nothing loadable is found at ``spec``.
        ValueError: if the file is not a model fetal_keras can load, or the packaged model's checksum differs
            from its card's.
    """
    if str(spec) == PRETRAINED_SPEC:
        weights, sha256 = verified_weights()
        return load_keras_file(weights), PreprocessConfig(), f"{PRETRAINED_NAME} (sha256 {sha256})"
    path = Path(spec)
    run_config = path / "config.json"
    preprocess = TrainConfig.load(run_config).preprocess if run_config.is_file() else PreprocessConfig()
    if path.is_dir() and (path / "saved_model").is_dir():
        path = newest_saved_model(path / "saved_model")
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return SavedModelPredictor(path), preprocess, str(path)
    if path.is_file() and path.suffix == ".keras":
        return load_keras_file(path), preprocess, str(path)
    if not path.exists():
        raise FileNotFoundError(f"Model {spec} does not exist.")
    raise FileNotFoundError(
        f"{spec} is neither a run folder (with saved_model/), a SavedModel folder (with saved_model.pb) nor a .keras file."
    )
