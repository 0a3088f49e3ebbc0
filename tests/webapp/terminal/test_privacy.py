"""End-to-end privacy proof: what the matcher received and stored after real enrolments and matches.

Images go to the terminal; the terminal sends the matcher CKKS ciphertexts only.
Every request body the matcher received and its SQLite files are scanned for
the uploaded image bytes and for the plaintext embeddings (per image and the
enrolled template, float32 and float64); a planted copy proves the scan works.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from facepp.data.images import read_image
from facepp.model.embedder import Embedder
from tests.webapp.matcher.test_privacy import find_windows
from tests.helpers.terminal import Stack, orl_file, template
from tests.webapp.terminal.test_api import files

IMAGE_WINDOW = 64


class Recorder:
    """WSGI middleware keeping a copy of every request body."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app, self.bodies = app, bytearray()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        import io

        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        self.bodies += body
        environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)


def image_hits(haystack: bytes, images: list[bytes]) -> list[int]:
    """Indices of images any 64-byte window of which (every 512 bytes) occurs in ``haystack``."""
    return [i for i, raw in enumerate(images)
            if any(raw[o : o + IMAGE_WINDOW] in haystack for o in range(0, len(raw) - IMAGE_WINDOW, 512))]


def test_matcher_never_sees_images_or_embeddings(make_stack: Callable[..., Stack], orl: Path, embedder: Embedder) -> None:
    stack = make_stack()
    recorder = Recorder(stack.matcher_app.wsgi_app)
    stack.matcher_app.wsgi_app = recorder  # type: ignore[method-assign]
    enrol = [orl_file(orl, 36, i) for i in (1, 2, 3)]
    probes = [orl_file(orl, 36, 5), orl_file(orl, 37, 5)]
    assert stack.api("POST", "/enroll", data={"subject_id": "orl-s36"}, files=files(enrol)).status_code == 201
    assert stack.api("POST", "/verify", data={"subject_id": "orl-s36"}, files=files(probes[:1])).status_code == 200
    assert stack.api("POST", "/identify", files=files(probes[1:])).status_code == 200

    # The matcher's SQLite database (and WAL) sits beside the terminal's instance folder.
    stored = b"".join(p.read_bytes() for p in Path(stack.instance_dir).parent.glob("matcher.db*"))
    haystack = bytes(recorder.bodies) + stored
    assert len(recorder.bodies) > 100_000 and stored  # ciphertexts really went through and were stored

    images = [p.read_bytes() for p in enrol + probes]
    per_image = embedder.embed([read_image(p) for p in enrol + probes]).astype(np.float64)
    vectors = np.vstack([per_image, template(embedder, enrol)[None, :]])
    assert image_hits(haystack, images) == []
    assert find_windows(haystack, vectors) == []
    # The scans can fail: planted copies are found.
    planted = haystack + images[0][1000:1200] + vectors[-1].astype(np.float32).tobytes()
    assert image_hits(planted, images) == [0]
    assert find_windows(planted, vectors)
