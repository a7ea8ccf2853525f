"""A catalogue of malformed inputs, each through the real CLI entry point (docs/reliability.md lists them).

Every case expects a non-zero exit, a message naming the file or row and the problem, no traceback, and no
output file left behind; the few valid-but-unusual inputs (tiny stacks, output folder = input folder) must work.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import OBLIQUE, synthetic_pair, write_volume

from fetal_keras.cli.main import main


def _run(capsys, *arguments) -> tuple[int, str]:
    """Exit code and everything printed (stdout + stderr) of ``fetal-keras ARGUMENTS``."""
    code = main([str(argument) for argument in arguments])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _row(
    root: Path, stack_id: str, image: np.ndarray, labels: np.ndarray | None, image_geometry=None, label_geometry=None
):
    """Write one stack (and its label map) under ``root``; return its CSV line."""
    write_volume(root / "images" / f"{stack_id}.nii.gz", image, **(image_geometry or {}))
    if labels is None:
        return f"{stack_id},images/{stack_id}.nii.gz,"
    write_volume(root / "segmentations" / f"{stack_id}.nii.gz", labels, **(label_geometry or {}))
    return f"{stack_id},images/{stack_id}.nii.gz,segmentations/{stack_id}.nii.gz"


def _cohort(root: Path, lines: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    csv = root / "cohort.csv"
    csv.write_text("iFIND_id,image,segmentation\n" + "\n".join(lines) + "\n")
    return csv


def _good(root: Path, stack_id: str = "good", seed: int = 0) -> str:
    return _row(root, stack_id, *synthetic_pair(seed=seed))


def _no_leftovers(folder: Path) -> None:
    """No temporary (hidden) or half-written files in ``folder``."""
    if folder.exists():
        assert not [p.name for p in folder.rglob(".*") if p.is_file()], "temporary files left behind"


# ---- check: each defect is named with its CSV line and file ------------------------------------------------------


def _missing_column(root):
    (root / "cohort.csv").write_text("iFIND_id,image\nsub-00,images/a.nii.gz\n")
    return root / "cohort.csv", ["lacks column(s) 'segmentation'"]


def _empty_csv(root):
    (root / "cohort.csv").write_text("")
    return root / "cohort.csv", ["cohort.csv", "empty"]


def _duplicate_ids(root):
    return _cohort(root, [_good(root, "a"), _good(root, "a")]), ["duplicate", "'a'"]


def _missing_file(root):
    return _cohort(root, [_good(root), "lost,images/lost.nii.gz,segmentations/lost.nii.gz"]), ["line 3", "lost.nii.gz"]


def _truncated(root):
    line = _good(root, "cut")
    path = root / "images" / "cut.nii.gz"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    return _cohort(root, [line]), ["cut.nii.gz", "truncated"]


def _not_nifti(root):
    line = _good(root, "fake")
    (root / "images" / "fake.nii.gz").write_bytes(gzip.compress(b"this is a text file, not an image"))
    return _cohort(root, [line]), ["fake.nii.gz"]


def _two_d(root):
    image, labels = synthetic_pair()
    return _cohort(root, [_row(root, "flat", image[0], labels[0])]), ["flat.nii.gz", "2D"]


def _four_d(root):
    line = _good(root, "movie")
    image, _ = synthetic_pair()
    sitk.WriteImage(sitk.GetImageFromArray(np.stack([image, image]), isVector=False), root / "images" / "movie.nii.gz")
    return _cohort(root, [line]), ["movie.nii.gz", "4D"]


def _size_mismatch(root):
    image, labels = synthetic_pair()
    return _cohort(root, [_row(root, "s", image, labels[:, :-1])]), ["line 2", "size"]


@pytest.mark.parametrize(
    "geometry,word",
    [
        ({"spacing": (1.0, 1.0, 4.0)}, "spacing"),
        ({"origin": (0.0, 5.0, 0.0)}, "origin"),
        ({"direction": OBLIQUE}, "direction"),
    ],
)
def test_image_and_segmentation_on_different_grids_are_refused(tmp_path, capsys, geometry, word):
    image, labels = synthetic_pair()
    csv = _cohort(tmp_path, [_row(tmp_path, "g", image, labels, label_geometry=geometry)])
    code, output = _run(capsys, "check", "--csv", csv)
    assert code == 1 and "line 2" in output and word in output and "g.nii.gz" in output


def _nan(root):
    image, labels = synthetic_pair()
    image = image.astype(np.float32)
    image[1, 2, 3] = np.nan
    return _cohort(root, [_row(root, "n", image, labels)]), ["n.nii.gz", "NaN"]


def _inf(root):
    image, labels = synthetic_pair()
    image = image.astype(np.float32)
    image[1, 2, 3] = np.inf
    return _cohort(root, [_row(root, "i", image, labels)]), ["i.nii.gz", "infinite"]


def _all_zero(root):
    _, labels = synthetic_pair()
    return _cohort(root, [_row(root, "z", np.zeros(labels.shape, np.int16), labels)]), ["z.nii.gz", "same intensity"]


def _zero_spacing(root):
    image, labels = synthetic_pair()
    line = _row(root, "zs", image, labels)
    for folder in ("images", "segmentations"):
        path = root / folder / "zs.nii.gz"
        raw = bytearray(gzip.decompress(path.read_bytes()))
        struct.pack_into("<f", raw, 88, 0.0)  # pixdim[3]
        path.write_bytes(gzip.compress(bytes(raw)))
    return _cohort(root, [line]), ["zs.nii.gz", "zero or not finite"]


def _negative_labels(root):
    image, labels = synthetic_pair()
    return _cohort(root, [_row(root, "neg", image, labels.astype(np.int16) - 1)]), ["neg.nii.gz", "negative"]


def _training_row_without_segmentation(root):
    image, _ = synthetic_pair()
    return _cohort(root, [_row(root, "u", image, None)]), ["line 2", "segmentation"]


DEFECTS = {
    "missing column": _missing_column,
    "empty CSV": _empty_csv,
    "duplicate ids": _duplicate_ids,
    "relative path to a missing file": _missing_file,
    "truncated .nii.gz": _truncated,
    "non-NIfTI file named .nii.gz": _not_nifti,
    "2D image": _two_d,
    "4D image": _four_d,
    "image/segmentation size mismatch": _size_mismatch,
    "NaN intensities": _nan,
    "infinite intensities": _inf,
    "all-zero image": _all_zero,
    "zero spacing": _zero_spacing,
    "negative label values": _negative_labels,
    "training row without segmentation": _training_row_without_segmentation,
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_check_names_the_row_file_and_problem(tmp_path, capsys, defect):
    csv, words = DEFECTS[defect](tmp_path)
    report = tmp_path / "out" / "problems.csv"
    report.parent.mkdir()
    code, output = _run(capsys, "check", "--csv", csv, "--report", report)
    assert code in (1, 2), output
    assert "Traceback" not in output
    for word in words:
        assert word in output, f"{word!r} not in: {output}"
    _no_leftovers(tmp_path / "out")


def test_labels_outside_the_chosen_set_are_named(tmp_path, capsys):
    image, labels = synthetic_pair()  # values 0, 2, 9
    csv = _cohort(tmp_path, [_row(tmp_path, "l", image, labels)])
    code, output = _run(capsys, "check", "--csv", csv, "--allowed-labels", "0,2")
    assert code == 1 and "l.nii.gz" in output and "9" in output


def test_huge_spacing_is_a_warning_that_strict_turns_into_failure(tmp_path, capsys):
    image, labels = synthetic_pair()
    geometry = {"spacing": (1.0, 1.0, 500.0)}
    csv = _cohort(tmp_path, [_row(tmp_path, "h", image, labels, geometry, geometry)])
    assert _run(capsys, "check", "--csv", csv)[0] == 0
    code, output = _run(capsys, "check", "--csv", csv, "--strict")
    assert code == 1 and "implausible voxel spacing (1, 1, 500) mm" in output


# ---- train ----------------------------------------------------------------------------------------------------------

TINY_TRAINING = ["--base-filters", "2", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--quiet"]


def test_training_refuses_overlapping_subjects(tmp_path, capsys):
    csv = _cohort(tmp_path, [_good(tmp_path, "a"), _good(tmp_path, "b", 1)])
    run = tmp_path / "run"
    code, output = _run(capsys, "train", "--train-csv", csv, "--val-csv", csv, "--run-dir", run, *TINY_TRAINING)
    assert code == 2 and "Traceback" not in output and "'a'" in output
    assert not run.exists()


def test_training_refuses_a_cohort_without_any_brain(tmp_path, capsys):
    image, labels = synthetic_pair()
    empty = np.zeros_like(labels)
    train_csv = _cohort(tmp_path / "train", [_row(tmp_path / "train", "e", image, empty)])
    val_csv = _cohort(tmp_path / "val", [_good(tmp_path / "val", "v")])
    code, output = _run(
        capsys, "train", "--train-csv", train_csv, "--val-csv", val_csv, "--run-dir", tmp_path / "run", *TINY_TRAINING
    )
    assert code == 2 and "Traceback" not in output and "has any brain voxel" in output and "train" in output
    assert not (tmp_path / "run").exists()


def test_unknown_settings_in_a_config_file_are_named(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text('{"config": {"train_csv": "a", "val_csv": "b", "run_dir": "c", "epochz": 3}}')
    code, output = _run(capsys, "train", "--config", config, "--train-csv", "a", "--val-csv", "b", "--run-dir", "c")
    assert code == 2 and "epochz" in output


# ---- predict ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_model(tmp_path):
    from fetal_keras.models.networks import build_model

    path = tmp_path / "model.keras"
    build_model("unet", base_filters=2).save(path)
    return path


@pytest.mark.parametrize("shape", [(1, 40, 30), (2, 20, 20), (3, 128, 127), (5, 16, 200)])
def test_small_stacks_are_padded_and_predicted_on_their_own_grid(tmp_path, capsys, tiny_model, shape):
    image, _ = synthetic_pair(shape=shape)
    stack = write_volume(tmp_path / "in" / "small.nii.gz", image, spacing=(0.9, 0.9, 3.5))
    code, output = _run(
        capsys, "predict", "--model", tiny_model, "--input", stack, "--out", tmp_path / "out", "--quiet"
    )
    assert code == 0, output
    from fetal_keras.data.io import read_stack

    mask = read_stack(tmp_path / "out" / "small_mask.nii.gz")
    assert mask.array.shape == shape and mask.geometry == read_stack(stack).geometry


def test_output_folder_equal_to_the_input_folder_leaves_the_inputs_intact(tmp_path, capsys, tiny_model):
    image, _ = synthetic_pair()
    stack = write_volume(tmp_path / "stacks" / "s.nii.gz", image)
    before = stack.read_bytes()
    code, _ = _run(capsys, "predict", "--model", tiny_model, "--input", stack, "--out", stack.parent, "--quiet")
    assert code == 0 and stack.read_bytes() == before
    assert (stack.parent / "s_mask.nii.gz").is_file()
    # A stack stored under the name its mask would get (id "x", file x_mask.nii.gz) is never overwritten.
    clash = write_volume(tmp_path / "clash" / "x_mask.nii.gz", image)
    csv = tmp_path / "clash" / "cohort.csv"
    csv.write_text("iFIND_id,image,segmentation\nx,x_mask.nii.gz,\n")
    before = clash.read_bytes()
    code, output = _run(capsys, "predict", "--model", tiny_model, "--csv", csv, "--out", clash.parent, "--quiet")
    assert code == 1 and "input file" in output and clash.read_bytes() == before


def test_output_folder_that_is_a_file_is_refused(tmp_path, capsys, tiny_model):
    image, _ = synthetic_pair()
    stack = write_volume(tmp_path / "s.nii.gz", image)
    blocker = tmp_path / "results"
    blocker.write_text("a file where the output folder should be")
    code, output = _run(capsys, "predict", "--model", tiny_model, "--input", stack, "--out", blocker, "--quiet")
    assert code == 2 and "results" in output and "Traceback" not in output
    assert blocker.read_text().startswith("a file")


def test_read_only_output_folder_is_refused(tmp_path, capsys, tiny_model):
    image, _ = synthetic_pair()
    stack = write_volume(tmp_path / "s.nii.gz", image)
    out = tmp_path / "locked"
    out.mkdir()
    out.chmod(0o500)
    try:
        if os.access(out, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root): permissions are not enforced")
        code, output = _run(capsys, "predict", "--model", tiny_model, "--input", stack, "--out", out, "--quiet")
        assert code != 0 and "locked" in output and "Traceback" not in output
    finally:
        out.chmod(0o700)


@pytest.mark.parametrize(
    "make_model,words",
    [
        (
            lambda folder: folder.joinpath("corrupt.keras").write_bytes(b"PK\x03\x04 not really a zip"),
            ["corrupt.keras"],
        ),
        (lambda folder: folder.joinpath("saved_model").mkdir(), ["holds no SavedModel"]),
        (None, ["is not a fetal_keras slab model"]),
    ],
    ids=["corrupt .keras", "run folder without export", "wrong architecture"],
)
def test_unusable_models_are_named(tmp_path, capsys, make_model, words):
    import keras

    image, _ = synthetic_pair()
    stack = write_volume(tmp_path / "s.nii.gz", image)
    models = tmp_path / "models"
    models.mkdir()
    if make_model is None:
        inputs = keras.Input((16,))
        keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs)).save(models / "classifier.keras")
        spec = models / "classifier.keras"
    else:
        make_model(models)
        spec = models / "corrupt.keras" if (models / "corrupt.keras").exists() else models
    code, output = _run(capsys, "predict", "--model", spec, "--input", stack, "--out", tmp_path / "out", "--quiet")
    assert code == 2 and "Traceback" not in output
    for word in words:
        assert word in output
    assert not (tmp_path / "out").exists()


def test_code_in_a_keras_file_is_not_run(tmp_path, capsys):
    import keras

    inputs = keras.Input((3, 16, 16, 1))
    outputs = keras.layers.Lambda(lambda x: keras.ops.concatenate([x, x], axis=-1), name="lambda")(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "lambda.keras")
    image, _ = synthetic_pair()
    stack = write_volume(tmp_path / "s.nii.gz", image)
    code, output = _run(
        capsys, "predict", "--model", tmp_path / "lambda.keras", "--input", stack, "--out", tmp_path / "o"
    )
    assert code == 2 and "lambda.keras" in output and "safe_mode" in output


# ---- evaluate ------------------------------------------------------------------------------------------------------


def test_evaluation_without_predictions_names_each_stack(tmp_path, capsys):
    csv = _cohort(tmp_path, [_good(tmp_path, "a")])
    out = tmp_path / "metrics.csv"
    code, output = _run(capsys, "evaluate", "--csv", csv, "--pred-dir", tmp_path / "nowhere", "--out", out)
    assert code == 1 and "a_mask.nii.gz" in output


def test_evaluation_never_writes_over_its_cohort_csv(tmp_path, capsys):
    csv = _cohort(tmp_path, [_good(tmp_path, "a")])
    before = csv.read_text()
    code, output = _run(capsys, "evaluate", "--csv", csv, "--pred-dir", tmp_path, "--out", csv)
    assert code == 2 and "input file" in output and csv.read_text() == before
