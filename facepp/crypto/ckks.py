"""CKKS encrypted matching: the public API in one place.

Roles: the TERMINAL imports this module (it re-exports the secret-key holder).
The MATCHER must import :mod:`facepp.crypto.ckks_matcher` (and
:mod:`facepp.crypto.ckks_public`) directly, never this module, so that no
secret-key code is loaded in the matcher process.

Typical flow::

    holder = CkksKeyHolder.generate()                       # terminal
    matcher = CkksMatcher.from_public_bundle(holder.export_public_bundle(), dim=128)
    matcher.add("alice", holder.encrypt_template(x_alice))  # enrol
    scores = matcher.score_one("alice", holder.encrypt_probe(x_probe))
    holder.decrypt_scores(scores, dim=128)                  # {"alice": 0.83}
    holder.decrypt_scores(matcher.score_all(holder.encrypt_probe(x, verification=False)), dim=128)

See ``docs/ckks.md`` for parameters, layout, cost and leakage.
"""

from __future__ import annotations

from facepp.crypto.ckks_gallery import EncryptedGallery
from facepp.crypto.ckks_keys import CkksKeyHolder
from facepp.crypto.ckks_matcher import CkksMatcher
from facepp.crypto.ckks_messages import ScoreMode
from facepp.crypto.ckks_params import HE_STANDARD_MAX_BITS_128, CkksParams
from facepp.crypto.ckks_public import CkksPublicContext
from facepp.crypto.ckks_wire import WIRE_VERSION, Kind

__all__ = [
    "HE_STANDARD_MAX_BITS_128",
    "WIRE_VERSION",
    "CkksKeyHolder",
    "CkksMatcher",
    "CkksParams",
    "CkksPublicContext",
    "EncryptedGallery",
    "Kind",
    "ScoreMode",
]
