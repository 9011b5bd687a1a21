"""Command-line options drawn from the config dataclasses.

A config field that a command sets carries its flag, help and bounds in its metadata
(:func:`earmark.config.setting`); :func:`add_config_flags` turns those fields into
options and :func:`overrides` turns the options given back into the config. No field is
mapped to a flag by hand, so a new setting needs one line in ``config.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, TypeVar

from earmark.cli.common import number, strategy_list, thread_count, worker_count
from earmark.config import flagged_fields

C = TypeVar("C")

#: how a ``listed`` field's names are read and checked, by the registry they come from
_NAME_LISTS = {"strategies": strategy_list}


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]


def _shown(value: Any) -> str:
    """A default as help shows it: ``5e-5``, ``0.7``, ``1``, ``auto``."""
    if isinstance(value, float):
        return re.sub(r"e([+-])0(\d)", r"e\1\2", f"{value:g}")
    return str(value)


def _chosen(cls: type, only: Collection[str] | None) -> list[dataclasses.Field]:
    return [f for f in flagged_fields(cls) if only is None or f.name in only]


def add_config_flags(parser: argparse.ArgumentParser, cls: type, *, only: Collection[str] | None = None,
                     choices: Mapping[str, Sequence[str]] | None = None) -> None:
    """Add an option for each flagged field of the config class ``cls`` (those in ``only``).

    An option left out parses as None (a ``--no-…`` switch as False), so :func:`overrides`
    keeps the value the project's config already holds. ``choices`` gives the allowed
    values of a field whose list lives outside the config (the strategy registry).
    """
    for f in _chosen(cls, only):
        meta, default = f.metadata, _default(f)
        kwargs: dict[str, Any] = {"dest": f.name,
                                  "help": meta["help"].format(default=_shown(default)).replace("%", "%%")}
        if isinstance(default, bool):
            kwargs["action"] = "store_true"
        else:
            if meta.get("threads"):
                kwargs["type"] = thread_count
            elif meta.get("per_core"):
                kwargs["type"] = worker_count
            elif meta.get("listed") in _NAME_LISTS:
                kwargs["type"] = _NAME_LISTS[meta["listed"]]
            elif "min" in meta:
                kwargs["type"] = number(int if isinstance(default, int) else float, meta["min"],
                                        strict=meta.get("strict", False), maximum=meta.get("max", 2**31 - 1))
            allowed = (choices or {}).get(f.name, meta.get("choices"))
            if allowed:
                kwargs["choices"] = allowed
            elif meta.get("metavar") or f.name != meta["flag"].lstrip("-").replace("-", "_"):
                # argparse would name the value after the field; name it after the flag
                kwargs["metavar"] = meta.get("metavar") or meta["flag"].lstrip("-").replace("-", "_").upper()
        parser.add_argument(meta["flag"], **kwargs)


def given(args: argparse.Namespace, cls: type, *, only: Collection[str] | None = None) -> dict[str, Any]:
    """The values of ``cls``'s fields that the command line gave, by field name."""
    out: dict[str, Any] = {}
    for f in _chosen(cls, only):
        value = getattr(args, f.name, None)
        if value is None or value is False:
            continue
        if isinstance(_default(f), bool):  # a switch: --no-x turns x off, --x turns it on
            value = not f.metadata["flag"].startswith("--no-")
        elif f.metadata.get("listed") and isinstance(value, str):  # a list no registry checks
            if not value:
                continue
            value = tuple(s.strip() for s in value.split(",") if s.strip())
        out[f.name] = value
    return out


def overrides(args: argparse.Namespace, base: C, *, only: Collection[str] | None = None) -> C:
    """The config ``base`` with each of its options given on the command line."""
    return dataclasses.replace(base, **given(args, type(base), only=only))  # type: ignore[type-var]


def flag_names(args: argparse.Namespace, cls: type, *, skip: Collection[str] = ()) -> list[str]:
    """The flags of ``cls``'s fields that the command line gave (fields in ``skip`` aside)."""
    fields = {f.name: f for f in flagged_fields(cls)}
    return [fields[name].metadata["flag"] for name in given(args, cls) if name not in skip]
