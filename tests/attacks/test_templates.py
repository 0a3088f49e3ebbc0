"""Template inversion smoke test on a few faces, and what the facepp matcher's bytes are worth."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attacks.matcher_view import enrol_on_matcher, templates_without_key
from attacks.template_lab import templates_in
from attacks.templates import TemplateDecoder, decode, train_decoder
from attacks.victim import FaceBatch
from facepp.vision.align import to_tensor


class _Pool(torch.nn.Module):
    """A stand-in public model for the smoke test: a fixed random projection of the pooled image."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.project = torch.nn.Linear(3 * 8 * 8, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.project(F.adaptive_avg_pool2d(x, 8).flatten(1)), dim=1)


def test_a_decoder_learns_to_invert_templates(batch: FaceBatch, prior: np.ndarray) -> None:
    torch.manual_seed(0)
    model = _Pool(16)
    public = np.concatenate([prior, batch.crops])
    with torch.no_grad():
        templates = model(to_tensor(public)).numpy()
    untrained = TemplateDecoder(dim=16, size=public.shape[1]).eval()
    before = F.l1_loss(decode(untrained, templates), to_tensor(public)).item()
    decoder = train_decoder(public, templates, model, epochs=15, batch_size=8, progress=False)
    after = F.l1_loss(decode(decoder, templates), to_tensor(public)).item()
    assert decode(decoder, templates[:3]).shape == (3, 3, public.shape[1], public.shape[1])
    assert after < 0.6 * before


@pytest.mark.slow
def test_the_matcher_holds_no_template_and_its_blocks_read_as_noise() -> None:
    rng = np.random.default_rng(0)
    templates = rng.normal(size=(3, 128))
    templates /= np.linalg.norm(templates, axis=1, keepdims=True)
    holdings = enrol_on_matcher(templates, subject_ids=["subject-a", "subject-b", "subject-c"])
    assert [s for s, _, _ in holdings.subjects] == ["subject-a", "subject-b", "subject-c"]
    held = b"".join(holdings.received) + holdings.database + b"".join(holdings.blocks.values())
    assert templates_in(held, templates) == 0
    assert templates_in(held + templates[1].astype("<f4").tobytes(), templates) == 1
    pseudo = templates_without_key(holdings, dim=128)
    cosines = [float(pseudo[sid] @ t) for sid, t in zip(["subject-a", "subject-b", "subject-c"], templates)]
    assert max(abs(c) for c in cosines) < 0.4  # |cos| of independent 128-d directions: ~0.09 typical
