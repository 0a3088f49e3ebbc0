"""Fixtures for the data tests: tiny synthetic datasets in both layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _write(path: Path, rng: np.random.Generator, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, size=(24, 20, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    if path.suffix == ".pgm":
        image = image.convert("L")
    image.save(path, format=fmt)


@pytest.fixture()
def lfw_like(tmp_path: Path, rng: np.random.Generator) -> Path:
    """An LFW-layout folder: 6 people with 1-4 images each (JPEG and PNG)."""
    root = tmp_path / "lfw"
    counts = {"Alice_Aa": 3, "Bob_Bb": 1, "Carol_Cc": 4, "Dan_Dd": 2, "Eve_Ee": 2, "Frank_Ff": 1}
    for name, count in counts.items():
        for k in range(1, count + 1):
            _write(root / name / f"{name}_{k:04d}.jpg", rng)
    (root / "pairs.txt").write_text("2 1\nAlice_Aa\t1\t2\nAlice_Aa\t1\tBob_Bb\t1\nCarol_Cc\t3\t4\nDan_Dd\t1\tEve_Ee\t2\n")
    return root


@pytest.fixture()
def orl_like(tmp_path: Path, rng: np.random.Generator) -> Path:
    """An ORL-layout folder: s1..s12 with 3 PGM images each (s10 sorts after s9)."""
    root = tmp_path / "orl"
    for s in range(1, 13):
        for k in range(1, 4):
            _write(root / f"s{s}" / f"{k}.pgm", rng)
    return root
