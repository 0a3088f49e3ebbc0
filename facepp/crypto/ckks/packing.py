"""Pure packing maths of the encrypted gallery (no keys, no Pyfhel): every role may import.

Layout ("generalised diagonals", Halevi-Shoup, with baby-step/giant-step):

* A gallery **block** holds ``S = n / 2`` templates of dimension ``d`` in ``d``
  ciphertexts. Template ``t`` (its slot) is row ``t`` of the ``(S, d)`` matrix ``M``.
* The probe ``p`` is sent as ONE ciphertext, replicated: ``p~[s] = p[s mod d]``.
* Diagonal ``i`` is ``D_i[s] = M[s, (s + i) mod d]``; then
  ``scores = sum_i D_i * rot(p~, i)`` where ``rot(x, k)[s] = x[s + k]``.
* With ``b`` baby steps and ``g = d / b`` giant steps, ``i = k*b + j`` and the
  terminal stores the diagonals pre-rotated, ``D'_i = rot(D_i, -k*b)``, so that
  ``scores = sum_k rot(sum_j D'_{kb+j} * rot(p~, j), k*b)``: the matcher rotates
  the probe ``b - 1`` times per query and each block ``g - 1`` times.
* Score of template ``t`` lands in slot ``t``.
* Writing one template ``x`` into slot ``t`` adds ``rot(x~, j) * e_{(t + k*b) mod S}``
  to ``D'_{kb+j}``; the same masks isolate slot ``t`` in a masked 1:1 score.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from facepp.errors import ConfigError, EncodingOverflowError

FloatArray = npt.NDArray[np.float64]

#: Tolerance on the L2 norm of an embedding (embeddings must be L2-normalised).
NORM_TOLERANCE = 1e-3


def check_embeddings(embeddings: npt.ArrayLike, *, dim: int) -> FloatArray:
    """Validate L2-normalised embeddings and return them as float64.

    Args:
        embeddings: ``(dim,)`` or ``(k, dim)`` floats, each row L2-normalised.
        dim: expected dimension.

    Returns:
        ``(k, dim)`` float64 array (``k = 1`` for a single vector).

    Raises:
        ConfigError: wrong shape or dimension.
        EncodingOverflowError: non-finite values or a row whose norm is not 1.
    """
    arr = np.asarray(embeddings, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ConfigError(f"expected embeddings of shape (k, {dim}) or ({dim},), got {np.shape(embeddings)}")
    if not np.all(np.isfinite(arr)):
        raise EncodingOverflowError("embeddings contain NaN or infinite values")
    norms = np.linalg.norm(arr, axis=1)
    if arr.shape[0] and np.any(np.abs(norms - 1.0) > NORM_TOLERANCE):
        raise EncodingOverflowError(
            f"embeddings must be L2-normalised (norm 1 +- {NORM_TOLERANCE}); got norms in "
            f"[{norms.min():.4f}, {norms.max():.4f}]"
        )
    return arr


def replicate(vector: FloatArray, *, slots: int) -> FloatArray:
    """Replicate a ``(d,)`` vector across ``slots`` slots: ``out[s] = vector[s mod d]``."""
    d = vector.shape[0]
    if slots % d:
        raise ConfigError(f"dimension {d} does not divide the slot count {slots}")
    return np.asarray(np.tile(vector, slots // d), dtype=np.float64)


def diagonal_block(templates: FloatArray, *, slots: int, baby: int) -> FloatArray:
    """Pre-rotated generalised diagonals of a block of templates.

    Args:
        templates: ``(k, d)`` float64, ``k <= slots``; row ``t`` goes to slot ``t``,
            slots ``k..slots-1`` are left empty (zero).
        slots: slots per ciphertext ``S``.
        baby: baby-step count ``b`` (divides ``d``).

    Returns:
        ``(d, slots)`` float64: row ``i = k*b + j`` is ``D'_i = rot(D_i, -k*b)``.
    """
    k, d = templates.shape
    if k > slots:
        raise ConfigError(f"a block holds at most {slots} templates, got {k}")
    matrix = np.zeros((slots, d))
    matrix[:k] = templates
    rows = np.arange(slots)[None, :]
    diag_index = np.arange(d)[:, None]
    diags = matrix[rows, (rows + diag_index) % d]  # diags[i, s] = M[s, (s + i) mod d]
    out: FloatArray = np.empty_like(diags, dtype=np.float64)
    for i in range(d):
        out[i] = np.roll(diags[i], (i // baby) * baby)  # rot(x, -kb)[s] = x[s - kb]
    return out


def slot_masks(slot: int, *, dim: int, slots: int, baby: int) -> list[FloatArray]:
    """The ``g = dim / baby`` one-hot masks ``e_{(slot + k*b) mod S}`` for giant step ``k``."""
    masks = []
    for k in range(dim // baby):
        mask = np.zeros(slots)
        mask[(slot + k * baby) % slots] = 1.0
        masks.append(mask)
    return masks


def rot(x: FloatArray, k: int) -> FloatArray:
    """Plaintext model of a CKKS left rotation: ``rot(x, k)[s] = x[s + k]``."""
    return np.roll(x, -k)


def reference_scores(diagonals: FloatArray, probe: FloatArray, *, baby: int) -> FloatArray:
    """Plaintext model of the encrypted inner product (tests and documentation).

    Args:
        diagonals: ``(d, S)`` output of :func:`diagonal_block`.
        probe: ``(d,)`` embedding.
        baby: baby-step count used for ``diagonals``.

    Returns:
        ``(S,)`` float64 scores, slot ``t`` = template ``t`` . probe.
    """
    d, slots = diagonals.shape
    rep = replicate(probe, slots=slots)
    baby_rot = [rot(rep, j) for j in range(baby)]
    total = np.zeros(slots)
    for k in range(d // baby):
        acc = sum(diagonals[k * baby + j] * baby_rot[j] for j in range(baby))
        total += rot(np.asarray(acc), k * baby)
    return total


def undiagonal_block(diagonals: FloatArray, *, baby: int) -> FloatArray:
    """Inverse of :func:`diagonal_block`: ``(d, S)`` pre-rotated diagonals -> ``(S, d)`` templates."""
    d, slots = diagonals.shape
    matrix = np.empty((slots, d))
    rows = np.arange(slots)
    for i in range(d):
        diag = np.roll(diagonals[i], -(i // baby) * baby)  # undo rot(., -kb)
        matrix[rows, (rows + i) % d] = diag
    return matrix


def pack_bitmap(occupied: npt.NDArray[np.bool_]) -> bytes:
    """Slot occupancy ``(S,)`` bool -> ``S / 8`` bytes (little-endian bit order)."""
    return np.packbits(occupied.astype(np.uint8), bitorder="little").tobytes()


def unpack_bitmap(data: bytes, *, slots: int) -> npt.NDArray[np.bool_]:
    """Inverse of :func:`pack_bitmap`; the caller checks ``len(data) == slots // 8``."""
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
    return bits[:slots].astype(bool)
