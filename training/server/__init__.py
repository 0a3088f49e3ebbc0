"""The parameter server: UNTRUSTED role, Paillier public key and ciphertexts only.

``app`` (Flask app factory and HTTP API), ``coordinator`` (round bookkeeping,
homomorphic aggregation), ``store`` (durable state), ``cli`` (``facepp-server``),
``templates/`` (the status page).

May import: :mod:`facepp.errors`, :mod:`facepp.io`, :mod:`facepp.console`, the public Paillier
modules (:mod:`facepp.crypto.paillier.public_key`, :mod:`~facepp.crypto.paillier.encrypted_vector`,
:mod:`~facepp.crypto.paillier.packing`) and :mod:`training.protocol`. Never a
``secret_*`` crypto module, face code, :mod:`training.participant` or
:mod:`training.simulation` (``tests/test_import_rules.py`` serves requests and checks).
"""
