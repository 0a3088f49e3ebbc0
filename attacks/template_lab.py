"""The template-inversion experiment: a decoder trained on public faces, held-out people's templates, two views.

The attacker trains :class:`attacks.templates.TemplateDecoder` on the training identities
of a dataset with the public (shipped) model, then inverts the templates of held-out people:

* ``plaintext``: the templates as a plain face database stores them;
* ``matcher``: everything the facepp matcher holds after enrolling them through its real
  HTTP API (database, requests, CKKS blocks), read by :func:`attacks.matcher_view.templates_without_key`.

Both are scored by :mod:`attacks.scoring` beside the prior-only level: the mean public face,
a random public face and the decoder's output for the mean public template.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facepp.vision.align import FacePreprocessor, preset_for
from facepp.vision.cache import dataset_crops
from attacks.matcher_view import enrol_on_matcher, templates_without_key
from attacks.scoring import Judge, prior_only, save_grid, summarise, to_images
from attacks.templates import decode, train_decoder
from attacks.victim import load_batch, victim_spec
from training.participant.spec import split_for_federation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TemplateLabConfig:
    """What to invert and how.

    Attributes:
        data: Dataset folder: training identities train the decoder, held-out ones are inverted.
        out: Folder for the image grid.
        epochs: Decoder training epochs.
        people: Held-out people whose templates are inverted.
        public_images: Cap on the public images the decoder trains on.
        identity_weight: Weight of the decoder's identity loss.
        model: The public model (None: the shipped one); it also judges success.
    """

    data: Path
    out: Path
    epochs: int = 40
    people: int = 10
    public_images: int = 2000
    identity_weight: float = 1.0
    model: Path | None = None
    seed: int = 0
    cache_dir: Path | None = None


def templates_in(haystack: bytes, templates: np.ndarray, window: int = 4) -> int:
    """How many templates have ``window`` consecutive coordinates, as float32 or float64, in ``haystack``."""
    found = 0
    for template in templates:
        for dtype in ("<f4", "<f8"):
            raw = np.asarray(template).astype(dtype).tobytes()
            width = window * np.dtype(dtype).itemsize
            if any(raw[i : i + width] in haystack for i in range(0, len(raw) - width + 1, width)):
                found += 1
                break
    return found


def run_template_lab(config: TemplateLabConfig) -> dict[str, Any]:
    """Train the decoder, invert both views; return the report and write ``templates.png`` into ``config.out``.

    Raises:
        FaceppError: unusable data or checkpoint.
    """
    from facepp.models import model_or_shipped

    model = model_or_shipped(config.model)
    judge = Judge(model)
    spec = victim_spec(model=model)
    split = split_for_federation(config.data, spec)
    preprocessing = preset_for(split.dataset.layout, input_size=spec.input_size, mode=spec.mode)
    train_ids = [name for part in split.partitions for name in part]
    samples = [(s.path, s.label) for s in split.dataset.subset(train_ids).samples]
    rng = np.random.default_rng(config.seed)
    if len(samples) > config.public_images:
        samples = [samples[int(i)] for i in np.sort(rng.choice(len(samples), config.public_images, replace=False))]
    public, _ = dataset_crops(samples, FacePreprocessor(preprocessing), cache_dir=config.cache_dir, progress=True)
    public_templates = judge.embedder.embed_crops(public)
    decoder = train_decoder(public, public_templates, judge.embedder.model, epochs=config.epochs,
                            identity_weight=config.identity_weight, seed=config.seed)

    held_out = load_batch(config.data, people=config.people, preprocessing=preprocessing, seed=config.seed,
                          exclude=tuple(train_ids), cache_dir=config.cache_dir)
    templates = judge.embedder.embed_crops(held_out.crops)
    images = {"plaintext": to_images(decode(decoder, templates))}
    views = {"plaintext": summarise(held_out.crops, images["plaintext"], held_out.references, judge)}

    ids = [f"subject-{i:03d}" for i in range(len(templates))]
    holdings = enrol_on_matcher(templates, subject_ids=ids)
    pseudo = templates_without_key(holdings, dim=templates.shape[1])
    images["matcher"] = to_images(decode(decoder, np.stack([pseudo[sid] for sid in ids])))
    held = b"".join(holdings.received) + holdings.database + b"".join(holdings.blocks.values())
    views["matcher"] = summarise(held_out.crops, images["matcher"], held_out.references, judge,
                                 bytes_held=len(held), templates_found_in_matcher_bytes=templates_in(held, templates))

    mean_template = public_templates.mean(axis=0)
    mean_template /= np.linalg.norm(mean_template)
    images["decoded mean template"] = to_images(decode(decoder, np.repeat(mean_template[None], len(templates), axis=0)))
    prior = prior_only(held_out.crops, held_out.references, public, judge)
    prior["decoded_mean_template"] = summarise(held_out.crops, images["decoded mean template"], held_out.references, judge)
    for key in ("success", "ssim", "psnr"):
        metric = "attack_success" if key == "success" else key
        prior[key] = max(prior[key], prior["decoded_mean_template"][metric])
    grid = save_grid(config.out / "templates.png", held_out.crops, images)
    return {
        "views": views,
        "prior_only": prior,
        "prior_only_success": prior["success"],
        "setup": {"public_images": len(public), "held_out_people": held_out.people, "epochs": config.epochs,
                  "identity_weight": config.identity_weight, "threshold": judge.threshold},
        "figures": {"grid": str(grid)},
    }
