"""The matcher's engines over a real SQLite database and real CKKS: in-process and sharded on a 2-worker local Ray.

* the Ray engine's scores decrypt to exactly the in-process engine's;
* new blocks are placed on the emptiest shard; enrolment through Ray is persisted;
* a killed actor is rebuilt from the database and the query still answers;
* enrol, delete, refresh and score running concurrently leave the gallery
  consistent with the database, and no reader sees a half-applied change.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from facepp.crypto.ckks.packing import pack_bitmap
from facepp.crypto.ckks.secret_key import CkksKeyHolder
from facepp.errors import ConfigError, ProtocolError
from tests.helpers.matcher import DIM
from webapp.matcher.client import StaleLocationsError, live_slots, location_table
from webapp.matcher.config import MatcherConfig
from webapp.matcher.db import make_engine, upgrade
from webapp.matcher.service import MatcherService
from webapp.matcher.store import BlockRecord, GalleryChange, MatcherStore

BLOCK_SIZES = (5, 3, 4)  # three bulk blocks, so two shards hold unequal shares


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=(n, DIM))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _store(path: Path) -> MatcherStore:
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    return MatcherStore(engine)


def _bulk_gallery(store: MatcherStore, holder: CkksKeyHolder, templates: np.ndarray) -> list[str]:
    """Register the bundle and write bulk-encrypted blocks of BLOCK_SIZES templates straight into the database."""
    MatcherService(store, engine="local").register_bundle(holder.export_public_bundle(), dim=DIM)
    slots, ids, start = holder.params.slots, [], 0
    for block, size in enumerate(BLOCK_SIZES):
        live = np.zeros(slots, dtype=bool)
        live[:size] = True
        names = [f"s{start + t:03d}" for t in range(size)]
        store.apply(GalleryChange(
            blocks=[BlockRecord(block, pack_bitmap(live), pack_bitmap(np.zeros(slots, dtype=bool)),
                                holder.encrypt_block(templates[start:start + size]))],
            upsert_subjects=[(sid, block, t) for t, sid in enumerate(names)]))
        ids += names
        start += size
    return ids


def _identify(service: MatcherService, holder: CkksKeyHolder, probe: bytes) -> dict[str, float]:
    """1:N through the service, decrypted with the location table of the reply's version (asked again if stale)."""
    while True:
        reply = service.identify(probe)
        version, subjects = service.locations()

        def table(wanted: str) -> dict[int, list[tuple[str, int]]]:
            if wanted != version:
                raise StaleLocationsError("the gallery changed")
            return location_table(subjects)

        try:
            return holder.decrypt_scores(reply, dim=DIM, locations=table)
        except StaleLocationsError:
            continue


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory, key_holder: CkksKeyHolder) -> tuple[Path, np.ndarray, list[str]]:
    path = tmp_path_factory.mktemp("engines") / "matcher.db"
    templates = _unit(np.random.default_rng(16), sum(BLOCK_SIZES) + 2)
    ids = _bulk_gallery(_store(path), key_holder, templates[: sum(BLOCK_SIZES)])
    return path, templates, ids


@pytest.fixture(scope="module")
def ray_service(gallery: tuple[Path, np.ndarray, list[str]]) -> Iterator[MatcherService]:
    """``auto`` with two shards and a gallery of several blocks: an embedded Ray with 2 actors."""
    service = MatcherService(_store(gallery[0]), engine="auto", shards=2)
    yield service
    service.close()
    import ray

    assert not ray.is_initialized(), "the engine shuts its embedded Ray down"


def test_two_ray_shards_give_exactly_the_in_process_scores(gallery: tuple[Path, np.ndarray, list[str]],
                                                           ray_service: MatcherService,
                                                           key_holder: CkksKeyHolder) -> None:
    path, templates, ids = gallery
    local = MatcherService(_store(path), engine="local")
    assert local.engine is not None and ray_service.engine is not None
    assert (local.engine.name, ray_service.engine.name, ray_service.engine.shards) == ("local", "ray", 2)
    assert sorted(set(ray_service.engine.placement().values())) == [0, 1], "blocks are spread over both shards"
    probe = templates[-1]
    identify = key_holder.encrypt_probe(probe, verification=False)
    on_ray = _identify(ray_service, key_holder, identify)
    in_process = _identify(local, key_holder, identify)
    assert on_ray == in_process and list(on_ray) == ids
    np.testing.assert_allclose([on_ray[s] for s in ids], templates[: len(ids)] @ probe, atol=1e-4)
    verify = key_holder.encrypt_probe(probe, verification=True)
    for sid in (ids[0], ids[-1]):
        assert (key_holder.decrypt_scores(ray_service.score_one(sid, verify), dim=DIM)
                == key_holder.decrypt_scores(local.score_one(sid, verify), dim=DIM))


def test_a_killed_actor_is_rebuilt_from_the_database_and_the_query_answers(
        gallery: tuple[Path, np.ndarray, list[str]], ray_service: MatcherService, key_holder: CkksKeyHolder) -> None:
    import ray

    _, templates, ids = gallery
    probe = key_holder.encrypt_probe(templates[-1], verification=False)
    before = _identify(ray_service, key_holder, probe)
    engine = ray_service.engine
    dead = engine.actor(0)
    ray.kill(dead, no_restart=True)
    assert _identify(ray_service, key_holder, probe) == before
    assert engine.actor(0) is not dead
    verify = key_holder.encrypt_probe(templates[0], verification=True)
    ray.kill(engine.actor(1), no_restart=True)
    assert key_holder.decrypt_scores(ray_service.score_one(ids[0], verify), dim=DIM)[ids[0]] == pytest.approx(1, abs=1e-4)


def test_enrolment_on_ray_fills_free_slots_and_persists(gallery: tuple[Path, np.ndarray, list[str]],
                                                        ray_service: MatcherService, key_holder: CkksKeyHolder) -> None:
    path, templates, _ = gallery
    import ray

    new = templates[-2]
    assert ray_service.enrol("fresh", key_holder.encrypt_template(new)) == (0, BLOCK_SIZES[0])
    probe = key_holder.encrypt_probe(templates[0], verification=True)
    expected = float(new @ templates[0])
    reply = ray_service.score_one("fresh", probe)
    assert key_holder.decrypt_scores(reply, dim=DIM)["fresh"] == pytest.approx(expected, abs=1e-4)
    (slots,) = key_holder.decrypt_score_slots(reply, dim=DIM)
    np.testing.assert_allclose(slots, expected, atol=1e-4, err_msg="a fast 1:1 reply shows that one score only")
    ray.kill(ray_service.engine.actor(ray_service.engine.placement()[0]), no_restart=True)
    rebuilt = key_holder.decrypt_score_slots(ray_service.score_one("fresh", probe), dim=DIM)[0]
    np.testing.assert_allclose(rebuilt, expected, atol=1e-4, err_msg="the kept template is rebuilt from the database")
    reloaded = MatcherService(_store(path), engine="local")
    identify = key_holder.encrypt_probe(new, verification=False)
    assert (_identify(reloaded, key_holder, identify)
            == _identify(ray_service, key_holder, identify))
    ray_service.delete("fresh")
    assert "fresh" not in ray_service.subjects() and ray_service.stale_blocks() == [0]


def test_the_engine_setting_is_checked() -> None:
    for good in ("auto", "local", "ray", "ray://head:10001", "10.0.0.5:6379"):
        assert MatcherConfig(engine=good).engine == good
    for bad in ("", "spark", "ray:/x", "host:port"):
        with pytest.raises(ConfigError, match="engine must be"):
            MatcherConfig(engine=bad)
    with pytest.raises(ConfigError, match="shards"):
        MatcherConfig(shards=-1)


def test_concurrent_enrol_delete_refresh_and_score_stay_consistent_with_the_database(
        tmp_path: Path, key_holder: CkksKeyHolder) -> None:
    store = _store(tmp_path / "matcher.db")
    templates = _unit(np.random.default_rng(7), sum(BLOCK_SIZES) + 3)
    ids = _bulk_gallery(store, key_holder, templates[: sum(BLOCK_SIZES)])
    service = MatcherService(store, engine="local")
    expected = dict(zip(ids, templates))
    extra = {f"new{i}": templates[sum(BLOCK_SIZES) + i] for i in range(len(templates) - sum(BLOCK_SIZES))}
    probe = templates[0]
    identify = key_holder.encrypt_probe(probe, verification=False)
    verify = key_holder.encrypt_probe(probe, verification=True)
    lock = threading.Lock()
    seen: list[dict[str, float]] = []
    refused: list[int] = []

    def score(_: int) -> None:
        scores = _identify(service, key_holder, identify)
        one = key_holder.decrypt_scores(service.score_one(ids[0], verify), dim=DIM)
        with lock:
            seen.extend([scores, one])

    def enrol(sid: str) -> None:
        service.enrol(sid, key_holder.encrypt_template(extra[sid]))

    def delete_and_refresh(sid: str) -> None:
        service.delete(sid)
        while stale := service.stale_blocks():
            data = service.export_block(stale[0])
            try:
                service.install_block(stale[0], key_holder.refresh_block(data, dim=DIM, keep_slots=live_slots(data)))
            except ProtocolError:  # an enrolment landed in the block since the export: refresh it again
                refused.append(stale[0])

    with ThreadPoolExecutor(8) as pool:
        jobs = [pool.submit(score, i) for i in range(6)]
        jobs += [pool.submit(enrol, sid) for sid in extra]
        jobs += [pool.submit(delete_and_refresh, sid) for sid in ids[1:4]]
        jobs += [pool.submit(score, i) for i in range(6)]
        for job in jobs:
            job.result()
    truth = {**expected, **extra}
    for scores in seen:  # every reader saw whole templates only: each score is its subject's true score
        for sid, value in scores.items():
            assert value == pytest.approx(float(truth[sid] @ probe), abs=1e-4), sid
    final = sorted(set(ids) - set(ids[1:4]) | set(extra))
    assert service.subjects() == final == sorted(sid for sid, _, _ in store.subjects())
    assert service.stale_blocks() == []
    reloaded = MatcherService(store, engine="local")
    assert (_identify(reloaded, key_holder, identify)
            == _identify(service, key_holder, identify))


def test_serve_scores_on_ray_in_the_gunicorn_worker(tmp_path: Path, key_holder: CkksKeyHolder) -> None:
    """``facepp-matcher serve --engine ray``: Ray starts in the worker that serves (it does not survive a fork)."""
    import subprocess
    import sys
    import time

    import requests

    from tests.helpers.net import free_port
    from webapp.matcher.auth import create_api_key
    from webapp.matcher.client import MatcherClient

    db = tmp_path / "matcher.db"
    store = _store(db)
    templates = _unit(np.random.default_rng(7), sum(BLOCK_SIZES) + 1)
    ids = _bulk_gallery(store, key_holder, templates[:-1])
    key = create_api_key(store, "terminal-1")
    port = free_port()
    root = Path(__file__).resolve().parents[3]
    server = subprocess.Popen([sys.executable, "-m", "webapp.matcher.cli", "serve", "--db", str(db), "--port", str(port),
                               "--engine", "ray", "--shards", "2"], cwd=root, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
        while True:  # the port listens at once; the worker answers once its gallery is on Ray
            try:
                if requests.get(url + "/api/v1/health", timeout=5).ok:
                    break
            except requests.RequestException:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "matcher did not start"
            time.sleep(0.2)
        client = MatcherClient(url, key, timeout=60)
        probe = templates[-1]
        scores = key_holder.decrypt_scores(client.identify(key_holder.encrypt_probe(probe, verification=False)),
                                           dim=DIM, locations=client.table_for)
        np.testing.assert_allclose([scores[s] for s in ids], templates[:-1] @ probe, atol=1e-4)
        one = key_holder.decrypt_scores(client.verify(ids[4], key_holder.encrypt_probe(probe)), dim=DIM)
        assert one == pytest.approx({ids[4]: float(templates[4] @ probe)}, abs=1e-4)
    finally:
        server.terminate()
        output = server.communicate(timeout=60)[0]
    assert "on the ray engine (2 shards)" in output, output[-3000:]
