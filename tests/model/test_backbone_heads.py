"""Backbone output contract and margin heads."""

from __future__ import annotations

import math

import pytest
import torch

from facepp.errors import ConfigError
from facepp.model import build_backbone, build_head, count_parameters
from facepp.model.backbone import for_inference, for_training


@pytest.mark.parametrize("name", ["mobilefacenet", "resface"])
@pytest.mark.parametrize(("size", "dim"), [(64, 128), (112, 256), (32, 64)])
def test_output_shape_norm_and_size(name: str, size: int, dim: int) -> None:
    model = build_backbone(name, embedding_dim=dim, input_size=size).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, dim) and out.dtype == torch.float32
    assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)
    assert count_parameters(model) <= 2_000_000


@pytest.mark.parametrize("name", ["mobilefacenet", "resface"])
def test_folded_batchnorm_gives_the_same_embeddings(name: str) -> None:
    torch.manual_seed(0)
    model = build_backbone(name)
    model.train()(torch.randn(16, 3, 64, 64))  # non-trivial BatchNorm running statistics
    model.eval()
    folded = for_inference(model)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), atol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) > 10  # the original is untouched


@pytest.mark.parametrize("name", ["mobilefacenet", "resface"])
def test_channels_last_layout_gives_the_same_embeddings(name: str) -> None:
    torch.manual_seed(0)
    model = build_backbone(name).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        plain = model(x)
        fast = for_training(model)(x)
    assert torch.allclose(fast, plain, atol=1e-5)


def test_registries_list_choices() -> None:
    with pytest.raises(ConfigError, match="expected one of.*mobilefacenet"):
        build_backbone("resnet1000")
    with pytest.raises(ConfigError, match=r"expected one of \['arcface', 'cosface'\]"):
        build_head("sphereface", embedding_dim=8, num_classes=3)
    with pytest.raises(ConfigError, match="multiple of 16"):
        build_backbone("mobilefacenet", input_size=50)


@pytest.mark.parametrize("name", ["cosface", "arcface"])
def test_margin_lowers_only_the_true_class_logit(name: str) -> None:
    head = build_head(name, embedding_dim=8, num_classes=5, scale=10.0, margin=0.3)
    emb = torch.randn(4, 8)
    labels = torch.tensor([0, 1, 2, 3])
    logits, cosine = head(emb, labels)
    plain = cosine * head.scale
    true = torch.arange(4), labels
    assert torch.all(logits[true] < plain[true])
    mask = torch.ones_like(logits, dtype=torch.bool)
    mask[true] = False
    assert torch.allclose(logits[mask], plain[mask])
    if name == "cosface":
        assert torch.allclose(logits[true], (cosine[true] - 0.3) * 10.0)
    else:
        theta = torch.acos(cosine[true].clamp(-1, 1))
        expected = torch.where(theta + 0.3 < math.pi, torch.cos(theta + 0.3), cosine[true] - math.sin(math.pi - 0.3) * 0.3)
        assert torch.allclose(logits[true], expected * 10.0, atol=1e-4)


def test_imprint_sets_each_centre_to_its_class_mean_direction() -> None:
    head = build_head("cosface", embedding_dim=4, num_classes=3)
    untouched = head.weight[2].clone()
    emb = torch.tensor([[2.0, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, 5.0, 0], [0, 0, 0, 1.0]])
    head.imprint(emb, torch.tensor([0, 0, 1, 1]))
    assert torch.allclose(head.weight[0], torch.tensor([1.0, 1.0, 0, 0]) / math.sqrt(2))  # mean of unit vectors
    assert torch.allclose(head.weight[1], torch.tensor([0, 0, 1.0, 1.0]) / math.sqrt(2))
    assert torch.equal(head.weight[2], untouched)  # no samples: left as it was
