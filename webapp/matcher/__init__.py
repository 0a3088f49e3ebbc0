"""The untrusted matcher service: stores and scores CKKS-encrypted templates (see docs/design.md).

Holds the terminal's public CKKS bundle, the packed encrypted gallery, opaque
subject ids, hashed API keys and an audit log. It never imports or constructs a
secret key: it uses :mod:`facepp.crypto.ckks.public_key`, :mod:`facepp.crypto.ckks.matcher`
and :mod:`facepp.crypto.ckks.gallery` (plus the key-less wire helpers they build
on), never :mod:`facepp.crypto.ckks.secret_key`
(``tests/webapp/matcher/test_isolation.py`` and ``tests/test_import_rules.py`` prove it).

Modules: ``config`` (frozen config), ``protocol`` (HTTP constants and input
validation), ``models``/``db``/``migrations`` (SQLAlchemy schema, Alembic),
``store`` (persistence), ``service`` (thread-safe gallery operations), ``api``
(blueprint), ``app`` (``create_app``), ``cli`` (``facepp-matcher``), ``client``
(HTTP client used by the terminal; imports neither Flask nor SQLAlchemy).

This package ``__init__`` imports nothing, so ``webapp.matcher.client`` stays light.
"""
