"""facepp's shipped face model: package data, verified by SHA-256 before every use.

The model card (``MODEL_CARD.md`` beside the weights) says how it was made and what it
measures. Every command that needs a model and is given none uses this one::

    from facepp.models import shipped_model
    embedder = Embedder.from_checkpoint(shipped_model())
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from facepp.errors import CheckpointError
from facepp.model.checkpoint import load_checkpoint, save_checkpoint

#: The weights file inside this package.
SHIPPED_FILE = "facepp-resface-distilled.pt"
#: SHA-256 of that file; a copy with any other digest is refused.
SHIPPED_SHA256 = "26e1b99095297d7b1a5ef931be7f9f6ae68077bf0a7da0be830b4a50d1efa935"


def verify_file(path: str | Path, sha256: str) -> Path:
    """Return ``path`` if the file's SHA-256 is ``sha256``.

    Raises:
        CheckpointError: the file is missing or its digest differs (corrupt or modified).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"shipped model {path} is missing: reinstall facepp")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise CheckpointError(f"{path.name}: SHA-256 {digest[:16]}... is not the shipped model's {sha256[:16]}...: "
                              "the file is corrupt or was modified")
    return path


#: Where the shipped model lies (use :func:`shipped_model`, which checks it).
SHIPPED_PATH = Path(__file__).with_name(SHIPPED_FILE)


def shipped_model() -> Path:
    """The path of the shipped model, after checking its SHA-256.

    Raises:
        CheckpointError: missing or modified file.
    """
    return verify_file(SHIPPED_PATH, SHIPPED_SHA256)


def is_shipped(path: str | Path) -> bool:
    """Whether ``path`` is the shipped model file itself (which must never be rewritten)."""
    return Path(path).resolve() == SHIPPED_PATH.resolve()


def model_or_shipped(path: str | Path | None) -> Path:
    """``path`` when given, else the verified shipped model."""
    return Path(path) if path is not None else shipped_model()


def export_for_shipping(source: str | Path, destination: str | Path) -> str:
    """Write a checkpoint without its resume state (head, optimizer, raw weights): the
    weights, the metadata, the cohort and their digest only. Returns the new file's SHA-256."""
    payload = load_checkpoint(source)
    save_checkpoint(destination, model_state=payload["model"], metadata=payload["metadata"], cohort=payload.get("cohort"))
    return hashlib.sha256(Path(destination).read_bytes()).hexdigest()
