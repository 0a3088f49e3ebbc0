"""Layered settings shared by the matcher and the terminal.

A settings class is a frozen dataclass mixing in :class:`LayeredSettings`;
values come from defaults < a TOML file (``$<PREFIX>CONFIG`` or ``file=``, at
top level or under ``[section]``) < ``<PREFIX><FIELD>`` environment variables <
explicit overrides (CLI flags). Holds no secret itself.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

from facepp.errors import ConfigError


class LayeredSettings:
    """Mixin for frozen dataclasses: ``with_overrides`` and ``load`` with type coercion."""

    SECTION: ClassVar[str]
    ENV_PREFIX: ClassVar[str]

    def with_overrides(self, values: Mapping[str, Any]) -> Self:
        """A copy with ``values`` (field name -> value; ``None`` values are ignored) applied and coerced.

        Raises:
            ConfigError: unknown setting or a value of the wrong type.
        """
        known = {f.name: f for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        changes: dict[str, Any] = {}
        for name, value in values.items():
            if name not in known:
                raise ConfigError(f"unknown {self.SECTION} setting {name!r}; valid: {', '.join(sorted(known))}")
            if value is not None:
                changes[name] = _coerce(f"{self.SECTION} setting {name}", value, str(known[name].type))
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    @classmethod
    def load(
        cls,
        *,
        file: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Self:
        """Defaults < TOML ``file`` (or ``$<PREFIX>CONFIG``) < ``<PREFIX>*`` env < ``overrides``.

        Raises:
            ConfigError: unreadable file, unknown key or a value of the wrong type.
        """
        env = os.environ if env is None else env
        config = cls()
        path = file or env.get(cls.ENV_PREFIX + "CONFIG")
        if path:
            try:
                data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot read {cls.SECTION} config {path}: {exc}") from exc
            section = data.get(cls.SECTION, data)
            if not isinstance(section, dict):
                raise ConfigError(f"{cls.SECTION} config {path}: [{cls.SECTION}] must be a table of settings")
            config = config.with_overrides(section)
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        config = config.with_overrides({n: env[cls.ENV_PREFIX + n.upper()] for n in names if cls.ENV_PREFIX + n.upper() in env})
        return config.with_overrides(overrides or {})


def _coerce(label: str, value: Any, type_: str) -> Any:
    """Coerce a file/env/CLI value to a field's declared type (annotations are strings here)."""
    try:
        if type_.startswith("bool"):
            if isinstance(value, bool):
                return value
            lowered = str(value).strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(f"expected a boolean, got {value!r}")
        if isinstance(value, bool) and not type_.startswith("str"):
            raise ValueError("a boolean is not a number")
        if type_.startswith("tuple"):  # a TOML list, or a comma-separated string (env, flags)
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)):
                raise ValueError(f"expected a list, got {value!r}")
            return tuple(str(item).strip() for item in items if str(item).strip())
        if type_.startswith("int"):
            return int(value)
        if type_.startswith("float"):
            return float(value)
        return str(value)
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: int(inf)
        raise ConfigError(f"{label}: {exc}") from exc
