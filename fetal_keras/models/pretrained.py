"""The pretrained models shipped in ``fetal_keras/weights/``, checked against their model cards on load.

``fetal-keras predict --model pretrained`` (and :func:`fetal_keras.deploy.loading.load_predictor` with
``"pretrained"``) use the default one; ``pretrained:v1`` and ``pretrained:v2`` name each. ``v1`` is one whole-stack
model (``<name>.keras``); ``v2`` a localiser + segmenter pair (``<name>/pair.json``, ``<name>/<role>/model.keras``
and ``config.json``). All were trained only on simulated stacks (``fetal-keras pretrained`` / ``make pretrained``
re-creates the newest); their card ``<name>.md`` records how, and the SHA-256 of every weights file.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from fetal_keras.files import write_json

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
PACKAGED_MODELS = {"v1": "fetal_unet_sim_v1", "v2": "fetal_pair_sim_v2"}
DEFAULT_VERSION = "v2"
PRETRAINED_NAME = PACKAGED_MODELS[DEFAULT_VERSION]
SINGLE_NAME = PACKAGED_MODELS["v1"]
PAIR_NAME = PACKAGED_MODELS["v2"]
# What ``fetal-keras pretrained`` (``make pretrained``) writes by default: the current recipe's pair, not packaged
# (nor loadable as ``pretrained:...``) until it is measured to beat the default; it never overwrites v1 or v2.
RECIPE_PAIR_NAME = "fetal_pair_sim_v3"
PAIR_ROLES = ("localiser", "segmenter")
PRETRAINED_SPEC = "pretrained"
# A pair folder's index: {"localiser": path, "segmenter": path}, relative to the folder.
PAIR_FILE = "pair.json"
# Beside an exported SavedModel: what inference needs to know about it (its in-plane stride).
SAVED_MODEL_INFO = "fetal_keras.json"


def write_pair_file(
    folder: str | Path, models: dict[str, str | list[str]], weights: dict[str, list[float]] | None = None
) -> Path:
    """Write ``folder/pair.json`` (atomically) naming each role's model, paths relative to ``folder``; a role given
    as a list of models is deployed as the average of their predictions, weighted by ``weights[role]`` (one weight
    per model; equal where not given).

    Raises:
        ValueError: unless ``models`` names exactly the roles ``PAIR_ROLES``, each with at least one model, and each
            role's weights match its models.
    """
    if set(models) != set(PAIR_ROLES):
        raise ValueError(f"a pair names a model for each of {PAIR_ROLES}, got {sorted(models)}.")
    if any(isinstance(entry, list) and not entry for entry in models.values()):
        raise ValueError(f"every role of a pair needs at least one model, got {models}.")
    content: dict = dict(models)
    if weights:
        _check_weights(weights, {role: entry if isinstance(entry, list) else [entry] for role, entry in models.items()})
        content["weights"] = weights
    return write_json(Path(folder) / PAIR_FILE, content)


def _check_weights(weights: dict, models: dict[str, list]) -> None:
    for role, values in weights.items():
        if role not in models or not isinstance(values, list) or len(values) != len(models[role]):
            raise ValueError(f"weights must give one number per model of a pair's role, got {role}: {values}")
        if not all(isinstance(value, int | float) and value >= 0 for value in values) or sum(values) <= 0:
            raise ValueError(f"the weights of {role} must be numbers >= 0, not all 0, got {values}")


def read_pair(folder: str | Path) -> tuple[dict[str, list[Path]], dict[str, list[float]]]:
    """``folder/pair.json`` (:func:`write_pair_file`), read once: each role's models as paths (one per role, or
    several whose predictions are averaged) and the weights of the roles that give any (absent: equal weights).

    Raises:
        ValueError: naming the file, if it is not JSON naming one or more models for each of ``PAIR_ROLES``, or its
            weights do not match the roles' models.
    """
    pair_file = Path(folder) / PAIR_FILE
    try:
        content = json.loads(pair_file.read_text())
        entries = {role: content[role] if isinstance(content[role], list) else [content[role]] for role in PAIR_ROLES}
        if not all(entries.values()) or not all(isinstance(path, str) for paths in entries.values() for path in paths):
            raise ValueError("each role names a model path or a non-empty list of them")
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{pair_file} must name a 'localiser' and a 'segmenter': {error}") from None
    weights = content.get("weights", {})
    try:
        if not isinstance(weights, dict):
            raise ValueError(f"weights must map roles to lists of numbers, got {weights!r}")
        _check_weights(weights, entries)
    except ValueError as error:
        raise ValueError(f"{pair_file}: {error}") from None
    return {role: [pair_file.parent / path for path in paths] for role, paths in entries.items()}, weights


def read_pair_file(folder: str | Path) -> dict[str, list[Path]]:
    """Each role's models named by ``folder/pair.json`` (:func:`read_pair`)."""
    return read_pair(folder)[0]


def read_pair_weights(folder: str | Path) -> dict[str, list[float]]:
    """The weights ``folder/pair.json`` gives the averaged models of its roles (:func:`read_pair`)."""
    return read_pair(folder)[1]


def packaged_name(spec: str) -> str | None:
    """The packaged model ``spec`` names (``pretrained`` or ``pretrained:<version>``), or None for another spec.

    Raises:
        ValueError: for an unknown version.
    """
    text = str(spec)
    if text == PRETRAINED_SPEC:
        return PRETRAINED_NAME
    if not text.startswith(PRETRAINED_SPEC + ":"):
        return None
    version = text.split(":", 1)[1]
    if version not in PACKAGED_MODELS:
        raise ValueError(
            f"No packaged model {version!r}: choose pretrained or one of pretrained:{', pretrained:'.join(PACKAGED_MODELS)}."
        )
    return PACKAGED_MODELS[version]


def weights_path(name: str = SINGLE_NAME, weights_dir: Path = WEIGHTS_DIR) -> Path:
    """The packaged ``.keras`` file of single model ``name``."""
    return weights_dir / f"{name}.keras"


def pair_folder(name: str = PAIR_NAME, weights_dir: Path = WEIGHTS_DIR) -> Path:
    """The folder of packaged pair ``name`` (``pair.json``, ``<role>/model.keras``, ``<role>/config.json``)."""
    return weights_dir / name


def card_path(name: str = SINGLE_NAME, weights_dir: Path = WEIGHTS_DIR) -> Path:
    """The model card (Markdown) of model ``name``."""
    return weights_dir / f"{name}.md"


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of_folder(folder: str | Path) -> str:
    """Hex SHA-256 over every file of a folder (relative paths and contents, in path order): a SavedModel's identity."""
    digest = hashlib.sha256()
    for path in sorted(file for file in Path(folder).rglob("*") if file.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(bytes.fromhex(sha256_of(path)))
    return digest.hexdigest()


def card_checksum(card: str | Path, role: str = "") -> str:
    """The SHA-256 a model card states for its weights (for a pair, the line that starts with ``role``).

    Raises:
        ValueError: if the card states none.
    """
    pattern = re.compile(rf"{re.escape(role)}\s*SHA-256[^0-9a-f]*([0-9a-f]{{64}})")
    match = pattern.search(Path(card).read_text(encoding="utf-8"))
    if not match:
        raise ValueError(f"model card {card} states no {role + ' ' if role else ''}SHA-256 of its weights")
    return match.group(1)


def _verified(weights: Path, card: Path, role: str = "") -> str:
    for path in (weights, card):
        if not path.is_file():
            raise FileNotFoundError(
                f"The pretrained model file {path} is missing; reinstall fetal_keras or re-create it with "
                "`make pretrained`."
            )
    actual, expected = sha256_of(weights), card_checksum(card, role)
    if actual != expected:
        raise ValueError(
            f"{weights} has SHA-256 {actual}, but its model card {card} states {expected}: the file is damaged or "
            "was replaced. Reinstall fetal_keras or re-create it with `make pretrained`."
        )
    return actual


def verified_weights(name: str = SINGLE_NAME, weights_dir: Path = WEIGHTS_DIR) -> tuple[Path, str]:
    """Path and SHA-256 of packaged single-model weights whose checksum matches their card.

    Raises:
        FileNotFoundError: if the weights or the card are missing (say how to re-create them).
        ValueError: if the checksum differs from the card's (a damaged or replaced file).
    """
    weights = weights_path(name, weights_dir)
    return weights, _verified(weights, card_path(name, weights_dir))


def verified_pair(name: str = PAIR_NAME, weights_dir: Path = WEIGHTS_DIR) -> tuple[Path, dict[str, str]]:
    """Folder of a packaged pair and the SHA-256 of each role's weights, every one matching the card.

    Raises:
        FileNotFoundError, ValueError: as :func:`verified_weights`, for either role.
    """
    folder, card = pair_folder(name, weights_dir), card_path(name, weights_dir)
    return folder, {role: _verified(folder / role / "model.keras", card, role) for role in PAIR_ROLES}


def is_pair(name: str, weights_dir: Path = WEIGHTS_DIR) -> bool:
    """Whether packaged model ``name`` is a localiser + segmenter pair."""
    return (pair_folder(name, weights_dir) / PAIR_FILE).is_file() or name == PAIR_NAME
