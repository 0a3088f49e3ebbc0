"""Durable parameter-server state: an SQLite database plus ciphertext blob files.

Server side: holds ciphertexts and bookkeeping only. Blobs are written with
fsync + rename before the row that names them is committed, and SQLite runs
with ``synchronous=FULL``, so a crash at any point loses no accepted upload.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from facepp.io import atomic_write_bytes

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER PRIMARY KEY,
    opened_at REAL NOT NULL,
    deadline REAL NOT NULL,
    closed_at REAL,
    contributors INTEGER
);
CREATE TABLE IF NOT EXISTS uploads (
    round INTEGER NOT NULL,
    participant TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (round, participant)
);
CREATE TABLE IF NOT EXISTS upload_digests (
    digest TEXT PRIMARY KEY,
    round INTEGER NOT NULL,
    participant TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    round INTEGER NOT NULL,
    participant TEXT NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (round, participant, name)
);
"""


@dataclass(frozen=True)
class RoundRecord:
    round: int
    opened_at: float
    deadline: float
    closed_at: float | None
    contributors: int | None


class Store:
    """SQLite bookkeeping and blob files under one state directory (thread-safe)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        (self.directory / "uploads").mkdir(parents=True, exist_ok=True)
        (self.directory / "models").mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.directory / "state.sqlite3", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- blobs ---------------------------------------------------------------
    def model_path(self, round_: int) -> Path:
        return self.directory / "models" / f"model-{round_:05d}.bin"

    def upload_path(self, round_: int, participant: str) -> Path:
        return self.directory / "uploads" / f"round-{round_:05d}-{participant}.bin"

    def write_model(self, round_: int, data: bytes) -> None:
        atomic_write_bytes(self.model_path(round_), data)

    def read_model(self, round_: int) -> bytes:
        return self.model_path(round_).read_bytes()

    # -- rounds --------------------------------------------------------------
    def current_round(self) -> RoundRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM rounds ORDER BY round DESC LIMIT 1").fetchone()
        return RoundRecord(*row) if row else None

    def rounds(self) -> list[RoundRecord]:
        with self._lock:
            return [RoundRecord(*r) for r in self._db.execute("SELECT * FROM rounds ORDER BY round")]

    def open_round(self, round_: int, *, deadline: float) -> None:
        with self._lock:
            self._db.execute("INSERT INTO rounds (round, opened_at, deadline) VALUES (?, ?, ?)", (round_, time.time(), deadline))

    def close_round(self, round_: int, *, aggregate: bytes, contributors: int, next_deadline: float | None) -> None:
        """Persist the aggregate, then atomically close ``round_`` and open the next one (if any)."""
        self.write_model(round_, aggregate)
        with self._transaction() as db:
            now = time.time()
            db.execute("UPDATE rounds SET closed_at = ?, contributors = ? WHERE round = ?", (now, contributors, round_))
            if next_deadline is not None:
                db.execute("INSERT INTO rounds (round, opened_at, deadline) VALUES (?, ?, ?)", (round_ + 1, now, next_deadline))

    # -- uploads -------------------------------------------------------------
    def has_upload(self, round_: int, participant: str) -> bool:
        with self._lock:
            return self._db.execute(
                "SELECT 1 FROM uploads WHERE round = ? AND participant = ?", (round_, participant)
            ).fetchone() is not None

    def add_upload(self, round_: int, participant: str, data: bytes, *, digest: str) -> None:
        """Write the upload blob durably, then record it and its SHA-256. Caller checks for duplicates first."""
        atomic_write_bytes(self.upload_path(round_, participant), data)
        with self._transaction() as db:
            db.execute("INSERT INTO uploads (round, participant, bytes, received_at) VALUES (?, ?, ?, ?)",
                       (round_, participant, len(data), time.time()))
            db.execute("INSERT INTO upload_digests (digest, round, participant) VALUES (?, ?, ?)", (digest, round_, participant))

    def seen_upload(self, digest: str) -> bool:
        """Whether an upload with this SHA-256 was ever accepted."""
        with self._lock:
            return self._db.execute("SELECT 1 FROM upload_digests WHERE digest = ?", (digest,)).fetchone() is not None

    def uploads(self, round_: int) -> dict[str, int]:
        """Participant -> upload size in bytes, for one round."""
        with self._lock:
            rows = self._db.execute("SELECT participant, bytes FROM uploads WHERE round = ? ORDER BY participant", (round_,))
            return dict(rows.fetchall())

    def read_upload(self, round_: int, participant: str) -> bytes:
        return self.upload_path(round_, participant).read_bytes()

    # -- metrics -------------------------------------------------------------
    def add_metrics(self, round_: int, participant: str, metrics: dict[str, float]) -> bool:
        """Record one participant's report for a round; False (nothing written) if it already reported."""
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM metrics WHERE round = ? AND participant = ?", (round_, participant)).fetchone():
                return False
            db.executemany("INSERT INTO metrics (round, participant, name, value) VALUES (?, ?, ?, ?)",
                           [(round_, participant, k, v) for k, v in metrics.items()])
            return True

    def metrics(self) -> list[tuple[int, str, str, float]]:
        with self._lock:
            return self._db.execute("SELECT round, participant, name, value FROM metrics ORDER BY round").fetchall()

    def metrics_count(self) -> int:
        """Rows of reported metrics: grows with each report (reports are never overwritten)."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM metrics").fetchone()[0])
