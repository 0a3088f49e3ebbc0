"""Print facepp's runtime requirements from pyproject.toml for one image layer.

    python3 docker/requirements.py {untrusted,trusted} [pyproject.toml]

* ``untrusted``: what the parameter server and the matcher need: every dependency
  except torch and the face stack, which they never import (tests/test_import_rules.py).
* ``trusted``: the face stack except torch and torchvision, which the image installs
  first from their own index (docker/Dockerfile).
"""

from __future__ import annotations

import re
import sys
import tomllib

TORCH = frozenset({"torch", "torchvision"})
#: Imported only by key holders: the face pipeline, local training, differential privacy.
FACE_STACK = TORCH | {"opencv-python-headless", "dlib-bin", "face-recognition-models", "opacus", "scipy"}


def name_of(requirement: str) -> str:
    """The normalised project name of a requirement string."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def requirements(layer: str, dependencies: list[str]) -> list[str]:
    """The dependencies of one layer (``untrusted`` or ``trusted``)."""
    wanted = FACE_STACK - TORCH if layer == "trusted" else None
    return [r for r in dependencies if (name_of(r) in wanted if wanted else name_of(r) not in FACE_STACK)]


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2) or argv[0] not in ("untrusted", "trusted"):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    with open(argv[1] if len(argv) == 2 else "pyproject.toml", "rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    print("\n".join(requirements(argv[0], dependencies)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
