"""Per-organisation data folders: ``facepp partition`` writes what ``facepp simulate`` would give each
participant, and a participant of an ``own`` federation trains on all of its own folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from facepp.cli import main as facepp_main
from facepp.errors import ConfigError
from training.participant.spec import TrainingSpec, split_for_federation
from training.simulation.partition import HELD_OUT, partition_dataset

NAMES = ("org1", "org2", "org3")


def _dataset(root: Path, identities: int = 12, images: int = 3) -> Path:
    """An ORL-layout folder (s1..sN); the files are never decoded here."""
    for i in range(1, identities + 1):
        (root / f"s{i}").mkdir(parents=True)
        for j in range(1, images + 1):
            (root / f"s{i}" / f"{j}.pgm").write_bytes(f"P5 {i} {j}".encode())
    return root


def _identities(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.is_dir()}


def test_each_folder_gets_the_identities_the_simulation_would_give(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data")
    counts = partition_dataset(data, tmp_path / "out", NAMES, seed=3)
    split = split_for_federation(data, TrainingSpec(total_rounds=1, participants=NAMES, seed=3))
    for name, expected in zip(NAMES, split.partitions):
        assert _identities(tmp_path / "out" / name) == set(expected)
        assert counts[name] == 3 * len(expected)
    assert _identities(tmp_path / "out" / HELD_OUT) == set(split.eval_identities) == {"s10", "s11", "s12"}
    assert (tmp_path / "out" / "org1" / sorted(split.partitions[0])[0] / "2.pgm").read_bytes().startswith(b"P5")


def test_an_own_partition_trains_on_the_whole_folder(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data")
    partition_dataset(data, tmp_path / "out", NAMES)
    own = TrainingSpec(total_rounds=1, participants=NAMES, partition="own")
    split = split_for_federation(tmp_path / "out" / "org2", own)
    assert set(split.partitions[own.index_of("org2")]) == _identities(tmp_path / "out" / "org2")
    assert split.eval_pairs_file is None and split.eval_identities == ()


def test_the_command_refuses_a_used_folder_and_bad_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _dataset(tmp_path / "data")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("x")
    assert facepp_main(["partition", "--data", str(data), "--out", str(tmp_path / "used"), "--participants", "a,b"]) == 1
    assert "not a new or empty folder" in capsys.readouterr().err
    assert (tmp_path / "used" / "keep.txt").read_text() == "x"
    for names in ("a,held-out", "a,a", "a,../b"):
        with pytest.raises(ConfigError):
            partition_dataset(data, tmp_path / "out", names.split(","))
    assert not (tmp_path / "out").exists()


def test_the_command_writes_the_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _dataset(tmp_path / "data")
    assert facepp_main(["-q", "partition", "--data", str(data), "--out", str(tmp_path / "out"), "--participants",
                        "a,b", "--partition", "skewed"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a", "b", HELD_OUT]
    assert "images" in capsys.readouterr().out


def test_a_held_out_fold_is_scored_and_never_trained_on(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data")  # s1-s9 train, s10-s12 test
    spec = TrainingSpec(total_rounds=1, participants=NAMES, held_out=("s2", "s5"))
    split = split_for_federation(data, spec)
    assert {n for part in split.partitions for n in part} == {f"s{i}" for i in range(1, 10)} - {"s2", "s5"}
    assert split.eval_identities == ("s2", "s5") and split.eval_pairs_file is None
    assert TrainingSpec.from_json(spec.to_json()) == spec


def test_a_held_out_fold_must_come_from_the_training_identities(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data")
    for names in (("s11",), ("s1", "nobody")):
        with pytest.raises(ConfigError, match="not training identities"):
            split_for_federation(data, TrainingSpec(total_rounds=1, participants=NAMES, held_out=names))
    with pytest.raises(ConfigError, match="twice"):
        split_for_federation(data, TrainingSpec(total_rounds=1, participants=NAMES, held_out=("s1", "s1")))
    with pytest.raises(ConfigError, match="'own' partition"):
        split_for_federation(data, TrainingSpec(total_rounds=1, participants=NAMES, partition="own", held_out=("s1",)))
