"""Exporting a trained model as a TensorFlow SavedModel for serving, with what inference needs to know beside it."""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path

import keras

from fetal_keras.models.networks import total_stride
from fetal_keras.models.pretrained import SAVED_MODEL_INFO


def timestamp() -> str:
    """UTC time as ``20261125T101500Z``, sortable as text: the SavedModel folder names."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def export_saved_model(model: keras.Model, saved_model_root: str | Path, config_file: str | Path | None = None) -> Path:
    """Export ``model`` for serving into ``saved_model_root/<timestamp>/`` (TensorFlow SavedModel, ``serve``).

    Beside the SavedModel, ``fetal_keras.json`` records what inference needs to know: the in-plane stride; and
    ``config_file`` (the run's ``config.json``), when given, is copied in, so that the export deploys with the
    preprocessing it was trained with wherever it is moved.
    """
    target = Path(saved_model_root) / timestamp()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    model.export(str(partial), format="tf_saved_model", verbose=False)
    info = {"model": model.name, "stride": total_stride(model), "input": "[batch, 3, y, x, 1] whitened slabs"}
    (partial / SAVED_MODEL_INFO).write_text(json.dumps(info, indent=2) + "\n")
    if config_file is not None:
        shutil.copy2(config_file, partial / "config.json")
    partial.rename(target)
    return target
