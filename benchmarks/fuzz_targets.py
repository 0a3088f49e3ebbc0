"""Fuzz targets: every parser that reads untrusted bytes, with its Hypothesis input strategy.

Shared by the quick fuzz tests (``tests/**/test_fuzz_*.py``, bounded examples) and
``benchmarks/abuse_bench.py`` (counts per target). A target's ``check`` runs one input
and classifies what happened; it never raises:

* ``accepted`` / ``refused``: the input was taken, or refused with a project error
  (:class:`~facepp.errors.FaceppError`) or, over HTTP, a 4xx answer;
* ``unexpected``: any other exception (a parser bug);
* ``server_error``: a 5xx answer (HTTP targets);
* ``state_changed``: refused, yet the service's stored state changed (HTTP targets).

Inputs are random bytes, structured headers with extreme field values, and valid
samples mutated by a few byte-level edits (so the deeper checks are reached).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import sqlite3
import tempfile
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facepp.errors import FaceppError


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    UNEXPECTED = "unexpected"
    SERVER_ERROR = "server_error"
    STATE_CHANGED = "state_changed"


BAD = frozenset({Outcome.UNEXPECTED, Outcome.SERVER_ERROR, Outcome.STATE_CHANGED})
Result = tuple[Outcome, str]


@dataclass(frozen=True)
class Target:
    """One parser (or service) under fuzz: an input strategy and a classifying ``check``."""

    name: str
    inputs: st.SearchStrategy[Any]
    check: Callable[[Any], Result]


@dataclass
class Tally:
    """What a fuzz run of one target saw."""

    target: str
    inputs_tried: int = 0
    accepted: int = 0
    refused: int = 0
    unexpected_exceptions: int = 0
    server_errors: int = 0
    state_changes: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, result: Result) -> None:
        outcome, detail = result
        self.inputs_tried += 1
        attribute = {Outcome.ACCEPTED: "accepted", Outcome.REFUSED: "refused", Outcome.UNEXPECTED: "unexpected_exceptions",
                     Outcome.SERVER_ERROR: "server_errors", Outcome.STATE_CHANGED: "state_changes"}[outcome]
        setattr(self, attribute, getattr(self, attribute) + 1)
        if outcome in BAD and len(self.failures) < 5:
            self.failures.append(detail)


def _settings(max_examples: int, seed: int | None) -> Callable[[Any], Any]:
    return settings(max_examples=max_examples, deadline=None, database=None, derandomize=seed is not None,
                    suppress_health_check=list(HealthCheck), print_blob=False)


def tally(target: Target, *, max_examples: int, seed: int | None = 0) -> Tally:
    """Run ``max_examples`` inputs through ``target`` and count the outcomes (the benchmark)."""
    found = Tally(target.name)

    @_settings(max_examples, seed)
    @given(target.inputs)
    def run(example: Any) -> None:
        found.add(target.check(example))

    run()
    return found


def assert_robust(target: Target, *, max_examples: int) -> None:
    """Fail (with Hypothesis's shrunk example) on any unexpected exception, 5xx or state change (the tests)."""

    @_settings(max_examples, None)
    @given(target.inputs)
    def run(example: Any) -> None:
        outcome, detail = target.check(example)
        assert outcome not in BAD, f"{target.name}: {outcome.value}: {detail}"

    run()


def parser_check(parse: Callable[[Any], object]) -> Callable[[Any], Result]:
    """``check`` for an in-process parser: project errors are refusals, anything else is a bug."""

    def check(example: Any) -> Result:
        try:
            parse(example)
        except FaceppError:
            return Outcome.REFUSED, ""
        except Exception as exc:  # noqa: BLE001 - classifying every other exception is the point
            return Outcome.UNEXPECTED, f"{type(exc).__name__}: {exc} <- {_short(example)}\n{traceback.format_exc(limit=-3)}"
        return Outcome.ACCEPTED, ""

    return check


def _short(example: Any) -> str:
    text = repr(example)
    return text if len(text) <= 300 else text[:300] + f"... ({len(text)} chars)"


# -- input strategies ------------------------------------------------------------------------------

INTERESTING_INTS = (0, 1, 2, 7, 8, 255, 256, 2**15, 2**16 - 1, 2**31 - 1, 2**32 - 1, 2**63, 2**64 - 1)


def _edit(data: bytes, edits: Sequence[tuple[int, int, bytes]]) -> bytes:
    out = bytearray(data)
    for kind, where, chunk in edits:
        at = where % (len(out) + 1)
        if kind == 0 and out:  # flip one byte
            at %= len(out)
            out[at] ^= (chunk[0] if chunk else 0xFF) or 1
        elif kind == 1:  # truncate
            del out[at:]
        elif kind == 2:  # insert
            out[at:at] = chunk
        elif kind == 3:  # overwrite
            out[at : at + len(chunk)] = chunk
        elif kind == 4:  # delete a few bytes
            del out[at : at + 1 + len(chunk)]
        else:  # duplicate a chunk
            out[at:at] = out[at : at + 1 + len(chunk) * 8]
    return bytes(out)


def mutated(samples: Sequence[bytes], *, random_max: int = 512) -> st.SearchStrategy[bytes]:
    """Random bytes, or a valid sample after 1-4 byte-level edits (flip, truncate, insert, overwrite, delete, repeat)."""
    edits = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 2**32), st.binary(max_size=16)), min_size=1, max_size=4)
    return st.one_of(st.binary(max_size=random_max), st.builds(_edit, st.sampled_from(list(samples)), edits))


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value, extremes included (huge ints, floats, unicode, deep nesting)."""
    leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.sampled_from(INTERESTING_INTS),
                       st.floats(allow_nan=False), st.text(max_size=20))
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                        max_leaves=max_leaves)


def json_documents(sample: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """JSON bytes: a valid document with fields dropped, replaced or added, or any JSON value, or mutated bytes."""

    def variant(drop: list[str], replace: dict[str, Any], extra: dict[str, Any]) -> bytes:
        doc = {k: v for k, v in sample.items() if k not in drop}
        doc.update({k: v for k, v in replace.items() if k in sample} | extra)
        return json.dumps(doc).encode()

    keys = st.sampled_from(sorted(sample))
    structured = st.builds(variant, st.lists(keys, max_size=2), st.dictionaries(keys, json_values(), max_size=2),
                           st.dictionaries(st.text(max_size=8), json_values(4), max_size=1))
    return st.one_of(structured, json_values().map(lambda v: json.dumps(v).encode()),
                     mutated([json.dumps(sample).encode()], random_max=64))


# -- in-process parser targets ---------------------------------------------------------------------


def paillier_samples(secret_key: Any, plan: Any) -> list[bytes]:
    """Valid uploads of two lengths, and one that parses but whose aggregate a participant refuses."""
    import numpy as np

    from facepp.crypto.paillier.secret_cipher import VectorCipher

    with VectorCipher(secret_key, plan.packing, workers=1) as cipher:
        samples = [cipher.encrypt(plan.contribution(np.full(n, 0.25), 5)).to_bytes() for n in (3, 80)]
        samples.append(cipher.encrypt(np.full(4, -plan.packing.clip)).to_bytes())
    return samples


def paillier_target(secret_key: Any, samples: Sequence[bytes], plan: Any) -> Target:
    """The Paillier wire format as the server parses an upload, then as a participant decrypts and checks it."""
    from facepp.crypto.paillier.encrypted_vector import _HEADER, MAGIC, EncryptedVector
    from facepp.crypto.paillier.secret_cipher import VectorCipher

    key = secret_key.public_key
    fingerprint = bytes.fromhex(key.fingerprint)
    ints = st.one_of(st.integers(0, 2**8 - 1), st.sampled_from(INTERESTING_INTS))
    header = st.builds(
        lambda fp, v, frac, clip, summands_max, bits, slot_bits, slots, summands, count, ct, body: _HEADER.pack(
            MAGIC, v % 256, fp, frac % 256, clip, summands_max % 2**32, bits % 2**16, slot_bits % 256, slots % 2**16,
            summands % 2**32, count % 2**64, ct % 2**16) + body,
        st.sampled_from([fingerprint, bytes(32)]), st.sampled_from([1, 1, 0, 2]), ints,
        st.floats(allow_nan=True, allow_infinity=True) | st.just(64.0), ints, st.sampled_from([2048, key.key_bits, 0, 4096]) | ints,
        ints, ints, ints, ints, st.sampled_from([key.ciphertext_bytes]) | ints, st.binary(max_size=600))

    def parse(data: bytes) -> None:
        vector = EncryptedVector.from_bytes(data, key)
        if vector.plan == plan.packing and vector.summands <= plan.participants and vector.count < 4096:
            with VectorCipher(secret_key, vector.plan, workers=1) as cipher:
                plan.average(cipher.decrypt(vector))

    return Target("paillier_wire", st.one_of(mutated(samples), header), parser_check(parse))


def ckks_samples(holder: Any, dim: int) -> tuple[Any, dict[str, bytes]]:
    """A matcher-side public context of ``holder`` and a valid probe (both levels), template and scores message."""
    import numpy as np

    from facepp.crypto.ckks.matcher import CkksMatcher

    x = np.random.default_rng(0).normal(size=(2, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    matcher = CkksMatcher.from_public_bundle(holder.export_public_bundle(), dim=dim)
    matcher.add("s1", holder.encrypt_template(x[0]))
    probe = holder.encrypt_probe(x[1])
    return matcher.context, {"probe": probe, "probe-identify": holder.encrypt_probe(x[1], verification=False),
                             "template": holder.encrypt_template(x[1]), "scores": matcher.score_all(probe)}


def ckks_target(context: Any, samples: dict[str, bytes], dim: int) -> Target:
    """The CKKS wire format as the matcher parses probes, templates and blocks, and the terminal scores
    (SEAL loading included)."""
    from facepp.crypto.ckks import messages

    parsers: dict[str, Callable[[bytes], object]] = {
        "probe": lambda d: messages.parse_probe(context.he, d, fingerprint=context.fingerprint, params=context.params, dim=dim),
        "template": lambda d: messages.parse_template(context.he, d, fingerprint=context.fingerprint, params=context.params, dim=dim),
        "block": lambda d: messages.parse_block(context.he, d, fingerprint=context.fingerprint, params=context.params, dim=dim),
        "scores": lambda d: messages.parse_scores(context.he, d, fingerprint=context.fingerprint, dim=dim,
                                                  score_scale=context.score_scale),
    }
    inputs = st.tuples(st.sampled_from(sorted(parsers)), mutated(list(samples.values())))
    return Target("ckks_wire", inputs, parser_check(lambda pair: parsers[pair[0]](pair[1])))


def federation_bodies_target() -> Target:
    """The participants' metrics body and the round status a participant reads (JSON, strict)."""
    from training.protocol import RoundStatus, parse_metrics

    metrics = {"version": 1, "metrics": {"local_loss": 0.5, "local_accuracy": 0.9}}
    status = {"version": 1, "round": 1, "total_rounds": 2, "finished": False, "deadline": 1.0, "quorum": 2,
              "participants": 3, "uploaded": False, "model_round": 0, "fingerprint": "ab", "value_count": 10}
    inputs = st.one_of(st.tuples(st.just("metrics"), json_documents(metrics)),
                       st.tuples(st.just("status"), json_documents(status)))
    return Target("federation_bodies", inputs, parser_check(
        lambda pair: parse_metrics(pair[1]) if pair[0] == "metrics" else RoundStatus.from_json(pair[1])))


def image_samples() -> list[bytes]:
    """Small valid images in every accepted container, plus a decompression-bomb header."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, size=(12, 10, 3), dtype=np.uint8)
    samples = []
    for fmt, mode in (("JPEG", "RGB"), ("PNG", "RGB"), ("PPM", "L"), ("GIF", "P"), ("BMP", "RGB"), ("TIFF", "RGB"),
                      ("WEBP", "RGB"), ("PNG", "I;16")):
        buffer = io.BytesIO()
        Image.fromarray(pixels).convert(mode).save(buffer, format=fmt)
        samples.append(buffer.getvalue())
    samples.append(b"P5\n60000 60000\n255\n" + bytes(64))  # header of a 3.6-gigapixel PGM
    return samples


def image_target(samples: Sequence[bytes]) -> Target:
    """The one image decoder every role uses for files and uploads."""
    from facepp.data.images import decode_image_bytes

    return Target("image_decoder", mutated(samples), parser_check(decode_image_bytes))


def settings_samples() -> dict[str, bytes]:
    """A valid file of each kind."""
    from training.participant.spec import TrainingSpec

    federation = {"public_key": "public_key.json", "participants": {"a": "0" * 64, "b": "1" * 64}, "total_rounds": 2,
                  "quorum": 2, "round_timeout_s": 60.0, "operator": "2" * 64}
    return {
        "matcher": b'[matcher]\ndb = "sqlite:///m.db"\nport = 8600\nthreads = 4\nauto_migrate = true\n',
        "terminal": b'[terminal]\nmatcher_url = "http://127.0.0.1:8600"\nport = 8700\nscore_decimals = 3\n',
        "federation": json.dumps(federation).encode(),
        "training": TrainingSpec(total_rounds=2, participants=("a", "b")).to_json().encode(),
    }


def settings_target(samples: dict[str, bytes]) -> Target:
    """Settings files: the matcher's and the terminal's TOML, the server's federation.json, a participant's training.json."""
    from training.participant.spec import TrainingSpec
    from training.server.coordinator import FederationConfig
    from webapp.matcher.config import MatcherConfig
    from webapp.terminal.config import TerminalConfig

    folder = Path(tempfile.mkdtemp(prefix="facepp-fuzz-settings-"))

    def toml_values() -> st.SearchStrategy[str]:
        return st.one_of(st.integers().map(str), st.floats().map(repr), st.booleans().map(lambda b: str(b).lower()),
                         st.text(max_size=12).map(json.dumps),
                         st.sampled_from(["inf", "-inf", "nan", "1e400", "-0.0", "0x10", "[1, 2]", "{ a = 1 }", '""',
                                          "1979-05-27T07:32:00Z", str(2**64)]))

    def toml_document(section: str, names: list[str]) -> st.SearchStrategy[bytes]:
        line = st.tuples(st.sampled_from(names + ["unknown", section]), toml_values()).map(lambda kv: f"{kv[0]} = {kv[1]}")
        lines = st.lists(line, max_size=4, unique_by=lambda s: s.split(" = ")[0])
        return st.builds(lambda head, body: (head + "\n".join(body)).encode(),
                         st.sampled_from(["", f"[{section}]\n"]), lines)

    matcher_fields = [f.name for f in dataclasses.fields(MatcherConfig)]
    terminal_fields = [f.name for f in dataclasses.fields(TerminalConfig)]

    def load(pair: tuple[str, bytes]) -> object:
        kind, data = pair
        path = folder / {"matcher": "matcher.toml", "terminal": "terminal.toml", "federation": "federation.json",
                         "training": "training.json"}[kind]
        path.write_bytes(data)
        if kind == "matcher":
            return MatcherConfig.load(file=path, env={})
        if kind == "terminal":
            return TerminalConfig.load(file=path, env={})
        if kind == "federation":
            return FederationConfig.load(path)
        return TrainingSpec.from_json(data.decode("utf-8", errors="replace"))

    inputs = st.one_of(
        st.tuples(st.just("matcher"), toml_document("matcher", matcher_fields) | mutated([samples["matcher"]], random_max=64)),
        st.tuples(st.just("terminal"), toml_document("terminal", terminal_fields) | mutated([samples["terminal"]], random_max=64)),
        st.tuples(st.just("federation"), json_documents(json.loads(samples["federation"]))),
        st.tuples(st.just("training"), json_documents(json.loads(samples["training"]))),
    )
    return Target("settings_files", inputs, parser_check(load))


# -- HTTP targets ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def http_check(base_url: str, snapshot: Callable[[], str], *, timeout: float = 60.0) -> Callable[[HttpRequest], Result]:
    """``check`` for a live service: 5xx is a server error; a refused request must leave ``snapshot()`` unchanged."""
    session = requests.Session()
    before = {"state": snapshot()}

    def check(request: HttpRequest) -> Result:
        try:
            response = session.request(request.method, base_url + request.path, headers=request.headers,
                                       data=request.body, timeout=timeout)
        except requests.RequestException as exc:
            return Outcome.UNEXPECTED, f"no answer ({type(exc).__name__}) to {request.method} {request.path}"
        now = snapshot()
        changed, before["state"] = now != before["state"], now
        where = f"{request.method} {request.path} -> {response.status_code}"
        if response.status_code >= 500:
            return Outcome.SERVER_ERROR, f"{where}: {response.text[:200]}"
        if response.status_code >= 400:
            return (Outcome.STATE_CHANGED, f"{where} changed the state") if changed else (Outcome.REFUSED, "")
        return Outcome.ACCEPTED, ""

    return check


def sqlite_snapshot(path: Path, *, skip: Callable[[str], str | None] = lambda table: None) -> str:
    """SHA-256 over every row of every table (read only); ``skip(table)`` may return a WHERE clause to leave rows out."""
    def row_digest(table: str, row: tuple[Any, ...]) -> bytes:
        h = hashlib.sha256(table.encode())
        for value in row:
            h.update(bytes(value) if isinstance(value, (bytes, memoryview)) else repr(value).encode())
            h.update(b"\0")
        return h.digest()

    digest = hashlib.sha256()
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        for table in tables:
            where = skip(table)
            query = f'SELECT * FROM "{table}"' + (f" WHERE {where}" if where else "")
            for row in sorted(row_digest(table, row) for row in db.execute(query)):
                digest.update(row)
    return digest.hexdigest()


def files_snapshot(folder: Path) -> str:
    """SHA-256 over the names and bytes of every file under ``folder`` except SQLite's own (see :func:`sqlite_snapshot`)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".sqlite3" not in p.name):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def auth_headers(valid: Sequence[str]) -> st.SearchStrategy[dict[str, str]]:
    """Authorization headers: none, valid bearer tokens, wrong or malformed ones."""
    return st.one_of(
        st.just({}),
        st.sampled_from([{"Authorization": f"Bearer {t}"} for t in valid]),
        st.sampled_from([{"Authorization": a} for a in ("Bearer ", "Bearer wrong", "Basic Zm9vOmJhcg==", "Basic ***",
                                                         "bearer x", "Bearer " + "x" * 600)]),
        # Latin-1 without control or space characters: requests refuses to send a value that starts
        # with one (U+0085 and U+00A0 count as whitespace), which would be reported as "no answer".
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0xFF, blacklist_categories=("Cc", "Zs")),
                max_size=40).map(lambda t: {"Authorization": t}),
    )


def federation_http_target(base_url: str, state_dir: Path, tokens: dict[str, str], samples: Sequence[bytes]) -> Target:
    """A live parameter server: uploads (bound to their round with a valid MAC, so the body parser is reached),
    metrics bodies and the status pages, from participants, the operator, strangers and wrong tokens."""
    from training.protocol import UPLOAD_MAC_HEADER, hash_token, upload_mac

    participants = sorted(tokens)

    def upload(name: str, round_: int, body: bytes, signed: bool) -> HttpRequest:
        headers = {"Authorization": f"Bearer {tokens[name]}", "Content-Type": "application/octet-stream"}
        if signed:
            headers[UPLOAD_MAC_HEADER] = upload_mac(hash_token(tokens[name]), round_, body)
        return HttpRequest("POST", f"/api/v1/rounds/{round_}/update", headers, body)

    rounds = st.sampled_from([1, 2, 0, 99]) | st.integers(-3, 2**70).map(int)
    uploads = st.builds(upload, st.sampled_from(participants), st.sampled_from([1, 1, 2, 0]), mutated(samples), st.booleans())
    metrics = st.builds(lambda name, round_, body: HttpRequest("POST", f"/api/v1/rounds/{round_}/metrics",
                                                              {"Authorization": f"Bearer {tokens[name]}"}, body),
                        st.sampled_from(participants), rounds, json_documents({"version": 1, "metrics": {"loss": 0.5}}))
    other = st.builds(HttpRequest, st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
                      st.sampled_from(["/", "/status.json", "/metrics.png", "/api/v1/round", "/api/v1/model",
                                       "/api/v1/rounds/1/update", "/api/v1/rounds/x/update", "/nope", "/api/v1/"]),
                      auth_headers(list(tokens.values())), st.binary(max_size=64))
    snapshot = lambda: sqlite_snapshot(state_dir / "state.sqlite3") + files_snapshot(state_dir)  # noqa: E731
    return Target("federation_http", st.one_of(uploads, metrics, other), http_check(base_url, snapshot))


def matcher_http_target(base_url: str, db_path: Path, api_keys: Sequence[str], samples: dict[str, bytes], dim: int) -> Target:
    """A live matcher: every route with valid keys (give one per scope set), wrong or no keys, mutated CKKS
    bodies, odd ids and dims.

    The audit log is left out of the state: a refusal of an authenticated request is audited on purpose.
    """
    ids = st.one_of(st.sampled_from(["s1", "s2", "new-subject", "", "..", "a" * 65, "%00", "x/y", "é"]),
                    st.text(max_size=8).map(lambda t: requests.utils.quote(t, safe="")))
    body = mutated(list(samples.values()))
    routes = st.one_of(
        st.builds(lambda d, r: ("PUT", f"/api/v1/bundle?dim={d}{r}"), st.sampled_from(["", str(dim), "7", "-1", "4096", "x" * 5]),
                  st.sampled_from(["", "&replace=true", "&replace=1", "&replace=x"])),
        st.just(("GET", "/api/v1/bundle")), st.just(("GET", "/api/v1/subjects")),
        st.builds(lambda m, i: (m, f"/api/v1/subjects/{i}"), st.sampled_from(["POST", "PUT", "DELETE", "GET"]), ids),
        st.builds(lambda i: ("POST", f"/api/v1/subjects/{i}/score"), ids),
        st.just(("POST", "/api/v1/identify")), st.just(("GET", "/api/v1/blocks/stale")),
        st.builds(lambda m, i: (m, f"/api/v1/blocks/{i}"), st.sampled_from(["GET", "PUT"]), st.sampled_from(["0", "1", "-1", "99", "x"])),
        st.builds(lambda p: ("GET", p), st.sampled_from(["/", "/api/v1/", "/api/v1/health", "/api/v2/subjects"])),
    )
    valid = [{"Authorization": f"Bearer {key}"} for key in api_keys]
    auth = st.one_of(st.sampled_from(valid), st.sampled_from(valid), auth_headers(api_keys))
    inputs = st.builds(lambda route, headers, data: HttpRequest(route[0], route[1], headers, data), routes, auth, body)
    snapshot = lambda: sqlite_snapshot(db_path, skip=lambda t: "0" if t == "audit_log" else None)  # noqa: E731
    return Target("matcher_http", inputs, http_check(base_url, snapshot))


def run_all(targets: Sequence[Target], *, max_examples: int, seed: int = 0) -> list[Tally]:
    """Tally every target (the benchmark's fuzz phase)."""
    return [tally(t, max_examples=max_examples, seed=seed) for t in targets]


__all__ = ["BAD", "HttpRequest", "Outcome", "Tally", "Target", "assert_robust", "ckks_target", "federation_bodies_target",
           "federation_http_target", "files_snapshot", "image_target", "matcher_http_target", "mutated",
           "paillier_target", "run_all", "settings_target", "sqlite_snapshot", "tally"]
