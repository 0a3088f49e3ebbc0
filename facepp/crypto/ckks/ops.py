"""Homomorphic building blocks of encrypted matching, using public material only.

Importable by every role; the matcher uses them. See :mod:`facepp.crypto.ckks.packing`
for the layout and the plaintext model these functions implement. Levels:
probes and templates arrive at level 0 (all data primes) or, for an
identification probe, level 1; gallery diagonals live at level 1; scores leave
at level 2 (one prime).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from Pyfhel import Pyfhel, PyCtxt

from facepp.crypto.ckks.packing import slot_masks
from facepp.crypto.ckks.params import WINDOW_KEY_MAX, CkksParams
from facepp.errors import ProtocolError

#: Modulus levels (number of primes dropped from the top of the chain).
LEVEL_FRESH = 0
LEVEL_GALLERY = 1
LEVEL_SCORES = 2


def baby_rotations(he: Pyfhel, ctxt: PyCtxt, *, baby: int) -> list[PyCtxt]:
    """``[rot(c, 0), rot(c, 1), ..., rot(c, baby - 1)]`` using only the step-1 rotation key.

    Args:
        he: public context.
        ctxt: replicated probe or template ciphertext (size 2).
        baby: baby-step count ``b``.

    Returns:
        ``b`` ciphertexts at the level of ``ctxt`` (costs ``b - 1`` key switches).
    """
    out = [ctxt]
    for _ in range(1, baby):
        out.append(he.rotate(out[-1], 1, True))
    return out


def masked_pieces(
    he: Pyfhel, rotations: Sequence[PyCtxt], *, slot: int, dim: int, slots: int, mask_scale: float
) -> list[PyCtxt]:
    """Operands that put one replicated vector into (or read one score from) slot ``slot``.

    Piece ``k*b + j`` is ``rescale(rot(x~, j) * e_{(slot + k*b) mod S})``: added
    to diagonal ``D'_{kb+j}`` it writes template ``x`` into ``slot``; multiplied
    with the diagonals it yields a score vector that is zero except in ``slot``.

    Args:
        he: public context.
        rotations: :func:`baby_rotations` of a level-0 ciphertext.
        slot: target slot in ``[0, slots)``.
        dim: embedding dimension ``d``.
        slots: slots per ciphertext ``S``.
        mask_scale: the mask prime ``q2`` (rescaling then keeps the scale exactly).

    Returns:
        ``d`` ciphertexts at level 1 (costs ``d`` plaintext products and rescales).
    """
    baby = len(rotations)
    pieces: list[PyCtxt] = []
    for mask in slot_masks(slot, dim=dim, slots=slots, baby=baby):
        ptxt = he.encodeFrac(np.ascontiguousarray(mask), scale=mask_scale)
        for rotated in rotations:
            piece = he.multiply_plain(rotated, ptxt, True)
            he.rescale_to_next(piece)
            pieces.append(piece)
    return pieces


def identify_operands(he: Pyfhel, probe: PyCtxt, *, dim: int, baby: int) -> list[PyCtxt]:
    """The ``dim`` level-1 operands ``rot(p~, i mod b)`` of an identification (or an unmasked 1:1).

    A level-0 probe is switched down to level 1 first (in place).
    """
    if probe.mod_level == LEVEL_FRESH:
        he.mod_switch_to_next(probe)
    rotations = baby_rotations(he, probe, baby=baby)
    return [rotations[i % baby] for i in range(dim)]


def verify_operands(
    he: Pyfhel, probe: PyCtxt, *, slot: int, dim: int, baby: int, slots: int, mask_scale: float
) -> list[PyCtxt]:
    """The ``dim`` level-1 operands of a masked 1:1 on ``slot`` (:func:`masked_pieces` of the probe).

    Raises:
        ProtocolError: the probe is not at level 0 (the mask needs the prime it would have dropped).
    """
    if probe.mod_level != LEVEL_FRESH:
        raise ProtocolError("a masked verification needs a level-0 probe (encrypt_probe(verification=True))")
    rotations = baby_rotations(he, probe, baby=baby)
    return masked_pieces(he, rotations, slot=slot, dim=dim, slots=slots, mask_scale=mask_scale)


def zero_diagonals(he: Pyfhel, params: CkksParams, *, dim: int) -> list[PyCtxt]:
    """``dim`` level-1 encryptions of zero under the public key: an empty gallery block."""
    zeros = np.zeros(params.slots)
    diagonals = []
    for _ in range(dim):
        ctxt = he.encryptFrac(zeros, scale=params.scale)
        he.mod_switch_to_next(ctxt)
        diagonals.append(ctxt)
    return diagonals


def inner_products(he: Pyfhel, diagonals: Sequence[PyCtxt], operands: Sequence[PyCtxt], *, baby: int) -> PyCtxt:
    """Encrypted scores of one gallery block (baby-step/giant-step diagonal method).

    Computes ``sum_k rot(sum_j D'_{kb+j} * o_{kb+j}, k*b)`` with a Horner scheme
    (``g - 1`` relinearisations and rotations by ``b``), then relinearises and
    rescales once.

    Args:
        he: public context with relinearisation and rotation (1, b) keys.
        diagonals: the block's ``d`` diagonal ciphertexts (level 1).
        operands: ``d`` level-1 ciphertexts: ``o_{kb+j}`` is ``rot(p~, j)`` for an
            identification, or a :func:`masked_pieces` entry for a masked 1:1.
        baby: baby-step count ``b``.

    Returns:
        One level-2 ciphertext whose slot ``t`` holds the score of template ``t``.
    """
    dim = len(diagonals)
    giants = dim // baby
    total: PyCtxt | None = None
    acc: PyCtxt | None = None
    for k in reversed(range(giants)):
        acc = None
        for j in range(baby):
            i = k * baby + j
            prod = he.multiply(diagonals[i], operands[i], True)
            if acc is None:
                acc = prod
            else:
                he.add(acc, prod)
        if total is None:
            total = acc
        elif acc is not None:
            he.relinearize(total)
            he.rotate(total, baby)
            he.add(total, acc)
    if total is None or acc is None:
        raise ValueError("inner_products needs at least one diagonal")
    he.relinearize(total)
    he.rescale_to_next(total)
    return total


def window_sum(he: Pyfhel, ctxt: PyCtxt, *, dim: int) -> PyCtxt:
    """Slot ``s`` of the result holds ``sum_{i < dim} ctxt[s + i]``.

    Doubling over widths 1, 2, 4, ... ``dim / 2``, each shift one rotation by a
    power-of-two key (``log2(dim)`` key switches: 7 at ``dim = 128``); a shift beyond
    :data:`~facepp.crypto.ckks.params.WINDOW_KEY_MAX` is made of several of the
    largest. For a ``dim``-periodic input, every slot of the result holds the same sum.
    """
    total = ctxt
    width = 1
    while width < dim:
        step = min(width, WINDOW_KEY_MAX)
        shifted = total
        for _ in range(width // step):
            shifted = he.rotate(shifted, step, True)
        total = he.add(total, shifted, True)
        width *= 2
    return total


def single_score(he: Pyfhel, template: PyCtxt, probe: PyCtxt, *, dim: int) -> PyCtxt:
    """Encrypted score of one replicated template against a replicated probe (both level 1).

    One ciphertext product, a relinearisation and a rescale, then :func:`window_sum`:
    every slot of the level-2 result holds the same cosine score, so its decryption
    shows that score and nothing else.
    """
    product = he.multiply(template, probe, True)
    he.relinearize(product)
    he.rescale_to_next(product)
    return window_sum(he, product, dim=dim)


def add_into(he: Pyfhel, diagonals: list[PyCtxt], pieces: Sequence[PyCtxt]) -> None:
    """``diagonals[i] += pieces[i]`` in place (writes a template into its slot)."""
    for diagonal, piece in zip(diagonals, pieces, strict=True):
        he.add(diagonal, piece)
