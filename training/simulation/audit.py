"""Privacy audit: look for plaintext update bytes in what the server received and stored.

Used by ``facepp simulate`` and the tests. A participant's contribution can only
leak as its raw float32/float64 bytes, its fixed-point slot encodings or its
packed plaintext integers; the audit searches every such representation.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import ahocorasick
import numpy as np

from facepp.crypto.paillier.packing import PackingPlan, encode, pack

WINDOW_VALUES = 4  # a leak of >= 4 consecutive values is found
PROBES = 64  # positions probed per vector and representation


def _windows(raw: bytes, width: int, rng: np.random.Generator) -> Iterable[bytes]:
    if len(raw) <= width:
        yield raw
        return
    for start in rng.integers(0, len(raw) - width, PROBES):
        yield raw[start : start + width]


def representations(vector: np.ndarray, plan: PackingPlan) -> dict[str, tuple[bytes, int]]:
    """The byte strings a plaintext contribution could leak as, with their window widths."""
    slots = encode(vector, plan, saturate=True)
    plaintexts = pack(slots, plan)
    nbytes = (plan.plaintext_bits + 7) // 8
    return {
        "float32": (vector.astype("<f4").tobytes(), 4 * WINDOW_VALUES),
        "float64": (vector.astype("<f8").tobytes(), 8 * WINDOW_VALUES),
        "fixed-point (little-endian)": (slots.astype("<u8").tobytes(), 8 * WINDOW_VALUES),
        "fixed-point (big-endian)": (slots.astype(">u8").tobytes(), 8 * WINDOW_VALUES),
        "packed plaintext": (b"".join(int(m).to_bytes(nbytes, "big") for m in plaintexts), 32),
    }


def find_leaks(haystack: bytes, vectors: dict[str, np.ndarray], plan: PackingPlan, *, seed: int = 0) -> list[str]:
    """Names of (vector, representation) pairs found in ``haystack``; empty when nothing leaked.

    Every probe window is searched for in one pass (Aho-Corasick), so the audit costs one
    scan of the haystack however many rounds and participants contributed.
    """
    rng = np.random.default_rng(seed)
    sources: dict[str, list[str]] = {}  # probe window (latin-1, one char per byte) -> its sources
    order: list[str] = []
    for name, vector in vectors.items():
        for kind, (raw, width) in representations(np.asarray(vector), plan).items():
            order.append(f"{name}: {kind}")
            for window in _windows(raw, width, rng):
                if window.strip(b"\0"):
                    sources.setdefault(window.decode("latin-1"), []).append(order[-1])
    if not sources:
        return []
    automaton = ahocorasick.Automaton()
    for probe in sources:
        automaton.add_word(probe, probe)
    automaton.make_automaton()
    found = {source for _, probe in automaton.iter(haystack.decode("latin-1")) for source in sources[probe]}
    return [source for source in order if source in found]


def read_tree(paths: Iterable[Path]) -> bytes:
    """Every byte of every file under the given files/folders, concatenated."""
    chunks: list[bytes] = []
    for path in paths:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        chunks.extend(f.read_bytes() for f in files)
    return b"\n".join(chunks)
