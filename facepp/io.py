"""Small file helpers shared by every role: atomic writes and base64url integers."""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, fsync, rename.

    A crash leaves either the old file or the new one, never a torn one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target


def int_to_b64(value: int) -> str:
    """A non-negative integer as unpadded base64url of its big-endian bytes."""
    raw = int(value).to_bytes(max(1, (int(value).bit_length() + 7) // 8), "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64_to_int(text: str) -> int:
    """Inverse of :func:`int_to_b64`.

    Raises:
        ValueError: ``text`` is not base64url.
    """
    if not isinstance(text, str):
        raise ValueError("expected a base64url string")
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
    except (ValueError, UnicodeEncodeError):
        raise ValueError("expected a base64url string") from None
    return int.from_bytes(raw, "big")
