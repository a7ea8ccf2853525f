"""Packaging a finished run as a role of the pretrained pair, with paths that name no machine's folders
(stage 4 of ``fetal_keras.training.make_pretrained``)."""

from __future__ import annotations

import json
from pathlib import Path

from fetal_keras.files import atomic_output, write_json


def described_path(path: str | Path, work_dir: Path) -> str:
    """``path`` as a packaged model's card and configs give it, naming no machine's folders: relative to the recipe's
    work folder (``WORK_DIR/split/train.csv``), a relative path as given, else its last two parts
    (``.../real_labelled/cohort.csv``)."""
    path = Path(path)
    if not path.is_absolute():
        return path.as_posix()
    try:
        return "WORK_DIR/" + path.resolve().relative_to(work_dir.resolve()).as_posix()
    except ValueError:
        return ".../" + "/".join(path.parts[-2:])


def portable_run_record(record: dict, work_dir: Path) -> dict:
    """A run's ``config.json`` record with every path of its config given by :func:`described_path`."""
    config = {
        key: described_path(value, work_dir) if isinstance(value, str) and Path(value).is_absolute() else value
        for key, value in record["config"].items()
    }
    return record | {"config": config}


def role_origin(run_dir: Path, given: bool, work_dir: Path) -> str:
    """Where a packaged role comes from, for the card: trained by the recipe, or a finished run it was given."""
    record = portable_run_record(json.loads((run_dir / "config.json").read_text()), work_dir)
    if not given:
        return "trained by this recipe on the split above"
    return (
        f"packaged from the finished run `{described_path(run_dir, work_dir)}` (not trained by this recipe): trained "
        f"on `{record['config']['train_csv']}` at git {record.get('git_commit')}, {record.get('created')}"
    )


def package_role(run_root: Path, folder: Path, base_filters: int, work_dir: Path):
    """Write a run's best weights (without optimizer state) and its config (paths made portable) into ``folder``;
    return the model."""
    import keras

    from fetal_keras.models.networks import build_model

    best = keras.saving.load_model(run_root / "checkpoints" / "best.keras", safe_mode=True)
    packaged = build_model("unet", base_filters=base_filters)  # uncompiled: no optimizer state in the file
    packaged.set_weights(best.get_weights())
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_output(folder / "model.keras") as temporary:
        packaged.save(temporary)
    write_json(
        folder / "config.json", portable_run_record(json.loads((run_root / "config.json").read_text()), work_dir)
    )
    return packaged
