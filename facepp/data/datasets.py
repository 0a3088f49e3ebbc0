"""Face datasets stored one folder per identity (LFW and ORL layouts), detected automatically.

Two layouts are recognised:

* ``lfw``: ``<Person_Name>/<Person_Name>_0001.jpg`` (file stems ``<folder>_<number>``);
* ``orl``: ``s1/1.pgm`` (folders ``s<number>``, files ``<number>.<ext>``).

Any other one-folder-per-identity tree is loaded as ``generic``. Files are listed
in a deterministic (natural) order, so labels and splits never depend on the
file system.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from facepp.data.images import IMAGE_SUFFIXES
from facepp.errors import DatasetError

logger = logging.getLogger(__name__)

LAYOUTS: tuple[str, ...] = ("lfw", "orl", "generic")
#: Where datasets are looked for when ``FACEPP_DATA`` is not set (relative to the working directory).
DEFAULT_DATA_ROOT = "../shared/data"
_ORL_DIR = re.compile(r"^s(\d+)$")
_DIGITS = re.compile(r"(\d+)")


def data_root(name: str | None = None, *, env: dict[str, str] | None = None) -> Path:
    """The datasets folder, ``$FACEPP_DATA`` (default ``../shared/data``), or the dataset ``name`` in it.

    Every command, benchmark and script finds its data through this function. The
    folder holds one sub-folder per dataset (``orl/``, ``lfw/``); nothing is fetched.

    Args:
        name: A dataset folder name, e.g. ``"orl"``.
        env: Environment to read (default ``os.environ``).
    """
    root = Path((os.environ if env is None else env).get("FACEPP_DATA") or DEFAULT_DATA_ROOT)
    return root / name if name else root


def natural_key(text: str) -> tuple[object, ...]:
    """Sort key that orders embedded numbers numerically (``s2`` before ``s10``)."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in _DIGITS.split(text))


@dataclass(frozen=True)
class Sample:
    """One image of a dataset: its path, identity name and integer label."""

    path: Path
    identity: str
    label: int


@dataclass(frozen=True)
class FaceDataset:
    """A list of images grouped by identity.

    Attributes:
        root: The dataset folder.
        layout: ``"lfw"``, ``"orl"`` or ``"generic"``.
        identities: Identity names in natural order; ``label`` indexes this tuple.
        samples: Every image, grouped by identity, in natural order.
    """

    root: Path
    layout: str
    identities: tuple[str, ...]
    samples: tuple[Sample, ...]
    _by_identity: dict[str, tuple[Sample, ...]] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.samples)

    def images_of(self, identity: str) -> tuple[Sample, ...]:
        """The samples of one identity.

        Raises:
            DatasetError: unknown identity.
        """
        if identity not in self._by_identity:
            raise DatasetError(f"identity {identity!r} is not in dataset {self.root}")
        return self._by_identity[identity]

    def subset(self, identities: list[str] | tuple[str, ...], *, min_images: int = 1) -> FaceDataset:
        """A new dataset restricted to ``identities`` (relabelled 0..K-1 in the given order).

        Args:
            identities: Names to keep; each must exist.
            min_images: Drop identities with fewer images than this.

        Raises:
            DatasetError: an identity is not in the dataset.
        """
        kept = [name for name in identities if len(self.images_of(name)) >= min_images]
        return _build(self.root, self.layout, {name: [s.path for s in self.images_of(name)] for name in kept}, kept)


def detect_layout(root: str | Path) -> str:
    """Guess the layout of a dataset folder from its first identity folders.

    Returns:
        ``"orl"`` when the folders are ``s<number>``, ``"lfw"`` when file stems start with the
        folder name followed by ``_<number>``, else ``"generic"``.

    Raises:
        DatasetError: not a folder, or no identity sub-folder with images.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist or is not a directory")
    folders = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    if not folders:
        raise DatasetError(f"{root} holds no identity sub-folders (expected <identity>/<image> files)")
    if all(_ORL_DIR.match(p.name) for p in folders):
        return "orl"
    probe = folders[: min(20, len(folders))]
    lfw_like = 0
    for folder in probe:
        files = [f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES]
        if files and all(re.fullmatch(re.escape(folder.name) + r"_\d+", f.stem) for f in files):
            lfw_like += 1
    return "lfw" if lfw_like == len(probe) else "generic"


def load_dataset(root: str | Path, *, layout: str | None = None, min_images: int = 1) -> FaceDataset:
    """Load a one-folder-per-identity dataset.

    Args:
        root: The dataset folder (e.g. ``$FACEPP_DATA/lfw``).
        layout: ``"lfw"``, ``"orl"``, ``"generic"`` or None to detect it.
        min_images: Keep only identities with at least this many images.

    Returns:
        The dataset, identities and files in natural order.

    Raises:
        DatasetError: missing folder, unknown layout or no images found.
    """
    root = Path(root)
    found = detect_layout(root)
    layout = layout or found
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown layout {layout!r}, expected one of {list(LAYOUTS)}")
    files: dict[str, list[Path]] = {}
    for folder in root.iterdir():
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        images = [f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
        if len(images) >= max(1, min_images):
            files[folder.name] = sorted(images, key=lambda f: natural_key(f.name))
    if not files:
        raise DatasetError(f"no images found under {root} (suffixes: {sorted(IMAGE_SUFFIXES)})")
    names = sorted(files, key=natural_key)
    dataset = _build(root, layout, files, names)
    logger.info("loaded %s dataset %s: %d identities, %d images", layout, root, len(names), len(dataset))
    return dataset


def _build(root: Path, layout: str, files: dict[str, list[Path]], names: list[str]) -> FaceDataset:
    samples: list[Sample] = []
    by_identity: dict[str, tuple[Sample, ...]] = {}
    for label, name in enumerate(names):
        group = tuple(Sample(path=p, identity=name, label=label) for p in files[name])
        by_identity[name] = group
        samples.extend(group)
    return FaceDataset(root=root, layout=layout, identities=tuple(names), samples=tuple(samples), _by_identity=by_identity)
