"""The terminal's secrets on disk: CKKS secret key, HMAC key, Flask session key.

Terminal only. Every file lives in the instance folder (mode 0700) and is
written atomically with mode 0600; a file found with wider permissions is
tightened and logged. Nothing here is ever sent anywhere except the public
bundle derived from the CKKS key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from facepp.crypto.ckks.secret_key import CkksKeyHolder
from facepp.errors import ConfigError
from facepp.io import atomic_write_bytes

logger = logging.getLogger(__name__)

CKKS_KEY_FILE = "ckks_secret.key"
HMAC_KEY_FILE = "subject_hmac.key"
FLASK_KEY_FILE = "flask_secret.key"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and restrict it to its owner (0700)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` atomically (temp file, fsync, rename) with mode 0600."""
    atomic_write_bytes(path, data, mode=0o600)


def read_private_file(path: Path) -> bytes:
    """Read a key file, tightening its permissions to 0600 when they are wider."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        logger.warning("%s had mode %o: restricted to 0600", path, mode)
        os.chmod(path, 0o600)
    return path.read_bytes()


def load_or_create(path: Path, factory: Callable[[], bytes]) -> tuple[bytes, bool]:
    """The content of ``path``, creating it with ``factory()`` first if absent.

    Returns:
        ``(data, created)``.
    """
    if path.exists():
        return read_private_file(path), False
    data = factory()
    write_private_file(path, data)
    return data, True


@dataclass(frozen=True)
class TerminalKeys:
    """The terminal's secrets, loaded from its instance folder.

    Attributes:
        holder: CKKS context with the secret key.
        hmac_key: 32-byte key of the opaque subject ids.
        session_key: 32-byte Flask session key (used unless one is configured).
    """

    holder: CkksKeyHolder
    hmac_key: bytes
    session_key: bytes

    @classmethod
    def load(cls, instance_dir: Path) -> TerminalKeys:
        """Load the keys from ``instance_dir``, generating each missing one (first start).

        Raises:
            ConfigError: a key file is unreadable or corrupt.
        """
        ensure_private_dir(instance_dir)
        try:
            ckks_bytes, created = load_or_create(
                instance_dir / CKKS_KEY_FILE, lambda: CkksKeyHolder.generate().to_secret_bytes()
            )
            hmac_key, _ = load_or_create(instance_dir / HMAC_KEY_FILE, lambda: secrets.token_bytes(32))
            session_key, _ = load_or_create(instance_dir / FLASK_KEY_FILE, lambda: secrets.token_bytes(32))
        except OSError as exc:
            raise ConfigError(f"cannot read or create the terminal keys in {instance_dir}: {exc}") from exc
        try:
            holder = CkksKeyHolder.from_secret_bytes(ckks_bytes)
        except ValueError as exc:  # ProtocolError / KeyMismatchError
            raise ConfigError(f"{instance_dir / CKKS_KEY_FILE} is not a valid CKKS key file: {exc}") from exc
        if len(hmac_key) < 32 or len(session_key) < 32:
            raise ConfigError(f"key files in {instance_dir} are too short (corrupt?)")
        logger.info("%s CKKS key %s", "generated" if created else "loaded", holder.fingerprint_hex[:16])
        return cls(holder=holder, hmac_key=hmac_key, session_key=session_key)


def opaque_subject_id(hmac_key: bytes, name: str, *, hex_chars: int = 32) -> str:
    """The id the matcher sees for ``name``: HMAC-SHA256(terminal key, name), hex, truncated.

    Deterministic per terminal key, so the same name maps to the same id; without
    the key the matcher cannot test a guessed name.
    """
    return hmac.new(hmac_key, name.encode("utf-8"), hashlib.sha256).hexdigest()[:hex_chars]
