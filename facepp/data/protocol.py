"""Verification pairs: the LFW protocol files and pairs built from a folder.

``pairs.txt`` format: a header line (``10 300`` = folds x pairs-per-class, or a single
count such as ``500`` for the View-1 files), then one pair a line, either
``name i j`` (same person, images i and j) or ``name1 i name2 j`` (different people).
Image numbers are 1-based, as in ``<name>/<name>_0001.jpg``.

``people*.txt`` format: an optional header (``10`` folds, then a count before each
fold, or a single count), then ``name count`` lines.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facepp.data.datasets import FaceDataset
from facepp.errors import DatasetError


@dataclass(frozen=True)
class Pair:
    """Two images and whether they show the same person; ``fold`` is 0-based."""

    path_a: Path
    path_b: Path
    same: bool
    fold: int


def lfw_image_path(root: Path, name: str, number: int) -> Path:
    """The LFW-layout path of image ``number`` (1-based) of identity ``name``."""
    return Path(root) / name / f"{name}_{number:04d}.jpg"


def read_pairs(pairs_file: str | Path, root: str | Path, *, n_folds: int = 10, check_exists: bool = True) -> list[Pair]:
    """Parse an LFW pairs file.

    With a ``folds count`` header the folds are those of the file; with a single count
    (View-1 files) the pairs are dealt into ``n_folds`` folds keeping the genuine/impostor
    balance (pair k of each class goes to fold ``k * n_folds // count``).

    Args:
        pairs_file: The pairs file.
        root: The LFW image folder the names refer to.
        n_folds: Number of folds when the header does not say.
        check_exists: Fail when a referenced image is missing.

    Returns:
        The pairs in file order.

    Raises:
        DatasetError: unreadable file, malformed line or missing image.
    """
    pairs_file, root = Path(pairs_file), Path(root)
    try:
        lines = [ln.split() for ln in pairs_file.read_text().splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read pairs file {pairs_file}: {type(exc).__name__}") from None
    if not lines:
        raise DatasetError(f"pairs file {pairs_file} is empty")
    header, body = lines[0], lines[1:]
    try:
        numbers = [int(x) for x in header]
    except ValueError:
        raise DatasetError(f"{pairs_file}: header must be 'folds count' or 'count', got {' '.join(header)!r}") from None
    pairs: list[Pair] = []
    counters = {True: 0, False: 0}
    per_class = numbers[-1] if len(numbers) == 2 else max(1, len(body) // 2)
    for lineno, parts in enumerate(body, start=2):
        try:
            if len(parts) == 3:
                name_a, name_b, i, j, same = parts[0], parts[0], int(parts[1]), int(parts[2]), True
            elif len(parts) == 4:
                name_a, i, name_b, j, same = parts[0], int(parts[1]), parts[2], int(parts[3]), False
            else:
                raise ValueError
        except ValueError:
            raise DatasetError(f"{pairs_file}:{lineno}: expected 'name i j' or 'name1 i name2 j'") from None
        if len(numbers) == 2:
            fold = (lineno - 2) // (2 * per_class)
        else:
            fold = min(n_folds - 1, counters[same] * n_folds // per_class)
        counters[same] += 1
        pair = Pair(lfw_image_path(root, name_a, i), lfw_image_path(root, name_b, j), same, fold)
        if check_exists and not (pair.path_a.is_file() and pair.path_b.is_file()):
            raise DatasetError(f"{pairs_file}:{lineno}: image missing under {root}")
        pairs.append(pair)
    if not pairs:
        raise DatasetError(f"pairs file {pairs_file} lists no pairs")
    return pairs


def identities_in_pairs(pairs: list[Pair]) -> set[str]:
    """The identity folder names referenced by ``pairs``."""
    return {p.parent.name for pair in pairs for p in (pair.path_a, pair.path_b)}


def read_people(people_file: str | Path) -> list[tuple[str, int]]:
    """Parse an LFW ``people*.txt`` file into ``(name, image count)`` in file order.

    Raises:
        DatasetError: unreadable file or malformed line.
    """
    people_file = Path(people_file)
    try:
        lines = [ln.split() for ln in people_file.read_text().splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read people file {people_file}: {type(exc).__name__}") from None
    people: list[tuple[str, int]] = []
    for lineno, parts in enumerate(lines, start=1):
        if len(parts) == 1 and parts[0].isdigit():
            continue  # header: fold count or per-fold count
        if len(parts) != 2 or not parts[1].isdigit():
            raise DatasetError(f"{people_file}:{lineno}: expected 'name count'")
        people.append((parts[0], int(parts[1])))
    return people


def build_pairs(
    dataset: FaceDataset,
    *,
    rng: np.random.Generator,
    n_folds: int = 10,
    max_genuine: int | None = None,
) -> list[Pair]:
    """All genuine pairs of a dataset plus as many seeded impostor pairs, dealt into folds.

    Args:
        dataset: The (test) identities; each identity with >= 2 images gives genuine pairs.
        rng: Source of randomness (impostor sampling, subsampling, fold assignment).
        n_folds: Number of folds, each balanced between genuine and impostor pairs.
        max_genuine: Subsample genuine pairs to at most this many (None: all).

    Returns:
        Genuine and impostor pairs, equal in number, no pair repeated.

    Raises:
        DatasetError: fewer than two identities or no identity with two images.
    """
    if len(dataset.identities) < 2:
        raise DatasetError("building impostor pairs needs at least two identities")
    genuine = [
        (a.path, b.path)
        for name in dataset.identities
        for a, b in itertools.combinations(dataset.images_of(name), 2)
    ]
    if not genuine:
        raise DatasetError("no identity has two images: no genuine pair can be built")
    if max_genuine is not None and len(genuine) > max_genuine:
        keep = np.sort(rng.choice(len(genuine), size=max_genuine, replace=False))
        genuine = [genuine[k] for k in keep]
    samples = dataset.samples
    labels = np.array([s.label for s in samples])
    impostor: set[tuple[int, int]] = set()
    max_impostor = (len(samples) ** 2 - int(np.sum(np.bincount(labels) ** 2))) // 2
    target = min(len(genuine), max_impostor)
    while len(impostor) < target:
        i, j = (int(x) for x in rng.integers(0, len(samples), size=2))
        if labels[i] != labels[j]:
            impostor.add((min(i, j), max(i, j)))
    impostor_pairs = [(samples[i].path, samples[j].path) for i, j in sorted(impostor)]
    pairs: list[Pair] = []
    for same, group in ((True, genuine), (False, impostor_pairs)):
        folds = rng.permutation(len(group)) % n_folds
        pairs.extend(Pair(a, b, same, int(f)) for (a, b), f in zip(group, folds, strict=True))
    return pairs
