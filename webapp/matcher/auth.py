"""Bearer API keys of the matcher: generation, hashing (SHA-256 at rest), checking.

Matcher only. A key is ``fpm_`` + 43 url-safe characters (256 random bits); it is
shown once by ``facepp-matcher create-api-key`` and only its SHA-256 is stored.
With 256-bit keys a plain (unsalted) hash is enough: the key cannot be guessed
from its hash, and lookups by hash make timing reveal nothing useful.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from facepp.errors import AuthenticationError, ProtocolError
from webapp.matcher.store import MatcherStore

KEY_PREFIX = "fpm_"
_CLIENT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_KEY = re.compile(r"fpm_[A-Za-z0-9_-]{43}")


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


def create_api_key(store: MatcherStore, name: str) -> str:
    """Create and store (hashed) a key for client ``name``; returns the key (show it once).

    Raises:
        ProtocolError: invalid name.
        ConflictError: the name exists.
    """
    key = generate_api_key()
    store.add_api_key(check_client_name(name), hash_api_key(key))
    return key


def authenticate(store: MatcherStore, authorization: str | None) -> str:
    """The client name for an ``Authorization: Bearer <key>`` header.

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
    client = store.client_for_hash(hash_api_key(key))
    if client is None:
        raise AuthenticationError("invalid API key")
    return client
