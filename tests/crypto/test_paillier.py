"""Paillier engine: keys, CRT and DJN encryption, packed vectors, the wire format's refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gmpy2
import numpy as np
import phe
import pytest

from facepp.crypto.paillier.encrypted_vector import HEADER_BYTES, EncryptedVector, add_encrypted
from facepp.crypto.paillier.secret_cipher import PackingPlan, PublicKey, SecretKey, VectorCipher, generate_keypair
from facepp.crypto.paillier.public_key import PublicEncryptor
from facepp.crypto.paillier.secret_key import SecretEncryptor
from facepp.errors import ConfigError, EncodingOverflowError, KeyMismatchError, ProtocolError


def test_generated_key_has_the_requested_size(secret_key: SecretKey) -> None:
    assert secret_key.public_key.key_bits == 2048
    assert gmpy2.is_prime(secret_key.p) and gmpy2.is_prime(secret_key.q)
    with pytest.raises(ConfigError):
        generate_keypair(1024)


@pytest.mark.slow
def test_3072_bit_keys_work() -> None:
    sk = generate_keypair(3072)
    enc = SecretEncryptor(sk)
    assert sk.public_key.key_bits == 3072
    assert sk.decrypt(enc.encrypt(42)) == 42


@pytest.mark.parametrize("randomness", ["djn", "full"])
def test_crt_and_public_encryption_decrypt(secret_key: SecretKey, randomness: str) -> None:
    m = secret_key.public_key.n - 5
    for enc in (SecretEncryptor(secret_key, randomness=randomness), PublicEncryptor(secret_key.public_key, randomness=randomness)):
        c1, c2 = enc.encrypt(m), enc.encrypt(m)
        assert c1 != c2  # randomised
        assert secret_key.decrypt(c1) == m


def test_standard_paillier_decrypts_our_ciphertexts(secret_key: SecretKey) -> None:
    """g = n + 1: python-paillier, holding the same p and q, reads what we encrypt."""
    public = phe.PaillierPublicKey(secret_key.public_key.n)
    private = phe.PaillierPrivateKey(public, secret_key.p, secret_key.q)
    c = SecretEncryptor(secret_key).encrypt(123456789)
    assert private.raw_decrypt(int(c)) == 123456789
    theirs = public.raw_encrypt(987654321)
    assert secret_key.decrypt(theirs) == 987654321


def test_key_files_round_trip_and_refuse_the_wrong_kind(secret_key: SecretKey, tmp_path: Path) -> None:
    secret_key.save(tmp_path / "secret.json")
    secret_key.public_key.save(tmp_path / "public.json")
    assert (tmp_path / "secret.json").stat().st_mode & 0o777 == 0o600
    assert SecretKey.load(tmp_path / "secret.json") == secret_key
    assert PublicKey.load(tmp_path / "public.json") == secret_key.public_key
    assert "p" not in json.loads((tmp_path / "public.json").read_text())
    with pytest.raises(KeyMismatchError, match="secret key file"):
        PublicKey.load(tmp_path / "secret.json")
    with pytest.raises(KeyMismatchError, match="public key file"):
        SecretKey.load(tmp_path / "public.json")


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.update(fingerprint="00" * 32),
        lambda d: d.update(p=d["q"]),
        lambda d: d.update(n="!!!"),
        lambda d: d.update(version=99),
        lambda d: d.update(format="something-else"),
    ],
)
def test_tampered_secret_key_file_is_refused(secret_key: SecretKey, tmp_path: Path, edit) -> None:
    doc = json.loads(secret_key.to_json())
    edit(doc)
    (tmp_path / "k.json").write_text(json.dumps(doc))
    with pytest.raises((KeyMismatchError, ProtocolError)):
        SecretKey.load(tmp_path / "k.json")


def test_unreadable_key_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "k.json").write_bytes(b"\xff\x00garbage")
    with pytest.raises(ProtocolError, match="cannot read"):
        PublicKey.load(tmp_path / "k.json")
    with pytest.raises(ProtocolError):
        PublicKey.load(tmp_path / "missing.json")


def test_vector_round_trip(cipher: VectorCipher, plan: PackingPlan, rng: np.random.Generator) -> None:
    x = np.concatenate([rng.uniform(-4, 4, 777), [-4.0, 4.0, 0.0]]).astype(np.float32)
    y = cipher.decrypt(cipher.encrypt(x))
    assert y.shape == x.shape
    assert np.max(np.abs(y - x)) <= plan.max_error(1)


def test_sum_of_k_encrypted_vectors_is_the_plaintext_sum(
    cipher: VectorCipher, secret_key: SecretKey, plan: PackingPlan, rng: np.random.Generator
) -> None:
    xs = [rng.uniform(-4, 4, 300).astype(np.float32) for _ in range(5)]
    wire = [cipher.encrypt(x).to_bytes() for x in xs]
    parsed = [EncryptedVector.from_bytes(b, secret_key.public_key, expected_count=300) for b in wire]
    total = add_encrypted(secret_key.public_key, parsed)
    assert total.summands == 5
    y = cipher.decrypt(EncryptedVector.from_bytes(total.to_bytes(), secret_key.public_key))
    assert np.max(np.abs(y - np.sum(np.array(xs, dtype=np.float64), axis=0))) <= plan.max_error(5)


def test_parallel_workers_give_the_same_plaintexts(secret_key: SecretKey, plan: PackingPlan, rng: np.random.Generator) -> None:
    x = rng.uniform(-1, 1, plan.slots_per_plaintext * 80).astype(np.float32)
    with VectorCipher(secret_key, plan, workers=2) as parallel:
        y = parallel.decrypt(parallel.encrypt(x))
    assert np.max(np.abs(y - x)) <= plan.max_error(1)


def test_public_key_cipher_encrypts_but_cannot_decrypt(secret_key: SecretKey, plan: PackingPlan, cipher: VectorCipher) -> None:
    public_only = VectorCipher(secret_key.public_key, plan, workers=1)
    ev = public_only.encrypt(np.array([1.5, -2.25]))
    assert list(cipher.decrypt(ev)) == [1.5, -2.25]
    with pytest.raises(TypeError, match="secret key"):
        public_only.decrypt(ev)


def test_overflowing_encode_is_refused_before_encryption(cipher: VectorCipher) -> None:
    with pytest.raises(EncodingOverflowError):
        cipher.encrypt(np.array([0.0, 4.5]))


def test_overflowing_addition_plan_is_refused(cipher: VectorCipher, secret_key: SecretKey, plan: PackingPlan) -> None:
    ev = cipher.encrypt(np.ones(10))
    half = add_encrypted(secret_key.public_key, [ev] * (plan.max_summands // 2))
    add_encrypted(secret_key.public_key, [half, half])  # exactly max_summands: allowed
    with pytest.raises(EncodingOverflowError, match="summands"):
        add_encrypted(secret_key.public_key, [half, half, ev])


def test_decrypting_under_another_key_is_refused(cipher: VectorCipher, other_secret_key: SecretKey, plan: PackingPlan) -> None:
    ev = cipher.encrypt(np.zeros(4))
    with pytest.raises(KeyMismatchError):
        VectorCipher(other_secret_key, plan, workers=1).decrypt(ev)
    with pytest.raises(KeyMismatchError):
        add_encrypted(other_secret_key.public_key, [ev])


def _corrupt(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


@pytest.fixture()
def wire(cipher: VectorCipher) -> bytes:
    return cipher.encrypt(np.linspace(-1, 1, 200)).to_bytes()


@pytest.mark.parametrize(
    ("mangle", "error", "message"),
    [
        (lambda b: b[:10], ProtocolError, "truncated"),
        (lambda b: b[:-1], ProtocolError, "bytes of ciphertexts"),
        (lambda b: b + b"\0", ProtocolError, "bytes of ciphertexts"),
        (lambda b: b"XXXX" + b[4:], ProtocolError, "magic"),
        (lambda b: _corrupt(b, 4, b"\x02"), ProtocolError, "version"),
        (lambda b: _corrupt(b, 5, b"\x00" * 32), KeyMismatchError, "fingerprint"),
        (lambda b: _corrupt(b, 37, b"\x3f"), ProtocolError, "plan"),  # frac_bits 63
        (lambda b: _corrupt(b, 52, b"\x07"), ProtocolError, "slot layout"),  # slot_bits
        (lambda b: _corrupt(b, 55, b"\x00\x00\x00\x00"), ProtocolError, "summands"),
        (lambda b: _corrupt(b, HEADER_BYTES, b"\xff" * 512), ProtocolError, r"\[1, n\^2\)"),
        (lambda b: _corrupt(b, HEADER_BYTES, b"\x00" * 512), ProtocolError, r"\[1, n\^2\)"),
    ],
)
def test_malformed_wire_bytes_are_refused(wire: bytes, secret_key: SecretKey, mangle, error, message) -> None:
    with pytest.raises(error, match=message):
        EncryptedVector.from_bytes(mangle(wire), secret_key.public_key)


def test_wrong_length_and_non_invertible_ciphertexts_are_refused(wire: bytes, secret_key: SecretKey) -> None:
    key = secret_key.public_key
    with pytest.raises(ProtocolError, match="wrong length"):
        EncryptedVector.from_bytes(wire, key, expected_count=201)
    multiple_of_p = int(secret_key.p * 12345).to_bytes(512, "big")
    with pytest.raises(ProtocolError, match="not invertible"):
        EncryptedVector.from_bytes(_corrupt(wire, HEADER_BYTES, multiple_of_p), key)


def test_vector_under_another_key_is_refused(wire: bytes, other_secret_key: SecretKey) -> None:
    with pytest.raises(KeyMismatchError):
        EncryptedVector.from_bytes(wire, other_secret_key.public_key)


def test_public_modules_never_load_the_secret_key_module() -> None:
    """The parameter server's imports (public key + wire format) cannot reach secret-key code."""
    code = (
        "import sys, facepp.crypto.paillier.encrypted_vector, facepp.crypto.paillier.public_key;"
        "bad = [m for m in sys.modules if m.startswith('facepp.crypto.paillier.secret_')];"
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
