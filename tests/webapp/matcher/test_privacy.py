"""Privacy audit: no plaintext embedding byte pattern reaches the matcher's requests or database.

After enrolments, replacements, a refresh, 1:1 and 1:N matches, every request
body the matcher received and its SQLite files (database and WAL) are scanned
for any 4 consecutive coordinates of any plaintext embedding (templates and
probes), as float32 and as float64, at every byte offset. A planted copy proves
the scan finds what it looks for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from facepp.crypto.ckks.secret_key import CkksKeyHolder
from tests.helpers.matcher import DIM, MatcherServer
from tests.helpers.matcher_flows import enrol_all, identify_scores, refresh, subject_ids, verify_score

WINDOW = 4


def find_windows(data: bytes, vectors: npt.NDArray[np.float64]) -> list[tuple[str, int]]:
    """Offsets in ``data`` of any ``WINDOW`` consecutive coordinates of ``vectors`` as float32 or float64.

    Every byte alignment is searched: candidate offsets are those whose word
    could start a window (vectorised table look-up), then the whole window is compared.

    Returns:
        ``[(dtype name, offset), ...]``.
    """
    hits: list[tuple[str, int]] = []
    buf = np.frombuffer(data, dtype=np.uint8)
    for dtype, word in ((np.float32, np.uint32), (np.float64, np.uint64)):
        plain = np.ascontiguousarray(vectors.astype(dtype))
        size = plain.itemsize
        starts = np.ascontiguousarray(plain[:, : plain.shape[1] - WINDOW + 1])
        windows = {plain[i, j : j + WINDOW].tobytes() for i in range(plain.shape[0]) for j in range(starts.shape[1])}
        # Pre-filter on the top 24 bits of each word (one table lookup per word), then compare exactly.
        shift = np.array(8 * size - 24, dtype=word)
        table = np.zeros(1 << 24, dtype=bool)
        table[starts.view(word).ravel() >> shift] = True
        for align in range(size):
            count = (len(buf) - align) // size
            if count <= 0:
                continue
            view = buf[align : align + count * size].view(word)
            for index in np.flatnonzero(table[view >> shift]):
                offset = align + int(index) * size
                if data[offset : offset + WINDOW * size] in windows:
                    hits.append((np.dtype(dtype).name, offset))
    return hits


def sqlite_files(server: MatcherServer) -> list[Path]:
    database = Path(server.db.removeprefix("sqlite:///"))
    return [p for p in (database, Path(f"{database}-wal"), Path(f"{database}-journal")) if p.exists()]


def test_matcher_never_receives_or_stores_plaintext(
    registered: MatcherServer, key_holder: CkksKeyHolder, embeddings: np.ndarray
) -> None:
    client = registered.client()
    ids = subject_ids(5)
    enrol_all(client, key_holder, ids, embeddings[:5])
    client.replace(ids[1], key_holder.encrypt_template(embeddings[5]))
    client.delete(ids[2])
    refresh(client, key_holder)
    rng = np.random.default_rng(3)
    probes = embeddings[[0, 3, 4]] + 0.2 * rng.normal(size=(3, DIM)) / np.sqrt(DIM)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    for p in probes:
        identify_scores(client, key_holder, p)
        verify_score(client, key_holder, ids[0], p)
    plaintexts = np.vstack([embeddings, probes])
    bodies = list(registered.recorder.bodies)
    assert sum(map(len, bodies)) > 10_000_000, "the scan covers the bundle, templates, probes and a block"
    registered.stop()  # flush and release the database files before reading them

    for i, body in enumerate(bodies):
        assert find_windows(body, plaintexts) == [], f"request body {i} carries plaintext embedding bytes"
    files = sqlite_files(registered)
    assert files and sum(p.stat().st_size for p in files) > 1_000_000
    for path in files:
        assert find_windows(path.read_bytes(), plaintexts) == [], f"{path.name} stores plaintext embedding bytes"
    stored = files[0].read_bytes()
    planted = stored[:4099] + probes[1, 7 : 7 + WINDOW].astype(np.float32).tobytes() + stored[4099:]
    assert find_windows(planted, plaintexts) == [("float32", 4099)], "the scan finds a planted probe"


def test_scan_finds_planted_embedding(embeddings: np.ndarray) -> None:
    noise = np.random.default_rng(5).bytes(1 << 20)
    assert find_windows(noise, embeddings) == []
    for dtype in (np.float32, np.float64):
        window = embeddings[3, 10 : 10 + WINDOW].astype(dtype).tobytes()
        planted = noise[:12345] + window + noise[12345:]  # odd offset: alignment does not matter
        assert find_windows(planted, embeddings) == [(np.dtype(dtype).name, 12345)]
