"""Faults during long jobs: a corrupt stack among many, an interrupted write, and same-seed determinism."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from conftest import ThresholdPredictor, synthetic_pair, tiny_train_config, write_volume

from fetal_keras.data.preprocess import PreprocessConfig
from fetal_keras.deploy.predict import PredictOptions, predict_many
from fetal_keras.training.train import RunFolder, train


def _stacks(folder, count):
    stacks = []
    for index in range(count):
        image, _ = synthetic_pair(shape=(4, 16, 16), seed=index)
        stacks.append((f"s{index:02d}", str(write_volume(folder / f"s{index:02d}.nii.gz", image))))
    return stacks


def test_one_corrupt_stack_in_fifty_is_reported_and_the_others_written(tmp_path):
    stacks = _stacks(tmp_path / "in", 50)
    corrupt = tmp_path / "in" / "s17.nii.gz"
    corrupt.write_bytes(corrupt.read_bytes()[:-40])  # truncated gzip stream
    table = predict_many(
        ThresholdPredictor(), stacks, tmp_path / "out", PredictOptions(), PreprocessConfig(), "t", False
    )
    failed = table[table["error"] != ""]
    assert list(failed["iFIND_id"]) == ["s17"] and "s17.nii.gz" in failed.iloc[0]["error"]
    assert len(list((tmp_path / "out").glob("*_mask.nii.gz"))) == 49
    assert len(pd.read_csv(tmp_path / "out" / "predictions.csv")) == 50


def test_an_interrupted_prediction_leaves_no_half_written_file(tmp_path, monkeypatch):
    stacks = _stacks(tmp_path / "in", 3)
    written = []
    real_write = sitk.WriteImage

    def write_then_interrupt(image, path, *args, **kwargs):
        written.append(path)
        if len(written) == 2:  # the second mask: half a file, then Ctrl-C
            with open(path, "wb") as stream:
                stream.write(b"\x1f\x8b half a file")
            raise KeyboardInterrupt
        return real_write(image, path, *args, **kwargs)

    monkeypatch.setattr(sitk, "WriteImage", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        predict_many(ThresholdPredictor(), stacks, tmp_path / "out", PredictOptions(), PreprocessConfig(), "t", False)
    names = sorted(path.name for path in (tmp_path / "out").iterdir())
    assert names == ["s00_mask.nii.gz"], "only the finished mask; no temporary or partial file"
    assert sitk.ReadImage(str(tmp_path / "out" / "s00_mask.nii.gz")).GetSize() == (16, 16, 4)


@pytest.mark.slow
@pytest.mark.timeout(400)  # two training runs: 50-60 s beside another test
def test_two_runs_with_the_same_seed_end_with_identical_weights(train_val_csvs, tmp_path):
    weights = []
    for name in ("first", "second"):
        train(tiny_train_config(*train_val_csvs, tmp_path / name, augmentation="default"), verbose=0)
        model = keras.saving.load_model(RunFolder(tmp_path / name).last, safe_mode=True)
        weights.append(model.get_weights())
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)
