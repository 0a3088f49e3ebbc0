"""Homomorphic encryption engines: Paillier (training) and CKKS (matching)."""
