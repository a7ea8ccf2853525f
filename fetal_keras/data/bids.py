"""A BIDS dataset as a cohort: one row per stack, its brain mask matched from a derivatives folder by entities.

Stacks are indexed with pybids (files that are not BIDS are ignored); masks are the ``*_desc-brain_mask`` files of a
derivatives dataset (``derivatives/NAME``, its own ``dataset_description.json``) and are paired with a stack when
every entity of the stack but its suffix (subject, session, acquisition, run, ...) equals the mask's. A mask whose
name keeps its source's suffix (``sub-01_run-1_T2w_desc-brain_mask``, MIALSRTK's layout) is paired only with
stacks of that suffix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fetal_keras.data.cohort import ID_COLUMN, IMAGE_COLUMN, SEGMENTATION_COLUMN
from fetal_keras.data.splits import SUBJECT_COLUMN  # the column split groups by
from fetal_keras.files import atomic_output

SESSION_COLUMN = "session"
RUN_COLUMN = "run"
BIDS_COLUMNS = (ID_COLUMN, IMAGE_COLUMN, SEGMENTATION_COLUMN, SUBJECT_COLUMN, SESSION_COLUMN, RUN_COLUMN)
STACK_EXTENSIONS = (".nii.gz", ".nii")
# Entities that say what a file is rather than which acquisition it comes from: they differ between a stack and its
# mask (or are absent from one of them), so pairing ignores them.
NON_IDENTIFYING_ENTITIES = frozenset({"suffix", "extension", "datatype", "desc", "space", "label", "res", "den"})


@dataclass(frozen=True)
class BidsStack:
    """One stack of a BIDS dataset.

    Attributes:
        path: the stack's file (absolute).
        entities: its BIDS entities as pybids names them (``subject``, ``session``, ``run``, ``suffix``, ...).
    """

    path: Path
    entities: dict

    @property
    def name(self) -> str:
        """The file name without extension: ``sub-01_ses-1_run-2_T2w``."""
        return _without_extension(self.path.name)

    @property
    def stack_id(self) -> str:
        """The cohort id: the name without its BIDS suffix, ``sub-01_ses-1_run-2``."""
        return self.name.removesuffix(f"_{self.entities['suffix']}")

    @property
    def relative_folder(self) -> Path:
        """``sub-XX/[ses-YY/]anat``: where the stack lives in its dataset, and where its derivatives go."""
        folder = Path(f"sub-{self.entities['subject']}")
        if self.entities.get("session"):
            folder /= f"ses-{self.entities['session']}"
        return folder / self.entities.get("datatype", "anat")


def _without_extension(name: str) -> str:
    for extension in STACK_EXTENSIONS:
        if name.endswith(extension):
            return name[: -len(extension)]
    return name.split(".")[0]


def _identity(entities: dict) -> tuple:
    """What must be equal for a mask to belong to a stack."""
    return tuple(sorted((key, str(value)) for key, value in entities.items() if key not in NON_IDENTIFYING_ENTITIES))


def _source_suffix(name: str) -> str | None:
    """The suffix of the source kept inside a derivative's name (``T2w`` in ``sub-01_run-1_T2w_desc-brain_mask``)."""
    parts = _without_extension(name).split("_")[:-1]
    plain = [part for part in parts if "-" not in part]
    return plain[-1] if plain else None


def _layout(root: Path, derivative: bool):
    """A pybids layout of ``root``, or a ValueError that says why it is not a BIDS dataset."""
    from bids import BIDSLayout  # pybids is slow to import: only the commands that read BIDS pay for it
    from bids.exceptions import PyBIDSError

    if not root.is_dir():
        raise FileNotFoundError(f"BIDS {'derivatives ' if derivative else ''}folder {root} does not exist.")
    description = root / "dataset_description.json"
    if not description.is_file():
        raise ValueError(
            f"{root} is not a BIDS {'derivatives ' if derivative else ''}dataset: it has no dataset_description.json."
        )
    try:
        return BIDSLayout(root, validate=not derivative, is_derivative=derivative)
    except (PyBIDSError, ValueError) as error:
        raise ValueError(f"{root} cannot be read as a BIDS dataset: {error}") from None


def _participants(labels: list[str] | None) -> list[str] | None:
    return [label.removeprefix("sub-") for label in labels] if labels else None


def find_stacks(
    dataset: str | Path, suffix: str = "T2w", participant_labels: list[str] | None = None
) -> list[BidsStack]:
    """Every NIfTI stack with BIDS suffix ``suffix`` in ``dataset`` (``derivatives/`` and non-BIDS files ignored).

    Args:
        dataset: the BIDS dataset's root (with ``dataset_description.json``).
        suffix: the stacks' BIDS suffix, e.g. ``T2w``.
        participant_labels: keep these subjects only (``01`` or ``sub-01``); None keeps every subject.

    Returns:
        The stacks, sorted by path.

    Raises:
        FileNotFoundError: if ``dataset`` does not exist.
        ValueError: if it is not a BIDS dataset, a participant label is not in it, or no stack matches.
    """
    root = Path(os.path.abspath(dataset))
    layout = _layout(root, derivative=False)
    subjects = _participants(participant_labels)
    known = set(layout.get_subjects())
    unknown = sorted(set(subjects or []) - known)
    if unknown:
        raise ValueError(
            f"{root} has no participant(s) {', '.join('sub-' + s for s in unknown)}; it has "
            f"{', '.join('sub-' + s for s in sorted(known)) or 'none'}."
        )
    query = {"suffix": suffix, "extension": list(STACK_EXTENSIONS), "return_type": "object"}
    if subjects:
        query["subject"] = subjects
    stacks = [BidsStack(Path(file.path), file.get_entities()) for file in layout.get(**query)]
    if not stacks:
        raise ValueError(
            f"{root} holds no NIfTI stack with suffix {suffix!r}" + (f" for {subjects}." if subjects else ".")
        )
    return sorted(stacks, key=lambda stack: str(stack.path))


def match_masks(stacks: list[BidsStack], masks_folder: str | Path, mask_desc: str = "brain") -> dict[Path, Path]:
    """Pair each stack with its ``*_desc-<mask_desc>_mask`` file in a derivatives dataset, by entities.

    Args:
        stacks: from :func:`find_stacks`.
        masks_folder: the derivatives dataset (e.g. ``DATASET/derivatives/manual_masks``).
        mask_desc: the masks' ``desc`` entity.

    Returns:
        ``{stack path: mask path}`` for the stacks that have a mask; stacks without one are left out.

    Raises:
        FileNotFoundError: if ``masks_folder`` does not exist.
        ValueError: if it is not a BIDS derivatives dataset, two masks fit one stack, or a mask of the selected
            subjects fits no stack.
    """
    root = Path(os.path.abspath(masks_folder))
    layout = _layout(root, derivative=True)
    subjects = sorted({stack.entities["subject"] for stack in stacks})
    suffixes = {stack.entities["suffix"] for stack in stacks}
    candidates = layout.get(
        suffix="mask", desc=mask_desc, extension=list(STACK_EXTENSIONS), subject=subjects, return_type="object"
    )
    by_identity: dict[tuple, list[BidsStack]] = {}
    for stack in stacks:
        by_identity.setdefault(_identity(stack.entities), []).append(stack)
    pairs: dict[Path, Path] = {}
    orphans = []
    for mask in sorted(candidates, key=lambda file: file.path):
        source_suffix = _source_suffix(Path(mask.path).name)
        if source_suffix is not None and source_suffix not in suffixes:
            continue  # the mask of another kind of stack (e.g. a T1w's)
        owners = [
            stack
            for stack in by_identity.get(_identity(mask.get_entities()), [])
            if source_suffix in (None, stack.entities["suffix"])
        ]
        if not owners:
            orphans.append(mask.path)
            continue
        for stack in owners:
            if stack.path in pairs:
                raise ValueError(f"Two masks for stack {stack.path}: {pairs[stack.path]} and {mask.path}.")
            pairs[stack.path] = Path(mask.path)
    if orphans:
        raise ValueError(
            f"{len(orphans)} mask(s) in {root} have no stack in the dataset (no stack with the same subject, session, "
            "run and other entities): " + ", ".join(orphans)
        )
    return pairs


def bids_cohort(
    dataset: str | Path,
    masks: str | Path | None = None,
    participant_labels: list[str] | None = None,
    suffix: str = "T2w",
    mask_desc: str = "brain",
) -> pd.DataFrame:
    """The cohort table of a BIDS dataset: ``iFIND_id,image,segmentation,subject,session,run``, one row per stack.

    Args:
        dataset: the BIDS dataset's root.
        masks: a derivatives dataset with the brain masks, absolute or relative to ``dataset`` (e.g.
            ``derivatives/manual_masks``); None: no masks (a cohort to segment).
        participant_labels: keep these subjects only (``01`` or ``sub-01``).
        suffix: the stacks' BIDS suffix.
        mask_desc: the masks' ``desc`` entity.

    Returns:
        The table (absolute paths; ``segmentation`` empty for stacks without a mask; ``subject`` as ``sub-XX``,
        ``session`` as ``ses-YY`` or empty, ``run`` as written in the file name or empty).

    Raises:
        FileNotFoundError, ValueError: as :func:`find_stacks` and :func:`match_masks`.
    """
    stacks = find_stacks(dataset, suffix, participant_labels)
    pairs = match_masks(stacks, Path(dataset) / masks, mask_desc) if masks is not None else {}
    rows = [
        {
            ID_COLUMN: stack.stack_id,
            IMAGE_COLUMN: str(stack.path),
            SEGMENTATION_COLUMN: str(pairs.get(stack.path, "")),
            SUBJECT_COLUMN: f"sub-{stack.entities['subject']}",
            SESSION_COLUMN: f"ses-{stack.entities['session']}" if stack.entities.get("session") else "",
            RUN_COLUMN: str(stack.entities.get("run", "")),
        }
        for stack in stacks
    ]
    table = pd.DataFrame(rows, columns=list(BIDS_COLUMNS))
    duplicated = table[table[ID_COLUMN].duplicated(keep=False)]
    if not duplicated.empty:
        raise ValueError(
            f"Several stacks share one id (e.g. .nii and .nii.gz of one stack): {duplicated[IMAGE_COLUMN].tolist()}"
        )
    return table


def write_bids_cohort(
    dataset: str | Path, out_csv: str | Path, masks: str | Path | None = None, overwrite: bool = False, **selection
) -> pd.DataFrame:
    """Write :func:`bids_cohort`'s table as a cohort CSV (atomically) and return it.

    Args:
        dataset: the BIDS dataset's root.
        out_csv: the CSV to write (its folder is created).
        masks: the derivatives dataset with the masks, or None.
        overwrite: replace ``out_csv`` if it exists.
        **selection: ``participant_labels``, ``suffix``, ``mask_desc`` of :func:`bids_cohort`.

    Raises:
        FileExistsError: if ``out_csv`` exists and ``overwrite`` is False.
    """
    out_csv = Path(out_csv)
    if out_csv.exists() and not overwrite:
        raise FileExistsError(f"{out_csv} exists; pass --overwrite to replace it, or choose another --out.")
    table = bids_cohort(dataset, masks, **selection)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out_csv) as temporary:
        table.to_csv(temporary, index=False)
    return table
