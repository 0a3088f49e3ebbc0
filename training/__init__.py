"""Collaborative encrypted training (Paillier): an application built on :mod:`facepp`.

One subpackage per role, so the trust boundary is visible in the tree:

* :mod:`training.server`: the parameter server (untrusted). Holds the Paillier
  public key, the encrypted global model and round bookkeeping. It never imports
  a ``facepp.crypto.*.secret_*`` module, :mod:`training.participant`,
  :mod:`training.simulation` or face code (``facepp.model``, ``facepp.vision``).
* :mod:`training.participant`: a participant (key holder). Holds the shared
  Paillier secret key, its own images and the plaintext model.
* :mod:`training.simulation`: a whole federation on one machine (``facepp
  simulate``) and the privacy audit; trusted, it may import everything.

Shared by every role: :mod:`training.protocol` (wire messages) and
:mod:`training.fedavg` (pure averaging maths). :mod:`training.ceremony` and
:mod:`training.cli` (``facepp-federation``) are the key ceremony, run by one
trusted participant. ``tests/test_import_rules.py`` enforces these rules.
"""
