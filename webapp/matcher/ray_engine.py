"""The sharded engine: gallery blocks spread over Ray actors, each a key-less :class:`GalleryShard`.

Matcher only. Each actor holds the public bundle and the blocks placed on it
(a new block goes to the shard holding fewest, so enrolment keeps the shards
balanced) and serves a few calls at once. A 1:N query puts the probe in Ray's object store once, fans out one
call per shard and gathers the encrypted partial scores; a 1:1 query or an
enrolment goes to the one shard holding the block.

An actor that dies (its process or node lost) is replaced on the next call
that reaches it: a new actor loads the dead one's blocks from the database
(and their kept templates) through the :data:`~webapp.matcher.engine.BlockLoader`, and the call is
retried once. ``address=None`` starts an embedded Ray on this machine (shut
down by :meth:`RayEngine.close`); an address joins an existing cluster.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

from facepp.errors import ConfigError, FaceppError
from webapp.matcher.engine import BlockLoader
from webapp.matcher.shard import GalleryShard

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never phone home from a matcher

import ray  # noqa: E402 - after the environment above
from ray.exceptions import RayActorError, RayError, RayTaskError  # noqa: E402

logger = logging.getLogger(__name__)
#: Calls one actor serves at once: concurrent scores on one shard overlap (SEAL releases the GIL);
#: the service's lock keeps mutations apart from scores.
ACTOR_THREADS = 4
#: Object store of an embedded Ray: holds probes, partial scores and blocks in transit, not the gallery.
OBJECT_STORE_BYTES = 1 << 30


class RayEngine:
    """Blocks of the gallery held by ``shards`` Ray actors.

    Args:
        bundle: the terminal's PUBLIC_BUNDLE message.
        dim: embedding dimension.
        fingerprint: the bundle's fingerprint.
        loader: reads a block's stored BLOCK message (to rebuild a lost actor).
        shards: number of actors (0: one per CPU of the Ray cluster).
        address: Ray cluster address, or ``None`` for an embedded Ray on this machine.

    Raises:
        ConfigError: Ray cannot start or reach the cluster.
        ProtocolError, KeyMismatchError: the bundle does not load.
    """

    name = "ray"

    def __init__(self, bundle: bytes, *, dim: int, fingerprint: bytes, loader: BlockLoader, shards: int = 0,
                 address: str | None = None) -> None:
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            try:
                if address is None:
                    ray.init(num_cpus=os.cpu_count() or 1, object_store_memory=OBJECT_STORE_BYTES,
                             include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
                else:
                    ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
            except (RayError, ConnectionError, ValueError, RuntimeError) as exc:
                raise ConfigError(f"cannot start Ray ({address or 'embedded'}): {exc}") from exc
        self.shards = shards or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._loader = loader
        self._actor_class = ray.remote(GalleryShard).options(num_cpus=0, max_concurrency=ACTOR_THREADS,
                                                             scheduling_strategy="SPREAD")
        self._init = (ray.put(bundle), dim, fingerprint)
        self._lock = threading.Lock()
        self._placement: dict[int, int] = {}
        try:
            self._actors = [self._spawn() for _ in range(self.shards)]
        except BaseException:
            self.close()
            raise
        logger.info("Ray engine: %d shards on %s", self.shards, address or "an embedded Ray")

    # -- the Engine calls ---------------------------------------------------------------------

    def put_block(self, index: int, block: bytes) -> None:
        """See :meth:`GalleryShard.put_block` (a new block goes to the emptiest shard)."""
        self._gather([(self._shard_for(index), "put_block", (index, block))])

    def write_template(self, index: int, slot: int, template: bytes, live: bytes) -> tuple[bytes, bytes]:
        """See :meth:`GalleryShard.write_template` (a new block goes to the emptiest shard)."""
        data: tuple[bytes, bytes] = self._gather([(self._shard_for(index), "write_template",
                                                   (index, slot, template, live))])[0]
        return data

    def put_template(self, index: int, slot: int, template: bytes) -> None:
        """See :meth:`GalleryShard.put_template`."""
        self._gather([(self._placement[index], "put_template", (index, slot, template))])

    def drop_template(self, index: int, slot: int) -> None:
        """See :meth:`GalleryShard.drop_template`."""
        self._gather([(self._placement[index], "drop_template", (index, slot))])

    def export_block(self, index: int, live: bytes) -> bytes:
        """See :meth:`GalleryShard.export_block`."""
        data: bytes = self._gather([(self._placement[index], "export_block", (index, live))])[0]
        return data

    def score(self, probe: bytes, indices: Sequence[int]) -> list[bytes]:
        """1:N: one call per shard holding some of ``indices``; partial scores in the order of ``indices``."""
        by_shard: dict[int, list[int]] = {}
        for index in indices:
            by_shard.setdefault(self._placement[index], []).append(index)
        probe_ref = ray.put(probe)
        shards = list(by_shard)
        answers = self._gather([(s, "score", (probe_ref, by_shard[s])) for s in shards])
        found = {i: ct for s, cts in zip(shards, answers) for i, ct in zip(by_shard[s], cts, strict=True)}
        return [found[i] for i in indices]

    def score_slot(self, index: int, slot: int, probe: bytes) -> bytes:
        """See :meth:`GalleryShard.score_slot`."""
        data: bytes = self._gather([(self._placement[index], "score_slot", (index, slot, probe))])[0]
        return data

    def close(self) -> None:
        """Stop the actors, and the embedded Ray if this engine started it."""
        for actor in getattr(self, "_actors", []):
            ray.kill(actor)
        self._actors = []
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()

    # -- internals ----------------------------------------------------------------------------

    def placement(self) -> dict[int, int]:
        """``{block: shard}`` (a copy)."""
        with self._lock:
            return dict(self._placement)

    def actor(self, shard: int) -> Any:
        """The actor handle of ``shard`` (tests kill it to check recovery)."""
        return self._actors[shard]

    def _spawn(self) -> Any:
        bundle_ref, dim, fingerprint = self._init
        actor: Any = self._actor_class.remote(bundle_ref, dim=dim, fingerprint=fingerprint)
        _get(actor.indices.remote())  # surfaces a bundle error now, not on first use
        return actor

    def _shard_for(self, index: int) -> int:
        with self._lock:
            if index not in self._placement:
                counts = [0] * self.shards
                for shard in self._placement.values():
                    counts[shard] += 1
                self._placement[index] = counts.index(min(counts))
            return self._placement[index]

    def _gather(self, calls: list[tuple[int, str, tuple[Any, ...]]]) -> list[Any]:
        """Submit every call, then collect each answer; a dead actor is replaced and its call retried once."""
        refs = [getattr(self._actors[shard], method).remote(*args) for shard, method, args in calls]
        answers = []
        for (shard, method, args), ref in zip(calls, refs):
            try:
                answers.append(_get(ref))
            except RayActorError:
                logger.warning("Ray shard %d died: rebuilding it from the database", shard)
                self._replace(shard, self._actors[shard])
                answers.append(_get(getattr(self._actors[shard], method).remote(*args)))
        return answers

    def _replace(self, shard: int, dead: Any) -> None:
        with self._lock:
            if self._actors[shard] is not dead:
                return  # another thread replaced it already
            actor = self._spawn()
            indices = [i for i, s in self._placement.items() if s == shard]
            for index in indices:
                block, templates = self._loader(index)
                calls = [actor.put_block.remote(index, block)]
                calls += [actor.put_template.remote(index, slot, data) for slot, data in templates]
                _get(calls)
            self._actors[shard] = actor
        logger.info("Ray shard %d rebuilt with %d blocks", shard, len(indices))


def _get(refs: Any) -> Any:
    """``ray.get(refs)``; a project error raised inside an actor comes out as itself."""
    try:
        return ray.get(refs)
    except RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, FaceppError):
            raise cause from None
        raise
