"""Atomic, safe-to-load model checkpoints.

A checkpoint is a ``torch.save`` of a plain dict of tensors, numbers and strings:

* ``format`` / ``version``: ``"facepp-checkpoint"``, 1;
* ``metadata``: a JSON string (architecture, embedding dim, input size, preprocessing,
  calibrated thresholds, training summary);
* ``model``: the backbone ``state_dict``; optional ``head``, ``optimizer`` and ``train_state``
  (epoch, elapsed time, RNG states) for resuming;
* ``cohort``: optional (C, dim) embeddings of a score-normalisation cohort
  (:mod:`facepp.model.cohort`), made by these weights;
* ``digest``: SHA-256 over the metadata, the model tensors and the cohort, checked on load
  (detects corruption and casual tampering; it is not a signature).

Writes go to a temporary file in the same folder, are fsynced, then ``os.replace``-d,
so a crash never leaves a half-written checkpoint. Loading uses
``torch.load(weights_only=True)``: no arbitrary object is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from facepp.errors import CheckpointError

logger = logging.getLogger(__name__)

FORMAT = "facepp-checkpoint"
VERSION = 1
#: Metadata that holds for the scores of one model only (recalibrate a changed model).
CALIBRATION_KEYS = ("threshold", "thresholds", "calibration")
COHORT_KEY = "@cohort"  # the cohort's name in the digest: no module parameter starts with "@"


def model_digest(metadata_json: str, state: dict[str, torch.Tensor], cohort: torch.Tensor | None = None) -> str:
    """SHA-256 hex digest of the metadata string, every model tensor (name, dtype, shape, bytes)
    and the cohort when there is one."""
    if cohort is not None:
        state = {**state, COHORT_KEY: cohort}
    h = hashlib.sha256(metadata_json.encode())
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return h.hexdigest()


def save_checkpoint(
    path: str | Path,
    *,
    model_state: dict[str, torch.Tensor],
    metadata: dict[str, Any],
    extra: dict[str, Any] | None = None,
    cohort: torch.Tensor | None = None,
) -> Path:
    """Write a checkpoint atomically (tmp file + fsync + ``os.replace``).

    Args:
        path: Destination file.
        model_state: The backbone ``state_dict``.
        metadata: JSON-serialisable description (see the module docstring).
        extra: Optional resume state (``head``, ``optimizer``, ``train_state``): only tensors,
            numbers, strings, lists and dicts.
        cohort: Optional score-normalisation cohort embeddings, made by these weights.

    Returns:
        The destination path.

    Raises:
        CheckpointError: metadata not JSON-serialisable or the write failed.
    """
    path = Path(path)
    try:
        metadata_json = json.dumps(metadata, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint metadata is not JSON-serialisable: {exc}") from None
    state = {k: v.detach().cpu() for k, v in model_state.items()}
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "metadata": metadata_json,
        "model": state,
    }
    payload.update(extra or {})
    if cohort is not None:
        payload["cohort"] = cohort.detach().cpu().contiguous()
    payload["digest"] = model_digest(metadata_json, state, payload.get("cohort"))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise CheckpointError(f"cannot write checkpoint {path}: {exc}") from None
    logger.info("saved checkpoint %s", path)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and verify a checkpoint without unpickling arbitrary objects.

    Args:
        path: The checkpoint file.

    Returns:
        The payload dict, with ``metadata`` decoded to a dict.

    Raises:
        CheckpointError: missing, unreadable, not a facepp checkpoint, unknown version,
            or digest mismatch (corrupt or tampered).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types (UnpicklingError, RuntimeError, EOFError...)
        raise CheckpointError(f"{path.name}: not a loadable checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path.name}: not a {FORMAT} file")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path.name}: checkpoint version {payload.get('version')!r}, expected {VERSION}")
    metadata_json, state = payload.get("metadata"), payload.get("model")
    if not isinstance(metadata_json, str) or not isinstance(state, dict):
        raise CheckpointError(f"{path.name}: missing metadata or model weights")
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path.name}: model state holds non-tensor values")
    cohort = payload.get("cohort")
    if cohort is not None and not isinstance(cohort, torch.Tensor):
        raise CheckpointError(f"{path.name}: the cohort is not a tensor")
    if payload.get("digest") != model_digest(metadata_json, state, cohort):
        raise CheckpointError(f"{path.name}: digest mismatch: the checkpoint is corrupt or was modified")
    try:
        payload["metadata"] = json.loads(metadata_json)
    except json.JSONDecodeError:
        raise CheckpointError(f"{path.name}: metadata is not valid JSON") from None
    return payload


def update_metadata(path: str | Path, updates: dict[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` into a checkpoint's metadata (e.g. calibrated thresholds), atomically.

    Returns:
        The new metadata.

    Raises:
        CheckpointError: as :func:`load_checkpoint` / :func:`save_checkpoint`.
    """
    payload = load_checkpoint(path)
    metadata = {**payload["metadata"], **updates}
    extra = {k: v for k, v in payload.items() if k not in {"format", "version", "metadata", "model", "digest", "cohort"}}
    save_checkpoint(path, model_state=payload["model"], metadata=metadata, extra=extra, cohort=payload.get("cohort"))
    return metadata
