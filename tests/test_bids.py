"""BIDS in and out: a BIDS dataset read as a cohort, masks written as a BIDS derivatives dataset and read back."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import BIDS_STACKS, tiny_model_folder

from fetal_keras.cli.main import main
from fetal_keras.data.bids import bids_cohort
from fetal_keras.data.cohort import read_cohort
from fetal_keras.data.io import read_stack
from fetal_keras.deploy.bids_derivatives import model_checksums
from fetal_keras.models.networks import build_model
from fetal_keras.models.pretrained import sha256_of, write_pair_file

SHARED_BIDS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real_labelled"


def _pairs(table: pd.DataFrame) -> dict[str, str]:
    return {
        Path(image).name: Path(mask).name if mask else ""
        for image, mask in zip(table["image"], table["segmentation"], strict=True)
    }


def test_a_bids_dataset_becomes_a_cohort_with_masks_matched_by_entities(bids_dataset):
    table = bids_cohort(bids_dataset, "derivatives/manual_masks")
    assert _pairs(table) == {
        "sub-01_ses-1_run-1_T2w.nii.gz": "sub-01_ses-1_run-1_desc-brain_mask.nii.gz",
        "sub-01_ses-1_run-2_T2w.nii.gz": "sub-01_ses-1_run-2_T2w_desc-brain_mask.nii.gz",
        "sub-01_ses-2_run-1_T2w.nii.gz": "sub-01_ses-2_run-1_desc-brain_mask.nii.gz",
        "sub-02_acq-haste_run-1_T2w.nii.gz": "sub-02_acq-haste_run-1_T2w_desc-brain_mask.nii.gz",
        "sub-02_acq-haste_run-2_T2w.nii.gz": "",
        "sub-03_T2w.nii.gz": "sub-03_desc-brain_mask.nii.gz",
    }
    row = table.set_index("iFIND_id").loc["sub-01_ses-2_run-1"]
    assert (row["subject"], row["session"], row["run"]) == ("sub-01", "ses-2", "1")
    assert table.set_index("iFIND_id").loc["sub-03", ["session", "run"]].tolist() == ["", ""]
    only = bids_cohort(bids_dataset, None, participant_labels=["sub-02"])
    assert only["subject"].unique().tolist() == ["sub-02"] and (only["segmentation"] == "").all()


def test_cohort_command_writes_a_csv_the_project_reads_and_split_groups_by_subject(bids_dataset, tmp_path, capsys):
    csv = tmp_path / "cohort.csv"
    assert main(["cohort", "--bids", str(bids_dataset), "--masks", "derivatives/manual_masks", "--out", str(csv)]) == 0
    assert "6 stacks of 3 subject(s), 5 with a mask" in capsys.readouterr().out
    assert len(read_cohort(csv)) == 6
    with pytest.raises(FileExistsError, match="--overwrite"):
        main(["--debug", "cohort", "--bids", str(bids_dataset), "--out", str(csv)])
    labelled = tmp_path / "labelled.csv"
    table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    table[table["segmentation"] != ""].to_csv(labelled, index=False)
    assert (
        main(["split", "--csv", str(labelled), "--out", str(tmp_path / "split"), "--val", "0.34", "--test", "0"]) == 0
    )
    subjects = {name: set(pd.read_csv(tmp_path / "split" / f"{name}.csv")["subject"]) for name in ("train", "val")}
    assert set().union(*subjects.values()) == {"sub-01", "sub-02", "sub-03"}
    assert not subjects["train"] & subjects["val"], "grouped by the subject column: no subject in two sets"


def test_bids_errors_name_the_problem(bids_dataset, tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="no dataset_description.json"):
        bids_cohort(tmp_path / "plain")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        bids_cohort(tmp_path / "absent")
    with pytest.raises(ValueError, match="no participant\\(s\\) sub-09"):
        bids_cohort(bids_dataset, participant_labels=["09"])
    with pytest.raises(ValueError, match="no NIfTI stack with suffix 'FLAIR'"):
        bids_cohort(bids_dataset, suffix="FLAIR")
    masks = bids_dataset / "derivatives" / "manual_masks"
    orphan = masks / "sub-03" / "anat" / "sub-03_run-7_desc-brain_mask.nii.gz"
    shutil.copy(masks / "sub-03" / "anat" / "sub-03_desc-brain_mask.nii.gz", orphan)
    with pytest.raises(ValueError, match="have no stack.*sub-03_run-7_desc-brain_mask"):
        bids_cohort(bids_dataset, "derivatives/manual_masks")
    orphan.unlink()
    shutil.copy(
        masks / "sub-03" / "anat" / "sub-03_desc-brain_mask.nii.gz",
        masks / "sub-03" / "anat" / "sub-03_T2w_desc-brain_mask.nii.gz",
    )
    with pytest.raises(ValueError, match="Two masks for stack .*sub-03_T2w.nii.gz"):
        bids_cohort(bids_dataset, "derivatives/manual_masks")
    (masks / "dataset_description.json").unlink()
    with pytest.raises(ValueError, match="not a BIDS derivatives dataset"):
        bids_cohort(bids_dataset, "derivatives/manual_masks")


def test_checksums_of_single_models_and_pairs_are_read_from_their_descriptions():
    single, localiser, segmenter = "a" * 64, "b" * 64, "c" * 64
    assert model_checksums(f"run/best.keras (sha256 {single})") == single
    assert model_checksums(f"localiser x (sha256 {localiser}) + segmenter y (sha256 {segmenter})") == {
        "localiser": localiser,
        "segmenter": segmenter,
    }


def _files(root: Path, outside: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in root.rglob("*") if p.is_file() and outside not in p.parents}


@pytest.mark.slow
def test_predict_bids_writes_derivatives_that_read_back_to_the_same_pairs(bids_dataset, tmp_path):
    model = tmp_path / "model.keras"
    build_model("unet", base_filters=2).save(model)
    derivatives = bids_dataset / "derivatives" / "fetal_keras"
    before = _files(bids_dataset, derivatives)
    command = [
        "predict",
        "--bids",
        str(bids_dataset),
        "--model",
        str(model),
        "--quiet",
        "--tta",
        "--save-probabilities",
        "--margin-mm",
        "2",
    ]
    assert main(command) == 0
    assert _files(bids_dataset, derivatives) == before, "nothing outside derivatives/NAME is written or touched"
    mask = derivatives / "sub-01" / "ses-2" / "anat" / "sub-01_ses-2_run-1_desc-brain_mask.nii.gz"
    source = read_stack(bids_dataset / "sub-01" / "ses-2" / "anat" / "sub-01_ses-2_run-1_T2w.nii.gz")
    assert read_stack(mask).geometry == source.geometry
    assert mask.with_name("sub-01_ses-2_run-1_desc-brainprob_probseg.nii.gz").is_file()
    assert mask.with_name("sub-01_ses-2_run-1_desc-brainuncertainty_probseg.nii.gz").is_file()
    description = json.loads((derivatives / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "fetal_keras"
    assert description["GeneratedBy"][0]["ModelSHA256"] == sha256_of(model)
    sidecar = json.loads(mask.with_name("sub-01_ses-2_run-1_desc-brain_mask.json").read_text())
    assert sidecar["Sources"] == ["bids:raw:sub-01/ses-2/anat/sub-01_ses-2_run-1_T2w.nii.gz"]
    assert sidecar["TTA"] is True and isinstance(sidecar["QCFlaggedSlices"], list) and sidecar["Seconds"] > 0
    assert sidecar["MaskMarginMM"] == 2.0
    assert 0.0 <= sidecar["QCScore"] <= 1.0 and isinstance(sidecar["QCFlag"], bool)
    assert isinstance(sidecar["QCReasons"], list) and (sidecar["QCReasons"] != []) == (sidecar["QCScore"] > 0)
    assert len(pd.read_csv(derivatives / "predictions.csv")) == len(BIDS_STACKS)

    written = bids_cohort(bids_dataset, "derivatives/fetal_keras")
    expected = {image: f"{image.removesuffix('_T2w.nii.gz')}_desc-brain_mask.nii.gz" for image in _pairs(written)}
    assert _pairs(written) == expected, "every stack reads back with its own mask"

    with pytest.raises(FileExistsError, match="--overwrite"):
        main(["--debug"] + command)
    assert main(command + ["--overwrite", "--participant-label", "03"]) == 0

    other = bids_dataset / "derivatives" / "other"
    other.mkdir()
    (other / "dataset_description.json").write_text(json.dumps({"Name": "x", "GeneratedBy": [{"Name": "nnunet"}]}))
    with pytest.raises(FileExistsError, match="derivatives of nnunet"):
        main(["--debug"] + command + ["--out-derivatives", "other"])
    assert [p.name for p in other.iterdir()] == ["dataset_description.json"], "nothing written beside another's"


def test_predict_bids_refuses_a_derivatives_name_that_leaves_derivatives(bids_dataset, capsys):
    assert main(["predict", "--bids", str(bids_dataset), "--out-derivatives", "../x"]) == 2
    assert "must be a plain folder name" in capsys.readouterr().err
    assert main(["predict", "--bids", str(bids_dataset), "--out", "masks"]) == 2
    assert main(["predict", "--input", "x.nii.gz", "--out", "masks", "--participant-label", "01"]) == 2
    assert "--participant-label only apply with --bids" in capsys.readouterr().err
    assert not (bids_dataset / "x").exists() and not (bids_dataset / "derivatives" / "fetal_keras").exists()


@pytest.mark.slow
def test_derivatives_pass_the_bids_validator(bids_dataset, tmp_path):
    beside_python = Path(sys.executable).parent / "bids-validator-deno"
    validator = str(beside_python) if beside_python.is_file() else shutil.which("bids-validator-deno")
    assert validator, "bids-validator-deno (requirements.txt) is not installed"
    # A pair whose segmenter is a mean of two models: its members' own maps are written too, named within BIDS.
    localiser = str(tiny_model_folder(tmp_path / "loc", "localiser"))
    segmenters = [str(tiny_model_folder(tmp_path / f"seg{n}", "segmenter")) for n in (1, 2)]
    write_pair_file(tmp_path, {"localiser": localiser, "segmenter": segmenters})
    command = ["predict", "--bids", str(bids_dataset), "--model", str(tmp_path), "--quiet", "--tta"]
    assert main(command + ["--save-probabilities"]) == 0
    anat = bids_dataset / "derivatives" / "fetal_keras" / "sub-01" / "ses-2" / "anat"
    for number in (1, 2):
        member = anat / f"sub-01_ses-2_run-1_desc-brainprobmember{number}_probseg.nii.gz"
        assert member.is_file()
        sidecar = json.loads(member.with_name(member.name.replace(".nii.gz", ".json")).read_text())
        assert f"model {number} of those fetal_keras averaged" in sidecar["Description"]
    with pytest.raises(FileExistsError, match="desc-brainprobmember1_probseg"):
        main(["--debug"] + command + ["--save-probabilities", "--participant-label", "01"])
    result = subprocess.run(
        [validator, "--json", str(bids_dataset / "derivatives" / "fetal_keras")],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(result.stdout)
    errors = [issue for issue in report["issues"]["issues"] if issue["severity"] == "error"]
    assert not errors, errors


@pytest.mark.skipif(not SHARED_BIDS.is_dir(), reason=f"{SHARED_BIDS} is absent (shared real stacks)")
def test_the_shared_real_dataset_reads_as_its_cohort_csv():
    table = bids_cohort(SHARED_BIDS, "derivatives/manual_masks")
    shipped = read_cohort(SHARED_BIDS / "cohort.csv")
    assert table["iFIND_id"].tolist() == shipped["iFIND_id"].tolist()
    assert table["image"].tolist() == shipped["image"].tolist()
    assert table["segmentation"].tolist() == shipped["segmentation"].tolist()
    assert table["subject"].tolist() == shipped["subject"].tolist()


def test_evaluate_scores_one_derivatives_dataset_against_another(bids_dataset, tmp_path, capsys):
    reference = bids_dataset / "derivatives" / "manual_masks"
    shutil.copytree(reference, bids_dataset / "derivatives" / "copy")
    (bids_dataset / "derivatives" / "copy" / "sub-03" / "anat" / "sub-03_desc-brain_mask.nii.gz").unlink()
    out = tmp_path / "metrics.csv"
    command = ["evaluate", "--bids", str(bids_dataset), "--out", str(out), "--quiet"]
    # sub-03 has a reference mask but none to score: reported, not evaluated (exit 1); the other four are identical.
    assert main(command + ["--masks", "derivatives/copy", "--reference", "derivatives/manual_masks"]) == 1
    metrics = pd.read_csv(out, keep_default_na=False).set_index("iFIND_id")
    assert len(metrics) == 5 and "sub-02_acq-haste_run-2" not in metrics.index, (
        "stacks without a reference are left out"
    )
    assert metrics.drop(index="sub-03")["dice"].astype(float).eq(1.0).all()
    assert "no mask to score" in metrics.loc["sub-03", "error"]
    capsys.readouterr()
    # The other way round, sub-03's mask has no reference: refused, naming it.
    assert main(command + ["--masks", "derivatives/manual_masks", "--reference", "derivatives/copy"]) == 2
    assert "have no reference mask in derivatives/copy: sub-03" in capsys.readouterr().err
    plain = ["evaluate", "--csv", "c.csv", "--pred-dir", "p", "--out", str(out)]
    assert main(plain + ["--masks", "derivatives/copy"]) == 2
    assert "--masks only apply with --bids" in capsys.readouterr().err
    assert main(command + ["--masks", "derivatives/copy"]) == 2
    assert "--bids needs --reference" in capsys.readouterr().err
