"""Homomorphic encryption engines: :mod:`~facepp.crypto.paillier` (training) and :mod:`~facepp.crypto.ckks` (matching).

In both subpackages the modules that hold or use a secret key are named
``secret_*``; the parameter server and the matcher never import them.
"""
