"""HTTP constants and validation of the matcher's URL inputs (docs/matcher_api.md).

Importable by the matcher and the terminal: no Flask, no database, no keys.
Ciphertext bodies are validated by :mod:`facepp.crypto.ckks.messages` parsers;
this module validates everything else (subject ids, ``dim``, block indices).
"""

from __future__ import annotations

import re

from facepp.errors import ProtocolError

API_VERSION = 1
API_PREFIX = "/api/v1"
#: Subject ids are opaque to the matcher (the terminal sends an HMAC of the name).
SUBJECT_ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
_SUBJECT_ID = re.compile(SUBJECT_ID_PATTERN)
MIN_DIM = 8
MAX_DIM = 4096
OCTET_STREAM = "application/octet-stream"


def check_subject_id(value: str) -> str:
    """Return ``value`` if it is a valid subject id.

    Raises:
        ProtocolError: anything but 1-64 characters of ``[A-Za-z0-9_-]``. The
            message does not echo the value (it may be hostile).
    """
    if not isinstance(value, str) or _SUBJECT_ID.fullmatch(value) is None:
        raise ProtocolError("subject id must be 1-64 characters of [A-Za-z0-9_-]")
    return value


def parse_dim(value: str | None) -> int:
    """Parse the ``dim`` query parameter: a power of two in ``[8, 4096]``.

    Raises:
        ProtocolError: missing, not a decimal integer, or out of range.
    """
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 5:
        raise ProtocolError("query parameter dim is required: a power of two from 8 to 4096")
    dim = int(value)
    if not MIN_DIM <= dim <= MAX_DIM or dim & (dim - 1):
        raise ProtocolError(f"dim must be a power of two from {MIN_DIM} to {MAX_DIM}, got {dim}")
    return dim
