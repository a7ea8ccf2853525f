"""Output files: where a stack's predictions go, and atomic writing (a result is complete or absent, never half)."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Args:
        path: final file path. Its folder must exist.
        suffix: suffix of the temporary file (default: the final file's full suffix, e.g. ``.nii.gz``,
            so that writers that choose a format by extension still work).

    Yields:
        The temporary path to write to.

    Raises:
        FileNotFoundError: if the folder of ``path`` does not exist.
        PermissionError: if the folder is not writable.
    """
    final = Path(path)
    if not final.parent.is_dir():
        raise FileNotFoundError(f"Output folder {final.parent} does not exist.")
    suffix = "".join(final.suffixes) if suffix is None else suffix
    handle, temporary_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix, dir=final.parent)
    os.close(handle)
    os.chmod(temporary_name, 0o666 & ~_current_umask())  # mkstemp makes 0600; results should be readable as usual
    temporary = Path(temporary_name)
    try:
        yield temporary
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)


def write_json(path: str | os.PathLike, content, indent: int = 2) -> Path:
    """Write ``content`` as indented JSON with a final newline, atomically (:func:`atomic_output`); return the path."""
    with atomic_output(path) as temporary:
        temporary.write_text(json.dumps(content, indent=indent) + "\n", encoding="utf-8")
    return Path(path)


def ensure_not_input(output: str | os.PathLike, inputs: list[str | os.PathLike]) -> None:
    """Refuse to write ``output`` when it is one of the ``inputs`` (same file, whatever the spelling).

    Raises:
        ValueError: naming the input that would be overwritten.
    """
    output_path = Path(output).expanduser().resolve()
    for candidate in inputs:
        if Path(candidate).expanduser().resolve() == output_path:
            raise ValueError(f"Refusing to write {output}: it is an input file ({candidate}) and would be overwritten.")


def output_paths(out_dir: str | os.PathLike, stack_id: str) -> dict[str, Path]:
    """Where ``fetal-keras predict`` writes a stack's outputs: ``<id>_mask``, ``<id>_prob``, ``<id>_uncertainty``
    (``.nii.gz``) in ``out_dir``."""
    return {name: Path(out_dir) / f"{stack_id}_{name}.nii.gz" for name in ("mask", "prob", "uncertainty")}


def member_probability_path(probability_path: str | os.PathLike, number: int) -> Path:
    """Where one model of an averaged predictor writes its own probability, beside the mean's.

    ``<id>_prob.nii.gz`` (``output_paths``) -> ``<id>_member-<number>_prob.nii.gz``; a BIDS name whose last entity
    is ``desc`` keeps to BIDS' entities: ``<stem>_desc-brainprob_probseg.nii.gz`` ->
    ``<stem>_desc-brainprobmember<number>_probseg.nii.gz``.
    """
    path = Path(probability_path)
    stem, _, suffix = path.name.removesuffix(".nii.gz").rpartition("_")
    before, _, last_entity = stem.rpartition("_")
    if last_entity.startswith("desc-"):
        return path.with_name(f"{before}_{last_entity}member{number}_{suffix}.nii.gz")
    return path.with_name(f"{stem}_member-{number}_{suffix}.nii.gz")


def id_from_filename(path: str | os.PathLike) -> str:
    """``sub-01_T2w`` for ``/data/sub-01_T2w.nii.gz``."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii", ".mha", ".nrrd"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def append_progress(path: str | Path, line: str) -> None:
    """Append ``line`` to the text file ``path`` (a progress log), after the local time."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(f"{stamp} {line}\n")
