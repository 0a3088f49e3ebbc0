"""Key-holder API for packed Paillier vectors: encrypt and decrypt float vectors fast.

Participants only (they hold the shared secret key). The parameter server uses
:mod:`facepp.crypto.paillier.encrypted_vector` and :mod:`facepp.crypto.paillier.public_key`.

Long vectors are split across worker processes (all cores by default); each
worker builds its own fixed-base tables once and draws its own randomness
from ``os.urandom``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from types import TracebackType

import numpy as np
from gmpy2 import mpz

from facepp.crypto.paillier.encrypted_vector import EncryptedVector, add_encrypted
from facepp.crypto.paillier.packing import PackingPlan, decode, encode, pack, unpack
from facepp.crypto.paillier.public_key import PublicEncryptor, PublicKey, Randomness
from facepp.crypto.paillier.secret_key import SecretEncryptor, SecretKey, check_same_key, generate_keypair

__all__ = [
    "EncryptedVector",
    "PackingPlan",
    "PublicKey",
    "SecretKey",
    "VectorCipher",
    "add_encrypted",
    "generate_keypair",
]

log = logging.getLogger(__name__)

#: Below this many ciphertexts the work stays in the calling process.
PARALLEL_MIN_CIPHERTEXTS = 64

_worker_encryptor: SecretEncryptor | PublicEncryptor | None = None
_worker_secret: SecretKey | None = None


def _init_worker(key: SecretKey | PublicKey, randomness: Randomness) -> None:
    global _worker_encryptor, _worker_secret
    if isinstance(key, SecretKey):
        _worker_encryptor = SecretEncryptor(key, randomness=randomness)
        _worker_secret = key
    else:
        _worker_encryptor = PublicEncryptor(key, randomness=randomness)


def _encrypt_chunk(plaintexts: list[int]) -> list[int]:
    assert _worker_encryptor is not None  # set by _init_worker in this process
    return [int(_worker_encryptor.encrypt(m)) for m in plaintexts]


def _decrypt_chunk(ciphertexts: list[int]) -> list[int]:
    assert _worker_secret is not None  # set by _init_worker in this process
    return [int(_worker_secret.decrypt(c)) for c in ciphertexts]


def default_workers() -> int:
    """The number of cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class VectorCipher:
    """Encrypts (and, holding the secret key, decrypts) packed float vectors.

    Example::

        cipher = VectorCipher(secret_key, PackingPlan(max_summands=64))
        ev = cipher.encrypt(weights)          # EncryptedVector
        total = add_encrypted(secret_key.public_key, [ev, ev])
        cipher.decrypt(total)                 # ~ 2 * weights

    Use it as a context manager (or call :meth:`close`) to stop its worker processes.
    """

    def __init__(
        self,
        key: SecretKey | PublicKey,
        plan: PackingPlan,
        *,
        workers: int | None = None,
        randomness: Randomness = "djn",
    ) -> None:
        """
        Args:
            key: The secret key (key holders: CRT encryption and decryption) or a
                public key (encryption only, DJN randomness modulo ``n**2``).
            plan: The packing plan; its ``plaintext_bits`` must equal the key size.
            workers: Worker processes for long vectors (default: all cores; 1 = none).
            randomness: ``"djn"`` (fast, DJN assumption) or ``"full"`` (uniform ``r**n``).
        """
        public = key.public_key if isinstance(key, SecretKey) else key
        if plan.plaintext_bits != public.key_bits:
            raise ValueError(f"plan is for {plan.plaintext_bits}-bit plaintexts, the key has {public.key_bits} bits")
        self.key = key
        self.public_key = public
        self.plan = plan
        self.randomness = randomness
        self.workers = max(1, workers if workers is not None else default_workers())
        self._local: SecretEncryptor | PublicEncryptor | None = None
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> "VectorCipher":
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker processes, if any were started."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def encrypt(self, values: np.ndarray, *, saturate: bool = False) -> EncryptedVector:
        """Encode, pack and encrypt a vector.

        Args:
            values: (N,) floats, each within ``[-plan.clip, plan.clip]``.
            saturate: Clip out-of-range values instead of raising.

        Raises:
            EncodingOverflowError: A value is out of range (checked before encrypting).
        """
        plaintexts = pack(encode(values, self.plan, saturate=saturate), self.plan)
        ciphertexts = self._map(_encrypt_chunk, plaintexts, self._encrypt_local)
        return EncryptedVector(
            fingerprint=self.public_key.fingerprint,
            plan=self.plan,
            count=int(np.asarray(values).size),
            summands=1,
            ciphertexts=tuple(mpz(c) for c in ciphertexts),
        )

    def decrypt(self, vector: EncryptedVector) -> np.ndarray:
        """Decrypt and decode a (possibly summed) vector.

        Returns:
            (N,) float64: the sum of the ``vector.summands`` encoded vectors.

        Raises:
            KeyMismatchError: The vector is under another key.
            ProtocolError: The plaintext does not fit the slot layout (corrupt aggregate).
        """
        if not isinstance(self.key, SecretKey):
            raise TypeError("decryption needs the secret key; this cipher holds only the public key")
        check_same_key(self.key, vector.fingerprint)
        plaintexts = self._map(_decrypt_chunk, [int(c) for c in vector.ciphertexts], self._decrypt_local)
        slots = unpack(plaintexts, vector.plan, count=vector.count)
        return decode(slots, vector.plan, summands=vector.summands)

    def _encrypt_local(self, plaintexts: list[int]) -> list[int]:
        if self._local is None:
            self._local = (
                SecretEncryptor(self.key, randomness=self.randomness)
                if isinstance(self.key, SecretKey)
                else PublicEncryptor(self.key, randomness=self.randomness)
            )
        return [int(self._local.encrypt(m)) for m in plaintexts]

    def _decrypt_local(self, ciphertexts: list[int]) -> list[int]:
        assert isinstance(self.key, SecretKey)
        return [int(self.key.decrypt(c)) for c in ciphertexts]

    def _map(self, remote, items: Sequence[int], local) -> list[int]:  # type: ignore[no-untyped-def]
        if self.workers == 1 or len(items) < PARALLEL_MIN_CIPHERTEXTS:
            return local(list(items))
        if self._pool is None:
            log.debug("starting %d Paillier worker processes", self.workers)
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("forkserver"),
                initializer=_init_worker,
                initargs=(self.key, self.randomness),
            )
        size = -(-len(items) // (4 * self.workers))
        chunks = [list(items[i : i + size]) for i in range(0, len(items), size)]
        return [c for part in self._pool.map(remote, chunks) for c in part]
