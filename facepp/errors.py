"""The facepp exception hierarchy, shared by every role.

Every error raised at a trust boundary is a :class:`FaceppError`, so adapters
(HTTP services, CLIs) map one base class to a clear message and status code.
Messages say what was expected and what came; they never echo keys,
plaintexts, embeddings or images.
"""

from __future__ import annotations


class FaceppError(Exception):
    """Base class of every error facepp raises on purpose."""

    code: str = "facepp_error"
    #: The HTTP status an adapter should answer with (client errors by default).
    http_status: int = 400


class ConfigError(FaceppError, ValueError):
    """A parameter or configuration value is out of its valid range."""

    code = "bad_config"
    http_status = 500


class ProtocolError(FaceppError, ValueError):
    """Bytes or a message that do not follow the expected wire format."""

    code = "protocol_error"


class KeyMismatchError(ProtocolError):
    """Data made under another key (fingerprint mismatch), or the wrong kind of key."""

    code = "key_mismatch"


class EncodingOverflowError(FaceppError, ValueError):
    """A value or an addition plan that would overflow its fixed-point slot."""

    code = "encoding_overflow"


class ImageError(FaceppError, ValueError):
    """An unreadable, truncated, empty, oversized or unsupported image file."""

    code = "bad_image"


class NoFaceError(FaceppError, ValueError):
    """An image in which no face was detected."""

    code = "no_face"


class DatasetError(FaceppError, ValueError):
    """A dataset folder or protocol file that cannot be used as asked."""

    code = "bad_dataset"


class CheckpointError(FaceppError, ValueError):
    """A model checkpoint that is missing, corrupt or incompatible."""

    code = "bad_checkpoint"


class AuthenticationError(FaceppError):
    """Missing or invalid credentials (token, API key)."""

    code = "unauthorized"
    http_status = 401


class ForbiddenError(FaceppError):
    """Valid credentials that do not allow the request (an API key without the scope it needs)."""

    code = "forbidden"
    http_status = 403


class ConflictError(FaceppError):
    """A request that contradicts the current state: a closed or future round, a duplicate."""

    code = "conflict"
    http_status = 409


class NotFoundError(FaceppError):
    """A named object (round, subject) that does not exist."""

    code = "not_found"
    http_status = 404


class UsageError(FaceppError):
    """A command line (or the settings standing in for one) that asks for something refused, such as
    plain HTTP on a non-loopback address; console scripts exit 2 on it, as on any usage error."""

    code = "usage"


class TLSError(FaceppError):
    """A TLS handshake that failed: an untrusted, expired or missing certificate."""

    code = "tls_error"
    http_status = 502
