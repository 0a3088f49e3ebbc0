"""CKKS encrypted matching: real Pyfhel, default parameters (n=8192, 200-bit modulus).

The default parameters are also the smallest that work: the layout needs four
primes with a 2**40 scale (see docs/ckks.md), which only n >= 8192 allows at
128-bit security, so every test runs at the default size.
"""

from __future__ import annotations

import ast
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from facepp.crypto.ckks import messages as msg
from facepp.crypto.ckks import wire
from facepp.crypto.ckks.packing import replicate
from facepp.crypto.ckks.gallery import EncryptedGallery
from facepp.crypto.ckks.matcher import CkksMatcher
from facepp.crypto.ckks.params import CkksParams
from facepp.crypto.ckks.public_key import CkksPublicContext, pack_params
from facepp.crypto.ckks.secret_key import CkksKeyHolder
from facepp.errors import ConfigError, EncodingOverflowError, KeyMismatchError, ProtocolError

TOL = 1e-4
DIM = 128
N_BLOCK = 300


def unit_rows(rng: np.random.Generator, k: int, d: int) -> np.ndarray:
    x = rng.standard_normal((k, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def near(x: np.ndarray, rng: np.random.Generator, noise: float = 0.3) -> np.ndarray:
    y = x + noise * rng.standard_normal(x.shape) / np.sqrt(x.shape[-1])
    return y / np.linalg.norm(y)


@pytest.fixture(scope="module")
def holder() -> CkksKeyHolder:
    return CkksKeyHolder.generate()


@pytest.fixture(scope="module")
def other_holder() -> CkksKeyHolder:
    return CkksKeyHolder.generate()


@pytest.fixture(scope="module")
def gallery_x() -> np.ndarray:
    return unit_rows(np.random.default_rng(7), N_BLOCK + 4, DIM)


@pytest.fixture(scope="module")
def block_msg(holder: CkksKeyHolder, gallery_x: np.ndarray) -> bytes:
    return holder.encrypt_block(gallery_x[:N_BLOCK])


@pytest.fixture()
def matcher(holder: CkksKeyHolder, block_msg: bytes) -> CkksMatcher:
    m = CkksMatcher.from_public_bundle(holder.export_public_bundle(), dim=DIM, expected_fingerprint=holder.fingerprint)
    m.add_block(block_msg, [f"s{i}" for i in range(N_BLOCK)])
    return m


# -- correctness -------------------------------------------------------------------------


def test_default_parameters(holder: CkksKeyHolder) -> None:
    assert holder.params == CkksParams()
    assert holder.params.total_bits <= 218 and holder.params.poly_degree == 8192


def test_identify_matches_plaintext_cosine(holder: CkksKeyHolder, matcher: CkksMatcher, gallery_x: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    matcher.add("late", holder.encrypt_template(gallery_x[N_BLOCK]))  # compact enrolment into slot 300
    probe = near(gallery_x[42], rng)
    scores = holder.decrypt_scores(matcher.score_all(holder.encrypt_probe(probe, verification=False)), dim=DIM)
    ids = [f"s{i}" for i in range(N_BLOCK)] + ["late"]
    assert list(scores) == ids
    got = np.array([scores[s] for s in ids])
    ref = gallery_x[: N_BLOCK + 1] @ probe
    assert np.abs(got - ref).max() < TOL
    np.testing.assert_array_equal(np.argsort(-got)[:10], np.argsort(-ref)[:10])
    assert max(scores, key=scores.__getitem__) == "s42"


@pytest.mark.parametrize("mask", [True, False])
def test_verify_one_subject(holder: CkksKeyHolder, matcher: CkksMatcher, gallery_x: np.ndarray, mask: bool) -> None:
    probe = near(gallery_x[5], np.random.default_rng(2))
    reply = matcher.score_one("s5", holder.encrypt_probe(probe, verification=mask), mask=mask)
    assert holder.decrypt_scores(reply, dim=DIM) == pytest.approx({"s5": float(gallery_x[5] @ probe)}, abs=TOL)
    (slots,) = holder.decrypt_score_slots(reply, dim=DIM)
    others = np.delete(slots, 5)
    if mask:  # the terminal learns nothing about the other subjects
        assert np.abs(others).max() < 1e-6
    else:
        assert np.abs(others[:N_BLOCK - 1] - np.delete(gallery_x[:N_BLOCK] @ probe, 5)).max() < TOL


def test_masked_verify_needs_full_level_probe(holder: CkksKeyHolder, matcher: CkksMatcher, gallery_x: np.ndarray) -> None:
    with pytest.raises(ProtocolError, match="level-0"):
        matcher.score_one("s1", holder.encrypt_probe(gallery_x[1], verification=False), mask=True)
    with pytest.raises(KeyError):
        matcher.score_one("nobody", holder.encrypt_probe(gallery_x[1]))


def test_dim_512(holder: CkksKeyHolder) -> None:
    rng = np.random.default_rng(3)
    x = unit_rows(rng, 21, 512)
    m = CkksMatcher.from_public_bundle(holder.export_public_bundle(), dim=512)
    m.add_block(holder.encrypt_block(x[:20]), [f"p{i}" for i in range(20)])
    m.add("q", holder.encrypt_template(x[20]))
    probe = near(x[20], rng)
    scores = holder.decrypt_scores(m.score_all(holder.encrypt_probe(probe, verification=False)), dim=512)
    ref = x @ probe
    assert np.abs(np.array([scores[f"p{i}"] for i in range(20)] + [scores["q"]]) - ref).max() < TOL
    one = holder.decrypt_scores(m.score_one("p3", holder.encrypt_probe(probe)), dim=512)
    assert one == pytest.approx({"p3": float(ref[3])}, abs=TOL)


def test_add_replace_delete_refresh(holder: CkksKeyHolder, matcher: CkksMatcher, gallery_x: np.ndarray) -> None:
    g = matcher.gallery
    new = gallery_x[N_BLOCK + 1]
    probe = holder.encrypt_probe(new, verification=False)
    with pytest.raises(ConfigError):
        matcher.add("s1", holder.encrypt_template(new))  # already enrolled
    old_location = g.location("s9")
    matcher.replace("s9", holder.encrypt_template(new))
    assert g.location("s9") != old_location
    assert matcher.delete("s3") == 0
    assert g.blocks_needing_refresh() == [0]
    scores = holder.decrypt_scores(matcher.score_all(probe), dim=DIM)
    assert "s3" not in scores and len(scores) == N_BLOCK - 1
    assert scores["s9"] == pytest.approx(1.0, abs=TOL)
    # A dirty slot is never reused before the refresh.
    block, slot = matcher.add("fresh", holder.encrypt_template(gallery_x[N_BLOCK + 2]))
    assert (block, slot) not in {(0, 3), old_location}
    # Terminal re-encrypts the block: deleted and replaced slots become zero and free.
    refreshed = holder.refresh_block(g.export_block(0), dim=DIM, keep_slots=g.live_slots(0))
    g.install_block(0, refreshed)
    assert g.blocks_needing_refresh() == []
    (slots,) = holder.decrypt_score_slots(matcher.score_all(probe), dim=DIM)
    assert abs(slots[3]) < 1e-6 and abs(slots[old_location[1]]) < 1e-6
    assert matcher.add("reuse", holder.encrypt_template(gallery_x[N_BLOCK + 3]))[1] == 3
    scores = holder.decrypt_scores(matcher.score_all(probe), dim=DIM)
    assert scores["reuse"] == pytest.approx(float(gallery_x[N_BLOCK + 3] @ new), abs=TOL)
    assert scores["s10"] == pytest.approx(float(gallery_x[10] @ new), abs=TOL)
    with pytest.raises(ProtocolError):  # occupancy must equal the live slots
        g.install_block(0, refreshed)


def test_bad_embeddings_refused(holder: CkksKeyHolder) -> None:
    with pytest.raises(EncodingOverflowError):
        holder.encrypt_probe(np.ones(DIM))
    with pytest.raises(ConfigError):
        holder.encrypt_template(np.ones(100) / 10)
    with pytest.raises(ConfigError):
        holder.encrypt_block(np.zeros((0, DIM)))


# -- key separation ----------------------------------------------------------------------


def test_public_bundle_holds_no_secret_key(holder: CkksKeyHolder) -> None:
    bundle = holder.export_public_bundle()
    ctx = CkksPublicContext.from_bundle(bundle)
    assert ctx.he.is_secret_key_empty()
    assert not hasattr(ctx, "decrypt_scores")
    secret = holder._he.to_bytes_secret_key(compr_mode="none")  # noqa: SLF001 - test inspects the key
    for compr in ("zstd", "none"):
        sk = holder._he.to_bytes_secret_key(compr_mode=compr)  # noqa: SLF001
        for start in range(64, len(sk) - 64, max(1, len(sk) // 16)):
            assert sk[start : start + 48] not in bundle
    assert len(secret) > 100_000


def test_public_bundle_cannot_decrypt(holder: CkksKeyHolder, tmp_path: Path) -> None:
    """A process holding only the bundle fails to decrypt (SEAL aborts or raises); it never prints the value."""
    (tmp_path / "bundle").write_bytes(holder.export_public_bundle())
    (tmp_path / "ct").write_bytes(wire.unpack(holder.encrypt_probe(np.eye(DIM)[0] * 1.0), kind=wire.Kind.PROBE,
                                              fingerprint=holder.fingerprint).blobs[0])
    script = textwrap.dedent(f"""
        from pathlib import Path
        from Pyfhel import PyCtxt
        from facepp.crypto.ckks.public_key import CkksPublicContext
        ctx = CkksPublicContext.from_bundle(Path({str(tmp_path / 'bundle')!r}).read_bytes())
        assert ctx.he.is_secret_key_empty()
        ct = PyCtxt(pyfhel=ctx.he); ct.from_bytes(Path({str(tmp_path / 'ct')!r}).read_bytes())
        print("VALUE", ctx.he.decryptFrac(ct)[:4])
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "VALUE" not in proc.stdout


def test_messages_to_matcher_never_contain_plaintext(holder: CkksKeyHolder, gallery_x: np.ndarray) -> None:
    x = gallery_x[:4]
    sent = b"".join([holder.encrypt_probe(x[0]), holder.encrypt_probe(x[0], verification=False),
                     holder.encrypt_template(x[0]), holder.encrypt_block(x)])
    for row in (x[0], x[3]):
        for dtype, width in ((np.float64, 2), (np.float32, 3)):
            raw = row.astype(dtype).tobytes()
            step = width * np.dtype(dtype).itemsize
            for start in range(0, len(raw) - step, 4 * step):  # a sample of windows keeps this fast
                assert raw[start : start + step] not in sent


def test_matcher_modules_never_load_secret_key_code() -> None:
    script = (
        "import sys, facepp.crypto.ckks.matcher, facepp.crypto.ckks.gallery;"
        "print(sorted(m for m in sys.modules if m.startswith('facepp')))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert "secret_key" not in out
    root = Path(__file__).resolve().parents[2] / "facepp" / "crypto" / "ckks"
    for name in ("matcher", "gallery", "ops", "messages", "wire", "public_key"):
        used = _code_identifiers((root / f"{name}.py").read_text())
        bad = {u for u in used if "decrypt" in u.lower() or u == "keyGen"
               or ("secret_key" in u and u != "is_secret_key_empty")}
        assert not bad, f"{name}.py uses secret-key code: {sorted(bad)}"


def _code_identifiers(source: str) -> set[str]:
    """Names, attributes and imported modules used by the code (docstrings and comments excluded)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module or "")
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


# -- serialisation round trips -----------------------------------------------------------


def test_secret_key_file_round_trip(holder: CkksKeyHolder, matcher: CkksMatcher, gallery_x: np.ndarray) -> None:
    again = CkksKeyHolder.from_secret_bytes(holder.to_secret_bytes())
    assert again.fingerprint == holder.fingerprint
    assert again.export_public_bundle() == holder.export_public_bundle()
    reply = matcher.score_one("s2", again.encrypt_probe(gallery_x[2]))
    assert holder.decrypt_scores(reply, dim=DIM)["s2"] == pytest.approx(1.0, abs=TOL)
    assert again.decrypt_scores(reply, dim=DIM)["s2"] == pytest.approx(1.0, abs=TOL)


def test_bundle_fingerprint_round_trip(holder: CkksKeyHolder, other_holder: CkksKeyHolder) -> None:
    ctx = CkksPublicContext.from_bundle(holder.export_public_bundle(), expected_fingerprint=holder.fingerprint)
    assert ctx.fingerprint == holder.fingerprint and ctx.params == holder.params
    assert holder.fingerprint != other_holder.fingerprint
    with pytest.raises(KeyMismatchError):
        CkksPublicContext.from_bundle(holder.export_public_bundle(), expected_fingerprint=other_holder.fingerprint)


def test_block_export_round_trip(holder: CkksKeyHolder, matcher: CkksMatcher) -> None:
    exported = matcher.gallery.export_block(0)
    m2 = CkksMatcher.from_public_bundle(holder.export_public_bundle(), dim=DIM)
    m2.add_block(exported, [f"s{i}" for i in range(N_BLOCK)])
    assert len(m2.gallery) == N_BLOCK


def test_gallery_storage_round_trip(holder: CkksKeyHolder, matcher: CkksMatcher, gallery_x: np.ndarray) -> None:
    matcher.add("extra", holder.encrypt_template(gallery_x[N_BLOCK]))
    matcher.delete("s4")
    data = matcher.gallery.to_bytes()
    loaded = EncryptedGallery.from_bytes(matcher.context, data)
    assert list(loaded) == list(matcher.gallery) and loaded.blocks_needing_refresh() == [0]
    restored = CkksMatcher(matcher.context, dim=DIM)
    restored.gallery = loaded
    probe = holder.encrypt_probe(gallery_x[N_BLOCK], verification=False)
    scores = holder.decrypt_scores(restored.score_all(probe), dim=DIM)
    assert scores["extra"] == pytest.approx(1.0, abs=TOL) and "s4" not in scores
    for bad in (data[:-5], _repack(data, fpr=bytes(32)), _repack(data, version=2)):
        with pytest.raises(ProtocolError):  # KeyMismatchError is a ProtocolError
            EncryptedGallery.from_bytes(matcher.context, bad)
    env = wire.unpack(data, kind=wire.Kind.GALLERY, fingerprint=holder.fingerprint)
    lying = wire.pack(wire.Kind.GALLERY, fingerprint=holder.fingerprint, meta=env.meta,
                      blobs=[b'{"subjects": [["a", 0, 4095]]}', *env.blobs[1:]])
    with pytest.raises(ProtocolError, match="live slots"):
        EncryptedGallery.from_bytes(matcher.context, lying)


# -- malformed and foreign input ---------------------------------------------------------


def _repack(data: bytes, **changes: object) -> bytes:
    """Rewrite header fields of an envelope (version, kind, fingerprint)."""
    magic, version, kind, flags, fpr, meta_len = struct.unpack_from("<4sHBB32sI", data)
    fields = {"magic": magic, "version": version, "kind": kind, "flags": flags, "fpr": fpr, **changes}
    head = struct.pack("<4sHBB32sI", fields["magic"], fields["version"], fields["kind"], fields["flags"],
                       fields["fpr"], meta_len)
    return head + data[struct.calcsize("<4sHBB32sI"):]


def _corrupt_blob(data: bytes, kind: wire.Kind, fpr: bytes, index: int) -> bytes:
    env = wire.unpack(data, kind=kind, fingerprint=fpr)
    blobs = list(env.blobs)
    blobs[index] = bytes(16) + blobs[index][16:]  # destroys SEAL's header
    return wire.pack(kind, fingerprint=fpr, meta=env.meta, blobs=blobs)


def _set_first_blob_length(data: bytes, length: int) -> bytes:
    (meta_len,) = struct.unpack_from("<I", data, 40)
    pos = 44 + meta_len + 4
    return data[:pos] + struct.pack("<I", length) + data[pos + 4 :]


MUTATIONS: dict[str, tuple[Callable[[bytes, wire.Kind, bytes], bytes], type[Exception]]] = {
    "empty": (lambda d, k, f: b"", ProtocolError),
    "truncated header": (lambda d, k, f: d[:20], ProtocolError),
    "truncated body": (lambda d, k, f: d[:-7], ProtocolError),
    "trailing bytes": (lambda d, k, f: d + b"\0", ProtocolError),
    "garbage": (lambda d, k, f: bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)), ProtocolError),
    "bad magic": (lambda d, k, f: _repack(d, magic=b"XXXX"), ProtocolError),
    "wrong version": (lambda d, k, f: _repack(d, version=99), KeyMismatchError),
    "wrong kind": (lambda d, k, f: _repack(d, kind=wire.Kind.SCORES if k != wire.Kind.SCORES else wire.Kind.PROBE),
                   KeyMismatchError),
    "unknown kind": (lambda d, k, f: _repack(d, kind=200), KeyMismatchError),
    "wrong fingerprint": (lambda d, k, f: _repack(d, fpr=bytes(32)), KeyMismatchError),
    "corrupted ciphertext": (lambda d, k, f: _corrupt_blob(d, k, f, -1), ProtocolError),
    "huge metadata length": (lambda d, k, f: d[:40] + struct.pack("<I", 2**31) + d[44:], ProtocolError),
    "huge blob length": (lambda d, k, f: _set_first_blob_length(d, 2**31), ProtocolError),
    "blob length past end": (lambda d, k, f: _set_first_blob_length(d, len(d)), ProtocolError),
}


@pytest.fixture(scope="module")
def messages(holder: CkksKeyHolder, gallery_x: np.ndarray, block_msg: bytes) -> dict[str, bytes]:
    m = CkksMatcher.from_public_bundle(holder.export_public_bundle(), dim=DIM)
    m.add_block(block_msg, [f"s{i}" for i in range(N_BLOCK)])
    probe = holder.encrypt_probe(gallery_x[0], verification=False)
    return {
        "probe": probe,
        "template": holder.encrypt_template(gallery_x[1]),
        "block": block_msg,
        "scores": m.score_all(probe),
    }


def _consumers(holder: CkksKeyHolder, matcher: CkksMatcher) -> dict[str, tuple[wire.Kind, Callable[[bytes], object]]]:
    return {
        "probe": (wire.Kind.PROBE, matcher.score_all),
        "template": (wire.Kind.TEMPLATE, lambda d: matcher.add("new", d)),
        "block": (wire.Kind.BLOCK, lambda d: matcher.add_block(d, [f"n{i}" for i in range(N_BLOCK)])),
        "scores": (wire.Kind.SCORES, lambda d: holder.decrypt_scores(d, dim=DIM)),
    }


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@pytest.mark.parametrize("name", ["probe", "template", "block", "scores"])
def test_malformed_messages_refused(
    holder: CkksKeyHolder, matcher: CkksMatcher, messages: dict[str, bytes], name: str, mutation: str
) -> None:
    kind, consume = _consumers(holder, matcher)[name]
    mutate, error = MUTATIONS[mutation]
    bad = mutate(messages[name], kind, holder.fingerprint)
    with pytest.raises(error):
        consume(bad)
    assert len(matcher.gallery) == N_BLOCK  # nothing half-applied


def test_foreign_key_messages_refused(holder: CkksKeyHolder, other_holder: CkksKeyHolder, matcher: CkksMatcher,
                                      gallery_x: np.ndarray) -> None:
    with pytest.raises(KeyMismatchError):
        matcher.score_all(other_holder.encrypt_probe(gallery_x[0], verification=False))
    with pytest.raises(KeyMismatchError):
        matcher.add("x", other_holder.encrypt_template(gallery_x[0]))
    with pytest.raises(KeyMismatchError):
        other_holder.decrypt_scores(matcher.score_all(holder.encrypt_probe(gallery_x[0])), dim=DIM)


def test_wrong_shape_messages_refused(holder: CkksKeyHolder, matcher: CkksMatcher, messages: dict[str, bytes],
                                      block_msg: bytes) -> None:
    x512 = np.eye(512)[0]
    with pytest.raises(ProtocolError, match="dimension"):
        matcher.score_all(holder.encrypt_probe(x512))
    with pytest.raises(ProtocolError, match="occupancy"):
        matcher.add_block(block_msg, ["a", "b"])
    env = wire.unpack(block_msg, kind=wire.Kind.BLOCK, fingerprint=holder.fingerprint)
    short_bitmap = wire.pack(wire.Kind.BLOCK, fingerprint=holder.fingerprint, meta=env.meta,
                             blobs=[env.blobs[0][:100], *env.blobs[1:]])
    with pytest.raises(ProtocolError, match="slots"):
        matcher.add_block(short_bitmap, ["a"])
    missing = wire.pack(wire.Kind.BLOCK, fingerprint=holder.fingerprint, meta=env.meta, blobs=list(env.blobs[:-1]))
    with pytest.raises(ProtocolError, match="blobs"):
        matcher.add_block(missing, ["a"])
    # A score ciphertext (level 2) where a probe (level 0/1) is expected.
    scores_env = wire.unpack(messages["scores"], kind=wire.Kind.SCORES, fingerprint=holder.fingerprint)
    probe_env = wire.unpack(messages["probe"], kind=wire.Kind.PROBE, fingerprint=holder.fingerprint)
    level2 = wire.pack(wire.Kind.PROBE, fingerprint=holder.fingerprint, meta=probe_env.meta, blobs=[scores_env.blobs[1]])
    with pytest.raises(ProtocolError, match="level"):
        matcher.score_all(level2)
    odd_scale = holder._he.encryptFrac(replicate(np.eye(DIM)[0], slots=holder.params.slots), scale=2.0**30)  # noqa: SLF001
    with pytest.raises(ProtocolError, match="scale"):
        matcher.score_all(msg.pack_probe(odd_scale, fingerprint=holder.fingerprint, dim=DIM))
    bad_index = wire.pack(wire.Kind.SCORES, fingerprint=holder.fingerprint, meta=scores_env.meta,
                          blobs=[b'{"entries": [["s1", 5, 0]]}', *scores_env.blobs[1:]])
    with pytest.raises(ProtocolError, match="outside"):
        holder.decrypt_scores(bad_index, dim=DIM)
    with pytest.raises(ProtocolError, match="JSON"):
        holder.decrypt_scores(wire.pack(wire.Kind.SCORES, fingerprint=holder.fingerprint, meta=scores_env.meta,
                                        blobs=[b"\xff{", *scores_env.blobs[1:]]), dim=DIM)


@pytest.mark.parametrize("mutation", ["truncated body", "garbage", "bad magic", "wrong version", "wrong kind",
                                      "trailing bytes", "corrupted ciphertext"])
def test_malformed_bundle_refused(holder: CkksKeyHolder, mutation: str) -> None:
    mutate, error = MUTATIONS[mutation]
    bundle = holder.export_public_bundle()
    if mutation == "corrupted ciphertext":  # corrupt the rotation keys, keep the header fingerprint
        error = KeyMismatchError
    with pytest.raises(error):
        CkksPublicContext.from_bundle(mutate(bundle, wire.Kind.PUBLIC_BUNDLE, holder.fingerprint))


def test_bundle_with_lying_content_refused(holder: CkksKeyHolder) -> None:
    env = wire.unpack(holder.export_public_bundle(), kind=wire.Kind.PUBLIC_BUNDLE, fingerprint=None)
    blobs = list(env.blobs)
    blobs[1] = bytes(16) + blobs[1][16:]
    relabelled = wire.pack(wire.Kind.PUBLIC_BUNDLE, fingerprint=wire.fingerprint_of(blobs), meta=env.meta, blobs=blobs)
    with pytest.raises(ProtocolError, match="public key"):
        CkksPublicContext.from_bundle(relabelled)
    # This bundle's keys (powers of two up to 256) under a header declaring baby_steps=512.
    lying = wire.pack(wire.Kind.PUBLIC_BUNDLE, fingerprint=env.fingerprint, meta=pack_params(CkksParams(baby_steps=512)),
                      blobs=list(env.blobs))
    with pytest.raises(ProtocolError, match="no rotation key for step 512"):
        CkksPublicContext.from_bundle(lying)
