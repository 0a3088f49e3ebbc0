"""A model with a cohort: the terminal S-normalises decrypted scores exactly as plaintext evaluation does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import requests
from sqlalchemy import delete, select

from facepp.data.images import read_image
from facepp.errors import ConfigError
from facepp.model.cohort import attach_cohort, s_norm
from facepp.model.embedder import Embedder
from tests.helpers.terminal import Stack, login, orl_file, template
from webapp.terminal.config import TerminalConfig
from webapp.terminal.db import Subject, SubjectScoreStats
from webapp.terminal.service import resolve_threshold

SUBJECTS = (31, 32, 33)


@pytest.fixture(scope="module")
def with_cohort(checkpoint: Path, orl: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The terminal tests' model with a cohort of ORL's first image of each person (top 5)."""
    out = tmp_path_factory.mktemp("cohort") / "with_cohort.pt"
    attach_cohort(checkpoint, out, data=orl, top_k=5, cache_dir=out.parent / "cache", num_threads=1)
    return out


def _files(orl: Path, subject: int, images: tuple[int, ...]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("image", (f"{i}.pgm", orl_file(orl, subject, i).read_bytes(), "image/x-portable-graymap")) for i in images]


def test_scores_are_s_normalised_end_to_end(make_stack: Callable[..., Stack], with_cohort: Path, orl: Path) -> None:
    embedder = Embedder.from_checkpoint(with_cohort, num_threads=1)
    cohort = embedder.cohort
    assert cohort is not None
    templates = {s: template(embedder, [orl_file(orl, s, i) for i in (1, 2, 3)]) for s in SUBJECTS}
    probe = embedder.embed([read_image(orl_file(orl, 31, 5))])[0].astype(np.float64)
    expected = {s: float(s_norm(t @ probe, cohort.stats(probe)[0], cohort.stats(t)[0])) for s, t in templates.items()}
    ranked = sorted(SUBJECTS, key=lambda s: -expected[s])
    assert expected[ranked[0]] > expected[ranked[1]] + 0.05, expected  # the test model separates the top two
    threshold = round((expected[ranked[0]] + expected[ranked[1]]) / 2, 4)
    stack = make_stack(checkpoint=str(with_cohort), threshold=threshold)
    for s in SUBJECTS:
        assert stack.api("POST", "/enroll", data={"subject_id": f"s{s}"}, files=_files(orl, s, (1, 2, 3))).status_code == 201

    service = stack.terminal_app.extensions["terminal"]
    stored = service.db.score_stats()
    assert len(stored) == len(SUBJECTS)
    for s, t in templates.items():
        np.testing.assert_allclose(stored[service.opaque_id(f"s{s}")], cohort.stats(t)[0], atol=1e-5)

    for s in SUBJECTS:
        body = stack.api("POST", "/verify", data={"subject_id": f"s{s}"}, files=_files(orl, 31, (5,))).json()
        assert body["score"] == pytest.approx(expected[s], abs=5e-4 + 1e-3)  # rounded; CKKS error scaled by 1/sigma
        assert body["match"] is (s == ranked[0]) and body["threshold"] == threshold
    candidates = stack.api("POST", "/identify", data={"top_k": "3"}, files=_files(orl, 31, (5,))).json()["candidates"]
    assert [c["subject_id"] for c in candidates] == [f"s{s}" for s in ranked]
    assert [c["match"] for c in candidates] == [True, False, False]

    with requests.Session() as browser:  # the operator's page says what the threshold is a threshold on
        login(browser, stack.terminal_url)
        assert f"Decision threshold {threshold:.3f} (S-normalised score)" in browser.get(f"{stack.terminal_url}/").text

    assert stack.api("DELETE", f"/subjects/s{SUBJECTS[-1]}").status_code in (200, 204)
    assert service.opaque_id(f"s{SUBJECTS[-1]}") not in service.db.score_stats()

    with service.db.session() as session:  # a subject that lost its statistics is refused, not scored raw
        subject_id = session.scalars(select(Subject.id).where(Subject.name == "s32")).one()
        session.execute(delete(SubjectScoreStats).where(SubjectScoreStats.subject_id == subject_id))
    r = stack.api("POST", "/verify", data={"subject_id": "s32"}, files=_files(orl, 31, (5,)))
    assert r.status_code == 409 and "enrolled without cohort statistics" in r.json()["error"]
    candidates = stack.api("POST", "/identify", data={"top_k": "3"}, files=_files(orl, 31, (5,))).json()["candidates"]
    assert [c["subject_id"] for c in candidates] == ["s31"]


def test_threshold_override_matches_the_score_kind(checkpoint: Path, with_cohort: Path) -> None:
    plain, normed = Embedder.from_checkpoint(checkpoint), Embedder.from_checkpoint(with_cohort)
    assert resolve_threshold(TerminalConfig(threshold=2.5), normed) == 2.5
    with pytest.raises(ConfigError, match=r"threshold is a cosine similarity in \[-1, 1\], got 2.5"):
        resolve_threshold(TerminalConfig(threshold=2.5), plain)
    with pytest.raises(ConfigError, match="threshold must be a finite S-normalised score, got inf"):
        resolve_threshold(TerminalConfig(threshold=float("inf")), normed)
