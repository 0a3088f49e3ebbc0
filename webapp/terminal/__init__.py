"""The trusted terminal: capture, embed, encrypt, decide (see docs/design.md).

Holds the trained model and the CKKS secret key (in its instance folder, mode
0600); keeps images in memory only; stores no image and no plaintext embedding.
Talks to the untrusted matcher (``docs/matcher_api.md``) with ciphertexts and
opaque subject ids (HMAC of the names) only.

Modules: ``config`` (frozen settings), ``keystore`` (key files, opaque ids),
``db`` (operators and subject names, SQLAlchemy), ``service`` (enrol / verify / identify / delete), ``uploads``
(in-memory uploads), ``app`` (``create_app``), blueprints ``auth``, ``pages``,
``api``, and ``cli`` (``facepp-terminal``). It reaches the matcher through
``webapp.matcher.client`` (the API's one client). See ``docs/webapp_terminal.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["create_app"]


def create_app(config: Any = None) -> Flask:
    """Build the terminal app (see :func:`webapp.terminal.app.create_app`)."""
    from webapp.terminal.app import create_app as _create_app  # noqa: PLC0415 (keeps the package import light)

    return _create_app(config)
