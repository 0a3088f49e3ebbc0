"""The facepp web application: an untrusted matcher service and a trusted terminal.

* :mod:`webapp.matcher` -- untrusted: stores and scores CKKS ciphertexts only
  (public keys, never a secret key).
* :mod:`webapp.terminal` -- trusted: camera/upload page, face pipeline, CKKS secret key.
"""
