"""A federation participant: KEY HOLDER, with the shared Paillier secret key, its images and the plaintext model.

``client`` (download, decrypt, train, encrypt, upload), ``local`` (local
training of the shared backbone with a private margin head), ``privacy``
(optional client-level differential privacy), ``spec`` (what every participant
agrees on, and its data), ``cli`` (``facepp-participant``).

May import the whole :mod:`facepp` library, :mod:`training.protocol` and
:mod:`training.fedavg`; never :mod:`training.server` internals or :mod:`training.simulation`.
"""
