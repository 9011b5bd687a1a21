"""Config dataclasses to and from JSON: nested configs, a value of the wrong type refused
with its field's dotted name, and the keys no field has (a misspelling, or a setting of a
newer earmark). Generic over dataclasses; :mod:`earmark.config` re-exports it."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, TypeVar

T = TypeVar("T")


def unknown_keys(cls: type, data: dict[str, Any], where: str = "") -> list[str]:
    """Dotted names of the keys in ``data`` that no field of ``cls`` has (a misspelling,
    or a setting of a newer earmark), nested configs included."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = []
    for key, value in data.items():
        f = fields.get(key)
        if f is None:
            out.append(f"{where}{key}")
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            out += unknown_keys(type(default), value, f"{where}{key}.")
    return out


def to_dict(cfg: Any) -> dict[str, Any]:
    """Return a JSON-ready dict of a config dataclass (nested ones included)."""
    return dataclasses.asdict(cfg)


def to_json(cfg: Any) -> str:
    """Serialise a config dataclass to indented JSON."""
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build ``cls`` from a dict, recursing into nested dataclasses.

    Unknown keys are ignored (a newer earmark may have written them) and missing
    keys take their defaults, so old records stay loadable. A value of another type than
    its field's default (a string for a count, say) is refused here, naming the field,
    rather than failing later deep inside a command.

    Raises
    ------
    TypeError
        A value whose type does not fit its field; the message starts with the field's
        dotted name (``where`` is the prefix for nested configs).
    """
    kwargs: dict[str, Any] = {}
    hints = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for name, f in hints.items():
        if name not in data:
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]
        kwargs[name] = _typed(data[name], default, f"{where}{name}")
    return cls(**kwargs)


def _typed(value: Any, default: Any, where: str) -> Any:
    """``value`` as the type of ``default`` (an int is taken for a float), or TypeError."""
    def refuse(kind: str) -> TypeError:
        return TypeError(f"{where} is {json.dumps(value)[:60]}, not {kind}")

    if dataclasses.is_dataclass(default):
        if not isinstance(value, dict):
            raise refuse("an object of settings")
        return from_dict(type(default), value, f"{where}.")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise refuse("true or false")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise refuse("a whole number")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise refuse("a number")
        return float(value)
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise refuse("a string")
    elif isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise refuse("a list")
        if default:  # the elements take the type of the default's
            return tuple(_typed(v, default[0], f"{where}[{i}]") for i, v in enumerate(value))
        return tuple(value)
    return value
