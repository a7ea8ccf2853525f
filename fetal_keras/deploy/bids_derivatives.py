"""Masks as a BIDS derivatives dataset: ``DATASET/derivatives/NAME/sub-XX/[ses-YY/]anat/<stack>_desc-brain_mask.nii.gz``.

Where reconstruction pipelines (MIALSRTK's BIDS App, NiftyMIC's and NeSVoR's wrappers) look for brain masks. The
folder is a derivatives dataset of its own: ``dataset_description.json`` (``DatasetType: derivative``,
``GeneratedBy`` naming fetal_keras, its version and the model's SHA-256), a JSON sidecar per mask (its source stack,
model, TTA, slices flagged for QC, seconds) and ``predictions.csv`` (listed in ``.bidsignore``). Nothing is written
outside ``derivatives/NAME``, and existing files are kept unless the caller asks to overwrite them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd

from fetal_keras import __version__
from fetal_keras.data.bids import BidsStack
from fetal_keras.files import atomic_output, member_probability_path, write_json

BIDS_VERSION = "1.10.0"
RAW_DATASET_LINK = "raw"
# Output kind (as ``fetal_keras.files.output_paths`` names them) -> BIDS entities and suffix of its file.
DERIVATIVE_ENDINGS = {
    "mask": "desc-brain_mask",
    "prob": "desc-brainprob_probseg",
    "uncertainty": "desc-brainuncertainty_probseg",
}
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
CHECKSUM_PATTERN = re.compile(r"\b[0-9a-f]{64}\b")
IGNORED_FILES = ("predictions.csv",)
DESCRIPTIONS = {
    "mask": "Fetal brain mask (1 = brain) segmented by fetal_keras on the source stack's own grid.",
    "prob": "Brain probability from fetal_keras, on the source stack's own grid.",
    "uncertainty": "Standard deviation of the brain probability over fetal_keras' test-time augmentations.",
}
MEMBER_KIND_PREFIX = "prob_member"
README = """# fetal_keras brain masks

Fetal brain masks segmented by fetal_keras, one per stack, on each stack's own grid and header.
`dataset_description.json` names the fetal_keras version and the model's SHA-256; each file's JSON sidecar names
its source stack, the model, whether test-time augmentation was used, the slices flagged for QC (0-based, along
the stack's slice axis) and the seconds it took. `predictions.csv` (one row per stack, as fetal_keras writes it
outside BIDS) is listed in `.bidsignore`.
"""


def derivatives_folder(dataset: str | Path, name: str) -> Path:
    """``DATASET/derivatives/NAME`` (absolute).

    Raises:
        ValueError: if ``name`` is not a plain folder name (it could lead outside ``derivatives/``).
    """
    if not NAME_PATTERN.match(name):
        raise ValueError(
            f"Derivatives name {name!r} must be a plain folder name (letters, digits, '.', '_', '-'), e.g. fetal_keras."
        )
    return Path(os.path.abspath(dataset)) / "derivatives" / name


def derivative_paths(folder: Path, stack: BidsStack, keep_suffix: bool = False) -> dict[str, Path]:
    """Where one stack's outputs go: ``mask``, ``prob`` and ``uncertainty`` (``.nii.gz``) under ``folder``.

    Args:
        folder: the derivatives dataset (:func:`derivatives_folder`).
        stack: the source stack.
        keep_suffix: keep the stack's suffix in the names (``sub-01_run-1_T2w_desc-brain_mask.nii.gz``, the layout
            of MIALSRTK's sample data) instead of BIDS' ``sub-01_run-1_desc-brain_mask.nii.gz``.
    """
    stem = stack.name if keep_suffix else stack.stack_id
    return {
        kind: folder / stack.relative_folder / f"{stem}_{ending}.nii.gz" for kind, ending in DERIVATIVE_ENDINGS.items()
    }


def with_member_paths(paths: dict[str, Path], members: int) -> dict[str, Path]:
    """``paths`` and, for a model averaged from ``members`` > 1 models, each model's own probability beside the mean's
    (kinds ``prob_member1``, ``prob_member2``, ...; ``..._desc-brainprobmember1_probseg.nii.gz``)."""
    if members < 2 or "prob" not in paths:
        return dict(paths)
    extra = {f"{MEMBER_KIND_PREFIX}{n}": member_probability_path(paths["prob"], n) for n in range(1, members + 1)}
    return dict(paths) | extra


def _description(kind: str) -> str:
    """What a file of ``kind`` (:data:`DERIVATIVE_ENDINGS` or :func:`with_member_paths`) holds."""
    if kind.startswith(MEMBER_KIND_PREFIX):
        number = kind.removeprefix(MEMBER_KIND_PREFIX)
        return (
            f"Brain probability of model {number} of those fetal_keras averaged (its own, before the mean), on the "
            "source stack's own grid."
        )
    return DESCRIPTIONS[kind]


def model_checksums(description: str) -> dict[str, str] | str:
    """The SHA-256 checksums a model description names (``fetal_keras.deploy.loading``): one string for a single
    model, ``{"localiser": ..., "segmenter": ...}`` for a pair (its descriptions name the localiser first)."""
    checksums = CHECKSUM_PATTERN.findall(description)
    if len(checksums) == 2:
        return dict(zip(("localiser", "segmenter"), checksums, strict=True))
    return checksums[0] if len(checksums) == 1 else ""


def dataset_description(model_description: str) -> dict:
    """The derivatives dataset's ``dataset_description.json``."""
    return {
        "Name": "fetal_keras brain masks",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [
            {
                "Name": "fetal_keras",
                "Version": __version__,
                "Description": f"Fetal brain masks segmented with {model_description}",
                "ModelSHA256": model_checksums(model_description),
            }
        ],
        "DatasetLinks": {RAW_DATASET_LINK: "../../"},
        "SourceDatasets": [{"URL": f"bids:{RAW_DATASET_LINK}:"}],
    }


def refuse_existing_outputs(outputs: list[dict[str, Path]], overwrite: bool = False) -> None:
    """Refuse to replace existing derivatives unless ``overwrite``.

    Args:
        outputs: the files that will be written, per stack (from :func:`derivative_paths`).

    Raises:
        FileExistsError: naming the first existing files.
    """
    existing = [str(path) for paths in outputs for path in paths.values() if path.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{len(existing)} output file(s) exist already (pass --overwrite to replace them): "
            + ", ".join(existing[:5])
            + (" ..." if len(existing) > 5 else "")
        )


def start_derivatives(folder: Path, model_description: str, overwrite: bool = False) -> None:
    """Create the derivatives dataset, or check that it holds this model's masks; write its description and
    ``.bidsignore``.

    Args:
        folder: the derivatives dataset (:func:`derivatives_folder`).
        model_description: the loaded model's description (``fetal_keras.deploy.loading``).
        overwrite: take over a folder written by another pipeline or model.

    Raises:
        FileExistsError: if the folder's description names another pipeline or model (masks of two models would mix).
    """
    description_path = folder / "dataset_description.json"
    wanted = dataset_description(model_description)
    if description_path.is_file() and not overwrite:
        try:
            existing = json.loads(description_path.read_text(encoding="utf-8"))
            generated = (existing.get("GeneratedBy") or [{}])[0]
        except (ValueError, AttributeError, IndexError, KeyError, TypeError):
            generated = {}
        if (
            generated.get("Name") != "fetal_keras"
            or generated.get("ModelSHA256") != wanted["GeneratedBy"][0]["ModelSHA256"]
        ):
            raise FileExistsError(
                f"{folder} already holds derivatives of {generated.get('Name', 'another pipeline')} "
                f"({generated.get('Description', 'no description')}); choose another --out-derivatives name or pass "
                "--overwrite."
            )
    folder.mkdir(parents=True, exist_ok=True)
    write_json(description_path, wanted)
    with atomic_output(folder / ".bidsignore", suffix=".tmp") as temporary:
        temporary.write_text("\n".join(IGNORED_FILES) + "\n", encoding="utf-8")
    with atomic_output(folder / "README.md") as temporary:
        temporary.write_text(README, encoding="utf-8")


def sidecar(stack: BidsStack, dataset: Path, row: pd.Series, tta: bool, kind: str = "mask") -> dict:
    """The JSON sidecar of one output (``kind`` as in :data:`DERIVATIVE_ENDINGS`): its source stack (a BIDS URI),
    model, TTA, QC-flagged slices, the stack's QC score, flag and reasons, the mask's margin (``MaskMarginMM``) and
    seconds."""
    source = f"bids:{RAW_DATASET_LINK}:{stack.path.relative_to(dataset).as_posix()}"
    flagged = [int(index) for index in str(row["flagged_slices"]).split(";") if index not in ("", "nan")]
    return {
        "Description": _description(kind),
        "Sources": [source],
        "SpatialReference": source,
        **({"Type": "Brain"} if kind == "mask" else {}),
        "Model": row["model"],
        "ModelSHA256": model_checksums(row["model"]),
        "TTA": tta,
        "QCFlaggedSlices": flagged,
        **(_stack_qc_fields(row) if kind == "mask" else {}),
        **({"MaskMarginMM": float(row["margin_mm"])} if kind == "mask" else {}),
        "Seconds": float(row["seconds"]),
    }


def _stack_qc_fields(row: pd.Series) -> dict:
    """The stack's QC score, flag and reasons (``fetal_keras.deploy.stack_qc``) as sidecar fields."""
    reasons = str(row["qc_reasons"])
    return {
        "QCScore": float(row["qc_score"]),
        "QCFlag": bool(row["qc_flag"]),
        "QCReasons": [reason for reason in reasons.split(";") if reason not in ("", "nan")],
    }


def write_sidecars(
    stacks: list[BidsStack], outputs: list[dict[str, Path]], predictions: pd.DataFrame, dataset: str | Path, tta: bool
) -> None:
    """Write a JSON sidecar beside every file of ``outputs`` (the files this run wrote, per stack; stacks that failed
    get none)."""
    dataset = Path(os.path.abspath(dataset))
    for stack, paths, (_, row) in zip(stacks, outputs, predictions.iterrows(), strict=True):
        if row["error"] == "":
            for kind, path in paths.items():
                write_json(
                    path.with_name(path.name.replace(".nii.gz", ".json")), sidecar(stack, dataset, row, tta, kind)
                )
