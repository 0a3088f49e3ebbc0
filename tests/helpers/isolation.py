"""Import rules of the roles: what the untrusted services may never load, and an import scanner.

Used by ``tests/test_import_rules.py`` (static rules over the whole tree) and by
the isolation tests of the parameter server and the matcher, which serve
requests in a fresh interpreter and then inspect ``sys.modules``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Secret-key modules: every ``secret_*`` module of a crypto subpackage.
SECRET_KEY_MODULE = re.compile(r"^facepp\.crypto\.\w+\.secret_\w+$")

#: Face code: the model, the face pipeline and the libraries behind them.
FACE_CODE = ("facepp.model", "facepp.models", "facepp.vision", "facepp.evaluation", "torch", "torchvision", "cv2", "dlib")


def _is_within(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def secret_key_modules(modules: Iterable[str]) -> list[str]:
    """The secret-key modules among ``modules``."""
    return sorted(m for m in modules if SECRET_KEY_MODULE.match(m))


def face_modules(modules: Iterable[str]) -> list[str]:
    """The face-code modules among ``modules``."""
    return sorted(m for m in modules if _is_within(m, FACE_CODE))


def within(modules: Iterable[str], prefixes: Iterable[str]) -> list[str]:
    """The modules of ``modules`` that are one of ``prefixes`` or inside one of them."""
    prefixes = tuple(prefixes)
    return sorted(m for m in modules if _is_within(m, prefixes))


def python_files(folder: str) -> list[Path]:
    """Every ``.py`` file under ``ROOT / folder``."""
    return sorted((ROOT / folder).rglob("*.py"))


def module_name(path: Path) -> str:
    """The dotted module name of a file under ``ROOT``."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, at any depth (inside functions too), resolved to absolute names.

    ``from a.b import c`` yields both ``a.b`` and ``a.b.c`` (``c`` may be a module).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found
