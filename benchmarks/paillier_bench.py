"""Packed Paillier throughput against python-paillier (one value per ciphertext), same run.

    python -m benchmarks.paillier_bench [--quick] [--json PATH]

Targets (2-core machine, 2048-bit key): speedup_vs_phe >= 500 (aim 1000+),
expansion_vs_float32 <= 2.5.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import phe

from benchmarks.report import print_table, write_json
from facepp.crypto.paillier.secret_cipher import PackingPlan, VectorCipher, generate_keypair
from facepp.crypto.paillier.public_key import PublicKey


def measure_phe(public: PublicKey, values: np.ndarray) -> float:
    """python-paillier (gmpy2 backend) encrypting one float per ciphertext: values/s."""
    key = phe.PaillierPublicKey(public.n)
    start = time.perf_counter()
    for v in values:
        key.encrypt(float(v))
    return len(values) / (time.perf_counter() - start)


def measure_facepp(key_bits: int, values: np.ndarray, phe_sample: int, *, randomness: str = "djn") -> dict:
    secret = generate_keypair(key_bits)
    plan = PackingPlan(plaintext_bits=key_bits, frac_bits=20, clip=8.0, max_summands=1024)
    phe_rate = measure_phe(secret.public_key, values[:phe_sample])
    with VectorCipher(secret, plan, randomness=randomness) as cipher:  # type: ignore[arg-type]
        cipher.encrypt(values[: plan.slots_per_plaintext * 256])  # start workers, build tables
        start = time.perf_counter()
        encrypted = cipher.encrypt(values)
        enc_s = time.perf_counter() - start
        start = time.perf_counter()
        decrypted = cipher.decrypt(encrypted)
        dec_s = time.perf_counter() - start
    wire = len(encrypted.to_bytes())
    rate = len(values) / enc_s
    return {
        "key_bits": key_bits,
        "randomness": randomness,
        "values": len(values),
        "slots_per_ciphertext": plan.slots_per_plaintext,
        "workers": cipher.workers,
        "phe_values_per_s": phe_rate,
        "facepp_values_per_s": rate,
        "speedup_vs_phe": rate / phe_rate,
        "decrypt_values_per_s": len(values) / dec_s,
        "bytes_per_value": wire / len(values),
        "expansion_vs_float32": wire / (4 * len(values)),
        "max_abs_error": float(np.max(np.abs(decrypted - values.astype(np.float64)))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2048-bit key and 100k values only (< 60 s)")
    parser.add_argument("--json", metavar="PATH", help="write the result as JSON here")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    n_values, phe_sample = (100_000, 40) if args.quick else (1_000_000, 200)
    values = rng.normal(0, 0.05, n_values).astype(np.float32)  # weight-update-like magnitudes
    runs = [measure_facepp(2048, values, phe_sample)]
    if not args.quick:
        runs.append(measure_facepp(2048, values[:200_000], phe_sample, randomness="full"))
        runs.append(measure_facepp(3072, values[:200_000], phe_sample // 2))
    print_table("Packed Paillier vs python-paillier (values/s; same run)", runs)
    write_json(args.json, {**runs[0], "runs": runs})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
