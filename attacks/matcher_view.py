"""What the facepp matcher holds after enrolments, and the best it can make of it.

:func:`enrol_on_matcher` plays the terminal: a fresh CKKS key pair, a real matcher (its
Flask app served by waitress on loopback over a SQLite file), the public bundle registered
and each template enrolled as the terminal does. The matcher keeps the requests it
received and its database: :class:`MatcherHoldings`.

:func:`templates_without_key` is the attacker's use of them. Without the secret key the
matcher knows which slot of which block holds a subject; it reads, for subject ``j`` and
coordinate ``k``, the 64-bit word at slot ``j`` of the block's ``k``-th ciphertext as if
it were the plaintext value, mapped to [-1, 1], and normalises the vector. CKKS is IND-CPA,
so these pseudo-templates carry nothing about the faces; the decoder's output on them is
compared with a guess from the prior alone.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facepp.crypto.ckks import wire
from facepp.crypto.ckks.secret_key import CkksKeyHolder
from webapp.matcher.app import create_app
from webapp.matcher.auth import create_api_key
from webapp.matcher.client import MatcherClient
from webapp.matcher.db import make_engine, upgrade
from webapp.matcher.store import MatcherStore


@dataclass(frozen=True)
class MatcherHoldings:
    """Everything the matcher has after the enrolments.

    Attributes:
        received: Every enrolment request body (public bundle aside), in order.
        database: The bytes of its SQLite files (database and write-ahead log).
        subjects: ``(subject id, block index, slot)`` rows of its database.
        blocks: Block index -> stored BLOCK message.
    """

    received: tuple[bytes, ...]
    database: bytes
    subjects: tuple[tuple[str, int, int], ...]
    blocks: dict[int, bytes]


def enrol_on_matcher(templates: np.ndarray, *, subject_ids: list[str], holder: CkksKeyHolder | None = None) -> MatcherHoldings:
    """Enrol ``templates`` through a real matcher; return what it holds afterwards."""
    import waitress

    holder = holder or CkksKeyHolder.generate()
    with tempfile.TemporaryDirectory(prefix="facepp-attack-matcher-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'matcher.db'}"
        engine = make_engine(url)
        upgrade(engine)
        api_key = create_api_key(MatcherStore(engine), "terminal")
        engine.dispose()
        app = create_app({"db": url})
        server = waitress.create_server(app, host="127.0.0.1", port=0, threads=2, max_request_body_size=1 << 30)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        sent = []
        try:
            client = MatcherClient(f"http://127.0.0.1:{server.effective_port}", api_key, timeout=120)
            client.register_bundle(holder.export_public_bundle(), dim=templates.shape[1])
            for sid, template in zip(subject_ids, templates):
                message = holder.encrypt_template(template)
                client.enrol(sid, message)
                sent.append(message)
        finally:  # close the connections, drain the workers, then stop the loop (waitress's own order)
            for channel in list(server._map.values()):
                channel.close()
            server.task_dispatcher.shutdown()
            thread.join(timeout=10)
        store = MatcherStore(make_engine(url))
        subjects = tuple(store.subjects())
        blocks = {index: store.block_data(index) for index, _, _ in store.block_bitmaps()}
        store.engine.dispose()
        database = b"".join(p.read_bytes() for p in sorted(Path(tmp).glob("matcher.db*")))
    return MatcherHoldings(received=tuple(sent), database=database, subjects=subjects, blocks=blocks)


def templates_without_key(holdings: MatcherHoldings, *, dim: int) -> dict[str, np.ndarray]:
    """Subject id -> the attacker's (dim,) unit pseudo-template read from its slot of its block."""
    out = {}
    for subject, block_index, slot in holdings.subjects:
        envelope = wire.unpack(holdings.blocks[block_index], kind=wire.Kind.BLOCK, fingerprint=None)
        ciphertexts = envelope.blobs[1:]
        words = []
        for k in range(dim):
            blob = ciphertexts[k % len(ciphertexts)]
            start = (8 * slot) % max(8, len(blob) - 8)
            words.append(int.from_bytes(blob[start : start + 8], "little"))
        vector = np.asarray(words, dtype=np.float64) / 2.0**63 - 1.0
        out[subject] = vector / max(float(np.linalg.norm(vector)), 1e-12)
    return out
