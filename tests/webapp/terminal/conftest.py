"""Fixtures of the terminal tests: a tiny model, ORL images, and real matcher + terminal servers.

Each test module gets its own stack (matcher with SQLite in a temp folder, terminal
with fresh keys), served by waitress on loopback in background threads, so the
tests speak real HTTP and modules do not share a gallery.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from facepp.data.images import read_image
from facepp.model.embedder import Embedder
from facepp.model.train import TrainConfig
from facepp.vision.align import PreprocessConfig
from tests.helpers.terminal import API_TOKEN, OPERATOR, ServerThread, Stack, orl_file, start_matcher, template


@pytest.fixture(scope="session")
def orl(data_root: Path) -> Path:
    """The ORL dataset folder (skips when absent)."""
    path = data_root / "orl"
    if not (path / "s31" / "1.pgm").is_file():
        pytest.skip(f"ORL dataset not found under {path}")
    return path


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained but valid MobileFaceNet checkpoint (seeded; no threshold in its metadata).

    Decisions only need to agree with plaintext cosine, so no training is needed;
    this keeps the tests independent of ``out/``.
    """
    from training.participant.local import build_model, save_global_model

    config = TrainConfig(seed=0)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_global_model(path, build_model(config, 64), config=config, preprocessing=PreprocessConfig(input_size=64), extra={})
    return path


@pytest.fixture(scope="session")
def embedder(checkpoint: Path) -> Embedder:
    """The plaintext reference embedder (same checkpoint as the terminal)."""
    torch.set_num_threads(1)
    return Embedder.from_checkpoint(checkpoint, num_threads=1)


@pytest.fixture(scope="session")
def threshold(embedder: Embedder, orl: Path) -> float:
    """A threshold between the plaintext genuine (s31 5) and impostor (s32 5) scores against s31 1-3."""
    tpl = template(embedder, [orl_file(orl, 31, i) for i in (1, 2, 3)])
    genuine = float(tpl @ embedder.embed([read_image(orl_file(orl, 31, 5))])[0])
    impostor = float(tpl @ embedder.embed([read_image(orl_file(orl, 32, 5))])[0])
    if genuine <= impostor + 0.01:
        pytest.fail(f"the test model does not separate s31/s32 (genuine {genuine:.3f}, impostor {impostor:.3f})")
    return round((genuine + impostor) / 2, 4)


@pytest.fixture(scope="session")
def make_stack(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path, threshold: float
               ) -> Iterator[Callable[..., Stack]]:
    """Factory of matcher + terminal stacks; everything started is closed at the end of the session."""
    servers: list[ServerThread] = []

    def make(**overrides: Any) -> Stack:
        from webapp.terminal import create_app

        folder = tmp_path_factory.mktemp("stack")
        matcher_app, matcher, key = start_matcher(folder)
        servers.append(matcher)
        config = {
            "checkpoint": str(checkpoint),
            "threshold": threshold,
            "instance_dir": str(folder / "terminal"),
            "matcher_url": matcher.url,
            "matcher_api_key": key,
            "api_token": API_TOKEN,
            "secure_cookies": False,
            "login_rate_limit": "1000 per minute",
            "match_rate_limit": "10000 per minute",
            "secret_key": secrets.token_hex(16),
            **overrides,
        }
        app = create_app(config)
        app.extensions["terminal"].db.create_operator(*OPERATOR)
        terminal = ServerThread(app)
        servers.append(terminal)
        return Stack(matcher.url, terminal.url, app, matcher_app, folder / "terminal")

    yield make
    for server in servers:
        server.close()


@pytest.fixture(scope="module")
def stack(make_stack: Callable[..., Stack]) -> Stack:
    """One stack per test module."""
    return make_stack()
