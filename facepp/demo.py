"""`make demo`: the main job, end to end on this machine.

Today: three participants encrypt packed model updates, an untrusted
aggregator adds the ciphertexts without any secret key, a participant
decrypts the aggregate; then the quick crypto benchmarks print their tables.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np

from facepp.crypto.encrypted_vector import EncryptedVector, add_encrypted
from facepp.crypto.paillier import PackingPlan, VectorCipher, generate_keypair

log = logging.getLogger("facepp.demo")


def paillier_aggregation_demo(*, participants: int = 3, values: int = 200_000, seed: int = 0) -> float:
    """Encrypt, add and decrypt packed update vectors; returns the max abs error."""
    rng = np.random.default_rng(seed)
    secret = generate_keypair(2048)
    public = secret.public_key
    plan = PackingPlan(max_summands=64)
    log.info("key %s..., %d values per ciphertext (%d-bit slots)", public.fingerprint[:12], plan.slots_per_plaintext, plan.slot_bits)
    updates = [rng.normal(0, 0.05, values).astype(np.float32) for _ in range(participants)]
    with VectorCipher(secret, plan) as cipher:
        start = time.perf_counter()
        uploads = [cipher.encrypt(u).to_bytes() for u in updates]
        log.info("%d participants encrypted %d values each in %.2f s (%.1f MB per upload, %.2fx float32)",
                 participants, values, time.perf_counter() - start, len(uploads[0]) / 1e6, len(uploads[0]) / (4 * values))
        # The aggregator: public key only, parses untrusted bytes strictly and adds.
        start = time.perf_counter()
        aggregate = add_encrypted(public, [EncryptedVector.from_bytes(b, public, expected_count=values) for b in uploads])
        log.info("aggregator added the ciphertexts in %.2f s without any secret key", time.perf_counter() - start)
        total = cipher.decrypt(aggregate)
    error = float(np.max(np.abs(total - np.sum(np.array(updates, dtype=np.float64), axis=0))))
    log.info("decrypted aggregate matches the plaintext sum: max abs error %.2e (bound %.2e)", error, plan.max_error(participants))
    return error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-bench", action="store_true", help="skip the benchmark tables")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    paillier_aggregation_demo()
    if not args.no_bench:
        from benchmarks import paillier_bench

        paillier_bench.main(["--quick", "--json", "out/paillier_bench.json"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
