"""The terminal's recognition service: images in memory -> embeddings -> CKKS -> matcher.

Terminal only (holds the model and the CKKS secret key). Images are decoded in
memory, embedded and dropped; the only things that leave the process are the
public bundle, ciphertexts and opaque subject ids. Scores are decrypted here,
S-normalised here when the model carries a cohort (the probe's cohort statistics
are computed at each query, the template's at enrolment: :mod:`facepp.model.cohort`),
decided here, and returned rounded to ``score_decimals`` (the CKKS IND-CPA-D
caveat of ``docs/ckks.md`` §7: full-precision decrypted values are never exposed).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from facepp.data.images import decode_image_bytes
from facepp.errors import (
    ConfigError,
    ConflictError,
    FaceppError,
    NotFoundError,
    ProtocolError,
)
from facepp.model.cohort import s_norm
from facepp.model.embedder import Embedder
from webapp.matcher.client import MatcherClient, StaleLocationsError, live_slots
from webapp.terminal.config import TerminalConfig
from webapp.terminal.db import Database
from webapp.terminal.errors import BadRequestError, MatcherError, SubjectIdError
from webapp.terminal.keystore import TerminalKeys, opaque_subject_id

logger = logging.getLogger(__name__)

#: Identifications tried when the gallery changes between a 1:N reply and its location table.
IDENTIFY_ATTEMPTS = 3
#: Subject names: 1-64 characters, letters/digits first, then letters, digits, space, ``. _ ' @ -``.
SUBJECT_ID_RE = re.compile(r"[^\W_][\w .'@-]{0,63}")


def check_subject_id(value: object) -> str:
    """Validate an operator-facing subject name (surrounding spaces are stripped).

    Raises:
        SubjectIdError: not a string, empty, too long or with a character outside the rules
            (no ``/``, ``\\``, quotes other than ``'``, ``;``, ``=``, control characters...).
    """
    if not isinstance(value, str):
        raise SubjectIdError("subject_id is required")
    name = value.strip()
    if not name:
        raise SubjectIdError("subject_id is required")
    if not SUBJECT_ID_RE.fullmatch(name):
        raise SubjectIdError(
            "subject_id must be 1-64 characters: a letter or digit first, then letters, digits, "
            "spaces or . _ ' @ -"
        )
    return name


@dataclass(frozen=True)
class Upload:
    """One uploaded image, held in memory only."""

    name: str
    data: bytes


@dataclass(frozen=True)
class EnrolResult:
    subject_id: str
    images: int
    enrolled_at: datetime
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class VerifyResult:
    subject_id: str
    match: bool
    score: float
    threshold: float
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Candidate:
    subject_id: str
    score: float
    match: bool


@dataclass(frozen=True)
class IdentifyResult:
    candidates: tuple[Candidate, ...]
    threshold: float
    gallery_size: int
    notes: tuple[str, ...] = ()


def resolve_threshold(config: TerminalConfig, embedder: Embedder) -> float:
    """The decision threshold: the configured override, else the checkpoint's calibrated one.

    Raises:
        ConfigError: neither is set, or the override is not a score of the model's kind
            (a cosine in [-1, 1]; any finite value for S-normalised scores).
    """
    if config.threshold is not None:
        value = float(config.threshold)
        if embedder.cohort is None and not -1.0 <= value <= 1.0:
            raise ConfigError(f"threshold is a cosine similarity in [-1, 1], got {value}")
        if not math.isfinite(value):
            raise ConfigError(f"threshold must be a finite S-normalised score, got {value}")
        return value
    if embedder.threshold is not None:
        return float(embedder.threshold)
    raise ConfigError(
        f"checkpoint {config.checkpoint} has no calibrated threshold: calibrate it "
        "(facepp evaluate --calibrate-far ...) or set threshold (FACEPP_TERMINAL_THRESHOLD / --threshold)"
    )


class TerminalService:
    """Enrol, verify, identify and delete subjects through the encrypted matcher.

    Thread-safe: embedding and CKKS operations are serialised by locks (both are
    CPU-bound on a shared core); matcher round trips run concurrently.

    Args:
        config: the terminal settings.
        embedder: the face model.
        keys: the terminal's secrets.
        database: operators and subject names.
        client: the matcher client.
        threshold: decision threshold (on cosines, or on S-normalised scores for a model with a cohort).
    """

    def __init__(self, *, config: TerminalConfig, embedder: Embedder, keys: TerminalKeys, database: Database,
                 client: MatcherClient, threshold: float) -> None:
        self.config = config
        self.embedder = embedder
        self.keys = keys
        self.db = database
        self.client = client
        self.threshold = threshold
        self.dim = keys.holder.params.check_dim(embedder.embedding_dim)
        self._embed_lock = threading.Lock()
        self._crypto_lock = threading.Lock()
        self._register_lock = threading.Lock()
        self._registered = False

    # -- helpers ---------------------------------------------------------------------------

    def opaque_id(self, name: str) -> str:
        """The matcher-side id of ``name`` (HMAC-SHA256 under the terminal's key, truncated hex)."""
        return opaque_subject_id(self.keys.hmac_key, name, hex_chars=self.config.id_hex_chars)

    @property
    def scoring(self) -> str:
        """What scores and the threshold are, for people reading them."""
        return "cosine similarity" if self.embedder.cohort is None else "S-normalised score"

    def cohort_stats(self, vector: npt.NDArray[np.float64] | npt.NDArray[np.float32]) -> tuple[float, float] | None:
        """A template's or probe's cohort ``(mean, sigma)``, or None for a model without a cohort."""
        if self.embedder.cohort is None:
            return None
        mean, sigma = self.embedder.cohort.stats(vector)[0]
        return float(mean), float(sigma)

    def decided(self, scores: dict[str, float], probe: npt.NDArray[np.float32]) -> dict[str, float]:
        """The scores decisions are made on: the decrypted cosines, or their S-norm with the
        probe's and each template's cohort stats (subjects without stats are left out, with a warning)."""
        probe_stats = self.cohort_stats(probe)
        if probe_stats is None:
            return scores
        stats = self.db.score_stats(list(scores) if len(scores) == 1 else None)
        if missing := len(set(scores) - set(stats)):
            logger.warning("%d enrolled subjects have no cohort statistics: they are not scored", missing)
        return {o: float(s_norm(s, probe_stats, stats[o])) for o, s in scores.items() if o in stats}

    def rounded(self, score: float) -> float:
        """A score as shown to anyone: rounded to ``score_decimals``."""
        return round(float(score), self.config.score_decimals)

    def embed_uploads(self, uploads: Sequence[Upload]) -> tuple[npt.NDArray[np.float32], tuple[str, ...]]:
        """Decode, detect, align and embed images held in memory.

        Returns:
            ``((k, dim) float32 L2-normalised, notes)``; notes say when an image held several faces.

        Raises:
            BadRequestError: no image.
            ImageError: an upload is not a readable image (message names the upload).
            NoFaceError: no face in an upload (message names the upload).
        """
        if not uploads:
            raise BadRequestError("no image was sent")
        if len(uploads) > self.config.max_images:
            raise BadRequestError(f"at most {self.config.max_images} images per request, got {len(uploads)}")
        crops: list[np.ndarray] = []
        notes: list[str] = []
        with self._embed_lock:
            for i, upload in enumerate(uploads, start=1):
                label = f"image {i} ({upload.name})" if upload.name else f"image {i}"
                try:
                    pixels = decode_image_bytes(upload.data, name=label)
                    aligned = self.embedder.align(pixels)
                except FaceppError as exc:
                    if str(exc).startswith(label):
                        raise
                    raise type(exc)(f"{label}: {exc}") from None
                crops.append(aligned.views)
                notes.extend(f"{label}: {note}" for note in aligned.notes)
                del pixels
            vectors = self.embedder.embed_crops(np.stack(crops))
        return vectors, tuple(notes)

    @staticmethod
    def template_of(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """One template from several embeddings: mean of the L2-normalised rows, re-normalised."""
        x = np.asarray(vectors, dtype=np.float64)
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        mean = x.mean(axis=0)
        norm = float(np.linalg.norm(mean))
        if norm < 1e-6:
            raise BadRequestError("the images disagree completely (their embeddings cancel out): use other images")
        return mean / norm

    def ensure_registered(self) -> None:
        """PUT the public bundle to the matcher once (idempotent on the matcher side).

        Raises:
            MatcherError: unreachable matcher.
            ConfigError: the matcher holds a gallery under another key.
        """
        if self._registered:
            return
        with self._register_lock:
            if self._registered:
                return
            bundle = self.keys.holder.export_public_bundle()
            try:
                answer = self.client.register_bundle(bundle, dim=self.dim)
            except ConflictError as exc:
                raise ConfigError(f"the matcher already holds a gallery under another CKKS key: {exc}") from None
            if answer.get("fingerprint") not in (None, self.keys.holder.fingerprint_hex):
                raise MatcherError("the matcher registered a bundle with another fingerprint")
            self._registered = True
            logger.info("public bundle %s registered with the matcher (dim %d, %d B)",
                        self.keys.holder.fingerprint_hex[:16], self.dim, len(bundle))

    def _subject(self, name: str) -> tuple[str, str]:
        name = check_subject_id(name)
        row = self.db.subject(name)
        if row is None:
            raise NotFoundError(f"subject {name!r} is not enrolled")
        return name, row.opaque_id

    # -- operations ------------------------------------------------------------------------

    def enrol(self, name: str, uploads: Sequence[Upload], *, operator: str) -> EnrolResult:
        """Enrol ``name`` from one or more images (their embeddings averaged into one template).

        Raises:
            SubjectIdError, BadRequestError, ImageError, NoFaceError: bad input.
            ConflictError: ``name`` is already enrolled.
            MatcherError: matcher failure (nothing is recorded then).
        """
        name = check_subject_id(name)
        if self.db.subject(name) is not None:
            raise ConflictError(f"subject {name!r} is already enrolled: delete it first to re-enrol")
        vectors, notes = self.embed_uploads(uploads)
        template = self.template_of(vectors)
        stats = self.cohort_stats(template)
        with self._crypto_lock:
            message = self.keys.holder.encrypt_template(template)
        del template, vectors
        opaque = self.opaque_id(name)
        self.ensure_registered()
        try:
            self.client.enrol(opaque, message)
        except ConflictError:
            raise ConflictError(f"subject {name!r} is already enrolled") from None
        try:
            row = self.db.add_subject(name=name, opaque_id=opaque, images=len(uploads), enrolled_by=operator, stats=stats)
        except ConflictError:
            self._forget_on_matcher(opaque)
            raise
        logger.info("enrolled subject %s (%d image(s)) by %s", opaque[:8], len(uploads), operator)
        return EnrolResult(subject_id=name, images=len(uploads), enrolled_at=row.enrolled_at, notes=notes)

    def _forget_on_matcher(self, opaque: str) -> None:
        try:
            self.client.delete(opaque)
        except FaceppError as exc:
            logger.error("could not undo enrolment %s on the matcher: %s", opaque[:8], exc)

    def verify(self, name: str, upload: Upload) -> VerifyResult:
        """1:1: does the face in ``upload`` match the template of ``name``?

        Raises:
            NotFoundError: ``name`` is not enrolled.
            SubjectIdError, ImageError, NoFaceError: bad input.
            MatcherError: matcher failure or a scores message that does not hold the claimed subject.
        """
        name, opaque = self._subject(name)
        vectors, notes = self.embed_uploads([upload])
        with self._crypto_lock:
            probe = self.keys.holder.encrypt_probe(vectors[0], verification=True)
        self.ensure_registered()
        try:
            message = self.client.verify(opaque, probe)
        except NotFoundError:
            raise MatcherError(f"the matcher has no template for enrolled subject {name!r} (out of sync)") from None
        scores = self._decrypt(message)
        if opaque not in scores:
            raise MatcherError("the matcher returned scores that do not hold the claimed subject")
        decided = self.decided({opaque: scores[opaque]}, vectors[0])
        if opaque not in decided:
            raise ConflictError(f"subject {name!r} was enrolled without cohort statistics: delete it and enrol it again")
        score = decided[opaque]
        return VerifyResult(name, bool(score >= self.threshold), self.rounded(score), self.threshold, notes)

    def identify(self, upload: Upload, *, top_k: int | None = None) -> IdentifyResult:
        """1:N: the ``top_k`` best-scoring enrolled subjects for the face in ``upload``.

        Raises:
            BadRequestError: ``top_k`` outside ``1..max_top_k``.
            ImageError, NoFaceError: bad input.
            MatcherError: matcher failure.
        """
        k = self.config.top_k if top_k is None else top_k
        if not 1 <= k <= self.config.max_top_k:
            raise BadRequestError(f"top_k must be in 1..{self.config.max_top_k}, got {k}")
        vectors, notes = self.embed_uploads([upload])
        names = self.db.names_by_opaque_id()
        if not names:
            return IdentifyResult((), self.threshold, 0, notes + ("the gallery is empty",))
        with self._crypto_lock:
            probe = self.keys.holder.encrypt_probe(vectors[0], verification=False)
        self.ensure_registered()
        for attempt in range(IDENTIFY_ATTEMPTS):
            try:
                scores = self._decrypt(self.client.identify(probe))
                break
            except StaleLocationsError:
                if attempt == IDENTIFY_ATTEMPTS - 1:
                    raise
        decided = self.decided(scores, vectors[0])
        known = [(names[o], s) for o, s in decided.items() if o in names]
        if len(known) < len(decided):
            logger.warning("identify: %d matcher subjects are unknown to the terminal", len(decided) - len(known))
        known.sort(key=lambda item: item[1], reverse=True)
        candidates = tuple(Candidate(n, self.rounded(s), bool(s >= self.threshold)) for n, s in known[:k])
        return IdentifyResult(candidates, self.threshold, len(known), notes)

    def _decrypt(self, message: bytes) -> dict[str, float]:
        try:
            with self._crypto_lock:
                return self.keys.holder.decrypt_scores(message, dim=self.dim, locations=self.client.table_for)
        except ProtocolError as exc:
            raise MatcherError(f"the matcher returned a malformed scores message: {exc}") from None

    def list_subjects(self, *, offset: int = 0, limit: int | None = None) -> list[dict[str, object]]:
        """Enrolled subjects by name (all, or one page): name, enrolment time (ISO 8601, UTC), images averaged."""
        return [
            {"subject_id": s.name, "enrolled_at": s.enrolled_at.isoformat(), "images": s.images}
            for s in self.db.subjects(offset=offset, limit=limit)
        ]

    def delete(self, name: str) -> int:
        """Delete ``name`` here and on the matcher, then re-encrypt the stale blocks.

        Returns:
            The number of blocks refreshed.

        Raises:
            NotFoundError: ``name`` is not enrolled.
            MatcherError: the matcher could not delete it (nothing changes here then).
        """
        name, opaque = self._subject(name)
        self.ensure_registered()
        try:
            self.client.delete(opaque)
        except NotFoundError:
            logger.warning("subject %s was already gone from the matcher", opaque[:8])
        self.db.delete_subject(name)
        logger.info("deleted subject %s", opaque[:8])
        try:
            return self.refresh_stale_blocks()
        except FaceppError as exc:
            logger.error("stale-block refresh failed (retried at the next delete or start): %s", exc)
            return 0

    def refresh_stale_blocks(self) -> int:
        """Export, re-encrypt (zeroing dead slots) and reinstall every stale block.

        Security: the block's templates are decrypted in memory only for the re-encryption.

        Returns:
            The number of blocks refreshed.
        """
        self.ensure_registered()

        def refresh(block: bytes) -> bytes:
            started = time.perf_counter()
            keep = live_slots(block, fingerprint=self.keys.holder.fingerprint, slots=self.keys.holder.params.slots)
            with self._crypto_lock:
                fresh = self.keys.holder.refresh_block(block, dim=self.dim, keep_slots=keep)
            logger.info("re-encrypted a block (%d live slots) in %.1f s", len(keep), time.perf_counter() - started)
            return fresh

        return len(self.client.refresh_stale_blocks(refresh))
