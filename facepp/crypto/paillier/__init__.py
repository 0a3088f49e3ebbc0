"""Paillier encryption of packed float vectors (federated training).

Modules and the roles that may import them:

* every role, including the untrusted parameter server:
  :mod:`~facepp.crypto.paillier.packing` (fixed-point encoding and slot packing, pure maths),
  :mod:`~facepp.crypto.paillier.fixed_base` (fixed-base exponentiation tables),
  :mod:`~facepp.crypto.paillier.public_key` (encryption, homomorphic addition),
  :mod:`~facepp.crypto.paillier.encrypted_vector` (the wire format and addition of packed vectors);
* key holders only (participants):
  :mod:`~facepp.crypto.paillier.secret_key` (key generation, CRT decryption) and
  :mod:`~facepp.crypto.paillier.secret_cipher` (:class:`VectorCipher`: encrypt and
  decrypt whole vectors on all cores).

This package file imports nothing, so importing a public module never loads
secret-key code. See ``docs/paillier.md``.
"""
