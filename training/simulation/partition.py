"""Split one dataset into per-organisation folders, as :mod:`training.participant.spec` splits it.

Trusted simulation host: it reads every image. A demo deployment (the compose
stack of ``docker/``) gives each participant only its own folder and trains
with the ``own`` partition, which then sees the same identities ``facepp
simulate`` would give that participant. Writes::

    OUT/NAME/<identity>/<image>    the training identities of participant NAME
    OUT/held-out/<identity>/...    the evaluation identities (and LFW's pairs file)
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from facepp.errors import ConfigError
from training.participant.spec import LFW_TEST_PAIRS, TrainingSpec, split_for_federation

HELD_OUT = "held-out"


def partition_dataset(data: str | Path, out: str | Path, participants: Sequence[str], *, partition: str = "iid",
                      seed: int = 0) -> dict[str, int]:
    """Copy each participant's identities of ``data`` into ``out/NAME`` and the rest into ``out/held-out``.

    Args:
        data: A one-folder-per-identity dataset (LFW, ORL or generic layout).
        out: A new or empty folder.
        participants: Participant names (folder names; ``held-out`` is reserved).
        partition: ``iid`` or ``skewed``, as in ``facepp simulate``.
        seed: The partition's seed (``facepp simulate --seed``).

    Returns:
        Images copied per folder name.

    Raises:
        ConfigError: ``out`` is not a new or empty folder, or a name is unusable.
        DatasetError: ``data`` is not a dataset.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} is not a new or empty folder: refusing to mix partitions")
    for name in participants:
        if name == HELD_OUT or not name or name != Path(name).name or name.startswith("."):
            raise ConfigError(f"{name!r} cannot be a participant folder name")
    if len(set(participants)) != len(participants):
        raise ConfigError("participant names must be unique")
    if partition not in ("iid", "skewed"):
        raise ConfigError(f"partition must be iid or skewed, got {partition!r}")
    split = split_for_federation(data, TrainingSpec(total_rounds=1, participants=tuple(participants),
                                                    partition=partition, seed=seed))
    owners = {identity: name for name, identities in zip(participants, split.partitions) for identity in identities}
    owners.update({identity: HELD_OUT for identity in split.eval_identities})
    counts = dict.fromkeys([*participants, HELD_OUT], 0)
    for sample in tqdm(split.dataset.samples, desc="partition", unit="image", mininterval=2):
        folder = out / owners[sample.identity] / sample.identity
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(sample.path, folder / sample.path.name)
        counts[owners[sample.identity]] += 1
    if split.eval_pairs_file is not None:
        shutil.copy2(split.eval_pairs_file, out / HELD_OUT / LFW_TEST_PAIRS)
    return counts
