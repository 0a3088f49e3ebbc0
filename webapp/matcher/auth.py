"""Bearer API keys of the matcher: scopes, generation, hashing (SHA-256 at rest), checking.

Matcher only. A key is ``fpm_`` + 43 url-safe characters (256 random bits); it is
shown once by ``facepp-matcher create-api-key`` and only its SHA-256 is stored,
with the key's scopes. With 256-bit keys a plain (unsalted) hash is enough: the
key cannot be guessed from its hash, and lookups by hash make timing reveal
nothing useful.

Scopes (docs/matcher_api.md has the route table):

* ``score``: probe in, encrypted scores out (1:1 and 1:N);
* ``enrol``: enrol, replace and delete subjects, and refresh the blocks that
  leaves stale (list, export and install stale blocks); register the first bundle;
* ``admin``: list subject ids, export any block, replace the registered bundle.

The terminal's key holds ``score`` and ``enrol`` (:data:`TERMINAL_SCOPES`).
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from facepp.errors import AuthenticationError, ForbiddenError, ProtocolError
from webapp.matcher.store import MatcherStore

KEY_PREFIX = "fpm_"
_CLIENT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_KEY = re.compile(r"fpm_[A-Za-z0-9_-]{43}")


class Scope(str, enum.Enum):
    """What an API key may do."""

    SCORE = "score"
    ENROL = "enrol"
    ADMIN = "admin"


#: What the terminal needs: verify, identify, enrol, delete and the block refresh that follows.
TERMINAL_SCOPES = frozenset({Scope.SCORE, Scope.ENROL})


@dataclass(frozen=True)
class ApiClient:
    """An authenticated caller: its key's name and scopes."""

    name: str
    scopes: frozenset[Scope]

    def require(self, allowed: frozenset[Scope], what: str) -> None:
        """Refuse unless the key holds one of the ``allowed`` scopes.

        Raises:
            ForbiddenError: it holds none of them.
        """
        if not self.scopes & allowed:
            raise ForbiddenError(f"{what} needs an API key with scope {' or '.join(sorted(s.value for s in allowed))}; "
                                 f"this key has {format_scopes(self.scopes)}")


def parse_scopes(text: str | Iterable[str]) -> frozenset[Scope]:
    """Scopes from ``"score enrol"`` (space- or comma-separated) or an iterable of names.

    Raises:
        ProtocolError: an unknown scope or none at all.
    """
    names = text.replace(",", " ").split() if isinstance(text, str) else list(text)
    try:
        scopes = frozenset(Scope(n.strip()) for n in names)
    except ValueError:
        raise ProtocolError(f"unknown API key scope in {' '.join(names)!r}: use {', '.join(s.value for s in Scope)}") from None
    if not scopes:
        raise ProtocolError("an API key needs at least one scope")
    return scopes


def format_scopes(scopes: Iterable[Scope]) -> str:
    """Scopes as stored: sorted names separated by spaces."""
    return " ".join(sorted(s.value for s in scopes))


def generate_api_key() -> str:
    """A fresh random API key (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """Hex SHA-256 of ``key`` (what the database stores)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_client_name(name: str) -> str:
    """Return ``name`` if it is 1-64 characters of ``[A-Za-z0-9_.-]``.

    Raises:
        ProtocolError: otherwise.
    """
    if _CLIENT_NAME.fullmatch(name or "") is None:
        raise ProtocolError("client names are 1-64 characters of [A-Za-z0-9_.-]")
    return name


def create_api_key(store: MatcherStore, name: str, scopes: Iterable[Scope] = TERMINAL_SCOPES) -> str:
    """Create and store (hashed) a key for client ``name`` with ``scopes``; returns the key (show it once).

    Raises:
        ProtocolError: invalid name or no scope.
        ConflictError: the name exists.
    """
    scopes = parse_scopes(s.value for s in scopes)
    key = generate_api_key()
    store.add_api_key(check_client_name(name), hash_api_key(key), format_scopes(scopes))
    return key


def authenticate(store: MatcherStore, authorization: str | None) -> ApiClient:
    """The client of an ``Authorization: Bearer <key>`` header (read from the headers only, writes nothing).

    Raises:
        AuthenticationError: missing header, wrong scheme, malformed or unknown key.
    """
    if not authorization:
        raise AuthenticationError("missing Authorization: Bearer <api key> header")
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise AuthenticationError("the Authorization header must be 'Bearer <api key>'")
    key = key.strip()
    if _KEY.fullmatch(key) is None:
        raise AuthenticationError("invalid API key")
    found = store.client_for_hash(hash_api_key(key))
    if found is None:
        raise AuthenticationError("invalid API key")
    name, scopes = found
    return ApiClient(name, parse_scopes(scopes))
