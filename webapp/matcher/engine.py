"""Where the matcher's ciphertexts live and are scored: in this process, or sharded over Ray actors.

Matcher only, key-less. One configuration value (``engine``, env
``FACEPP_MATCHER_ENGINE``) chooses:

* ``local``: the in-process engine, the whole gallery in one
  :class:`~webapp.matcher.shard.GalleryShard` (small galleries, tests);
* ``ray``: an embedded local Ray (``ray.init()`` on this machine), blocks spread
  over ``shards`` actors (one per core by default);
* a Ray cluster address (``ray://host:10001`` or ``host:6379``): the same
  actors on the cluster's nodes;
* ``auto`` (default): ``ray`` once the gallery has more than one block and there
  is more than one core or ``shards > 1``; ``local`` otherwise.

Every engine takes the same calls (:class:`Engine`) with bytes in and out, and
rebuilds lost state through a :data:`BlockLoader` that reads the database.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Protocol

from facepp.errors import ConfigError
from webapp.matcher.shard import GalleryShard

#: Reads a block index's stored BLOCK message and its kept templates ``[(slot, ciphertext), ...]``
#: (the database is the source of truth).
BlockLoader = Callable[[int], tuple[bytes, list[tuple[int, bytes]]]]
ENGINES = ("auto", "local", "ray")


class Engine(Protocol):
    """The calls the matcher service makes on its ciphertexts (see :class:`GalleryShard`)."""

    name: str
    shards: int

    def put_block(self, index: int, block: bytes) -> None: ...

    def write_template(self, index: int, slot: int, template: bytes, live: bytes) -> tuple[bytes, bytes]: ...

    def put_template(self, index: int, slot: int, template: bytes) -> None: ...

    def drop_template(self, index: int, slot: int) -> None: ...

    def export_block(self, index: int, live: bytes) -> bytes: ...

    def score(self, probe: bytes, indices: Sequence[int]) -> list[bytes]: ...

    def score_slot(self, index: int, slot: int, probe: bytes) -> bytes: ...

    def close(self) -> None: ...


class LocalEngine(GalleryShard):
    """The in-process engine: one shard holding every block."""

    name = "local"
    shards = 1

    def close(self) -> None:
        """Drop the ciphertexts."""
        self._blocks.clear()
        self._templates.clear()


def check_engine(value: str) -> str:
    """Validate an ``engine`` setting: ``auto``, ``local``, ``ray`` or a Ray address.

    Raises:
        ConfigError: anything else.
    """
    if value in ENGINES or value.startswith("ray://") or _is_host_port(value):
        return value
    raise ConfigError(f"engine must be auto, local, ray or a Ray address (ray://HOST:PORT or HOST:PORT), got {value!r}")


def wants_ray(engine: str, *, shards: int, blocks: int) -> bool:
    """Whether ``engine`` runs on Ray for a gallery of ``blocks`` blocks."""
    if engine == "auto":
        return blocks > 1 and ((os.cpu_count() or 1) > 1 or shards > 1)
    return engine != "local"


def open_engine(engine: str, *, shards: int, blocks: int, bundle: bytes, dim: int, fingerprint: bytes,
                loader: BlockLoader) -> Engine:
    """Start the engine ``engine`` chooses for a gallery of ``blocks`` blocks (empty: the caller loads them).

    Raises:
        ProtocolError, KeyMismatchError: the bundle does not load.
        ConfigError: Ray cannot start or reach its cluster.
    """
    if not wants_ray(engine, shards=shards, blocks=blocks):
        return LocalEngine(bundle, dim=dim, fingerprint=fingerprint)
    from webapp.matcher.ray_engine import RayEngine

    address = None if engine in ENGINES else engine
    return RayEngine(bundle, dim=dim, fingerprint=fingerprint, loader=loader, shards=shards, address=address)


def _is_host_port(value: str) -> bool:
    host, sep, port = value.rpartition(":")
    return bool(sep and host and port.isdigit())
