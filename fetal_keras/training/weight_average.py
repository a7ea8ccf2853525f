"""Average a run's last epochs (stochastic weight averaging, Izmailov et al. 2018, over epoch ends).

A run trained by ``fetal-keras pretrained`` keeps every epoch's weights in ``RUN/checkpoints/epochs/``
(``fetal_keras.training.callbacks.EpochWeights``). The mean of the last few lies in a flatter region of the loss
than any one of them, which often transfers better to data unlike the training's. Batch-norm statistics are
averaged like the weights; deploy can also replace them with the stack's own (``predict --stack-batch-norm``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import keras
import numpy as np

from fetal_keras.files import atomic_output, write_json
from fetal_keras.models.networks import build_model
from fetal_keras.models.train_config import TrainConfig

EPOCH_WEIGHTS = Path("checkpoints") / "epochs"


def epoch_weight_files(run_dir: str | Path) -> list[Path]:
    """The run's kept epoch weights, oldest first."""
    return sorted((Path(run_dir) / EPOCH_WEIGHTS).glob("epoch_*.weights.h5"))


def averaged_model(run_dir: str | Path, last: int) -> keras.Model:
    """The run's network with the mean weights of its ``last`` kept epochs.

    Raises:
        ValueError: if the run kept fewer than ``last`` epochs (or ``last`` < 1).
    """
    files = epoch_weight_files(run_dir)
    if last < 1 or len(files) < last:
        raise ValueError(
            f"{Path(run_dir) / EPOCH_WEIGHTS} holds {len(files)} epochs' weights; averaging the last {last} needs "
            "that many (runs of fetal-keras pretrained keep them)."
        )
    config = TrainConfig.load(Path(run_dir) / "config.json")
    model = build_model(config.preset, base_filters=config.base_filters)
    total = None
    for path in files[-last:]:
        model.load_weights(path)
        weights = model.get_weights()
        total = weights if total is None else [a + b for a, b in zip(total, weights, strict=True)]
    model.set_weights([np.asarray(value / last, dtype=value.dtype) for value in total])
    return model


def write_averaged(run_dir: str | Path, last: int, out_dir: str | Path) -> Path:
    """Write the average of the run's ``last`` epochs as ``out_dir/model.keras`` with the run's ``config.json``
    beside it (so ``predict --model out_dir`` deploys it with the run's preprocessing); return ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(out_dir / "model.keras") as temporary:
        averaged_model(run_dir, last).save(temporary)
    shutil.copyfile(Path(run_dir) / "config.json", out_dir / "config.json")
    write_json(
        out_dir / "average.json", {"run": str(run_dir), "epochs": [p.name for p in epoch_weight_files(run_dir)[-last:]]}
    )
    return out_dir
