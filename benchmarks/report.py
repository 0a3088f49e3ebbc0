"""Shared output for benchmarks: a plain-text table on stdout and a JSON file."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def print_table(title: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Print rows (dicts sharing keys) as an aligned table."""
    if not rows:
        return
    columns = list(rows[0])
    cells = [[_fmt(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths)))


def write_json(path: str | Path | None, result: Mapping[str, Any]) -> None:
    """Write the result with machine facts, if a path was given."""
    if path is None:
        return
    doc = {**result, "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                                 "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=2) + "\n")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)
