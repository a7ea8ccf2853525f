"""The pretrained brain-masking model shipped in ``fetal_keras/weights/``, checked against its model card on load.

``fetal-keras predict --model pretrained`` (and :func:`fetal_keras.models.loading.load_predictor` with
``"pretrained"``) use it. The weights were trained only on simulated stacks (``fetal-keras pretrained`` /
``make pretrained`` re-creates them); their card ``<name>.md`` records how, and their SHA-256.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
PRETRAINED_NAME = "fetal_unet_sim_v1"
PRETRAINED_SPEC = "pretrained"
_CHECKSUM_LINE = re.compile(r"SHA-256[^0-9a-f]*([0-9a-f]{64})")


def weights_path(name: str = PRETRAINED_NAME, weights_dir: Path = WEIGHTS_DIR) -> Path:
    """The packaged ``.keras`` file of model ``name``."""
    return weights_dir / f"{name}.keras"


def card_path(name: str = PRETRAINED_NAME, weights_dir: Path = WEIGHTS_DIR) -> Path:
    """The model card (Markdown) of model ``name``."""
    return weights_dir / f"{name}.md"


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def card_checksum(card: str | Path) -> str:
    """The SHA-256 a model card states for its weights.

    Raises:
        ValueError: if the card states none.
    """
    match = _CHECKSUM_LINE.search(Path(card).read_text(encoding="utf-8"))
    if not match:
        raise ValueError(f"model card {card} states no SHA-256 of its weights")
    return match.group(1)


def verified_weights(name: str = PRETRAINED_NAME, weights_dir: Path = WEIGHTS_DIR) -> tuple[Path, str]:
    """Path and SHA-256 of packaged weights whose checksum matches their card.

    Raises:
        FileNotFoundError: if the weights or the card are missing (say how to re-create them).
        ValueError: if the checksum differs from the card's (a damaged or replaced file).
    """
    weights, card = weights_path(name, weights_dir), card_path(name, weights_dir)
    for path in (weights, card):
        if not path.is_file():
            raise FileNotFoundError(
                f"The pretrained model file {path} is missing; reinstall fetal_keras or re-create it with "
                "`make pretrained`."
            )
    actual, expected = sha256_of(weights), card_checksum(card)
    if actual != expected:
        raise ValueError(
            f"{weights} has SHA-256 {actual}, but its model card {card} states {expected}: the file is damaged or "
            "was replaced. Reinstall fetal_keras or re-create it with `make pretrained`."
        )
    return weights, actual
