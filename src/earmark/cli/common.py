"""What the command groups of the ``earmark`` command share: registering a command,
argparse types for numbers, overriding a config with the flags given, opening a project
for writing, and printing the user's file names safely."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

C = TypeVar("C")


def with_overrides(base: C, **values: Any) -> C:
    """The config ``base`` with each option given on the command line (None: left out)."""
    return replace(base, **{k: v for k, v in values.items() if v is not None})


def add_command(sub: argparse._SubParsersAction, name: str, func: Callable[[argparse.Namespace], int],
                *, help: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
    """Register the subcommand ``name``, run by ``func``.

    The examples of an ``epilog`` keep their line breaks; a command without examples
    lets argparse wrap its description to the terminal.
    """
    formatter = argparse.RawDescriptionHelpFormatter if epilog else argparse.HelpFormatter
    s = sub.add_parser(name, help=help, description=description, epilog=epilog, formatter_class=formatter)
    s.set_defaults(func=func)
    return s


PROJECT_HELP = "project folder (made by `earmark init`)"


def number(cast: Callable[[str], Any], minimum: float, *, strict: bool = False,
           maximum: float = 2**31 - 1) -> Callable[[str], Any]:
    """An argparse ``type`` for a finite number from ``minimum`` (excluded if ``strict``) to ``maximum``.

    The upper bound keeps a mistyped count from reaching SQLite or torch as an integer
    they cannot hold, which would end in a traceback instead of a message.
    """
    bound = f"above {minimum:g}" if strict else f"at least {minimum:g}"

    def parse(text: str) -> Any:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'a whole number' if cast is int else 'a number'}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number (got {text})")
        if value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"must be {bound} (got {text})")
        if value > maximum:
            top = int(maximum) if float(maximum).is_integer() else maximum
            raise argparse.ArgumentTypeError(f"must be at most {top} (got {text})")
        return value

    return parse


positive_int = number(int, 1)
port = number(int, 1, maximum=65535)
count = number(int, 0)
positive_float = number(float, 0, strict=True)


def shown(text: str, *, keep_lines: bool = False) -> str:
    """``text`` with its control characters written as escapes (``\\x1b``, ``\\n``).

    File names come from the user's disk: one holding a terminal escape sequence or a
    newline must not recolour the terminal or split a line of the report.
    ``keep_lines`` leaves newlines and tabs (for messages that are meant to span lines).
    """
    return "".join(ch if ch.isprintable() or (keep_lines and ch in "\n\t") else ascii(ch)[1:-1]
                   for ch in text)


class Parser(argparse.ArgumentParser):
    """argparse with a mistyped flag told in one line, not after the whole usage block."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the options)\n")


def thread_count(text: str) -> int:
    """An argparse ``type`` for ``--threads``: a count, used up to one thread per core.

    More is not refused (a setting shared between machines may name more cores than this
    one has) but capped, with a note, since torch slows to a crawl with far more threads
    than cores and a run would look hung.
    """
    from earmark.models.device import cpu_cores  # lazily: `earmark --help` loads no library module

    value = count(text)
    if value > cpu_cores():
        print(f"note: --threads {value} is more than this machine's {cpu_cores()} CPU cores; "
              f"using {cpu_cores()}", file=sys.stderr)
    return value



def worker_count(text: str) -> int:
    """An argparse ``type`` for ``simulate --workers``: processes, up to one per core.

    More is capped, with a note, as ``--threads`` is: each worker is a whole process with
    its own model, so a thousand would exhaust memory and the process table.
    """
    from earmark.models.device import cpu_cores  # lazily, as in thread_count

    value = number(int, 1)(text)
    if value > cpu_cores():
        print(f"note: --workers {value} is more than this machine's {cpu_cores()} CPU cores; "
              f"using {cpu_cores()}", file=sys.stderr)
        return cpu_cores()
    return value


def strategy_list(text: str) -> tuple[str, ...]:
    """An argparse ``type`` for ``--strategies``: comma-separated names, none of them empty.

    An empty name (``""``, ``random,,entropy``) is most often a shell variable left
    unset; taking it as "every strategy" or dropping it would run a study other than the
    one asked for.
    """
    from earmark.ranking.strategies import STRATEGIES  # lazily, as in thread_count

    names = tuple(part.strip() for part in text.split(","))
    if not text.strip() or any(not n for n in names):
        raise argparse.ArgumentTypeError(
            f"{text!r} holds an empty strategy name; give names separated by single commas, "
            f"e.g. random,errors-per-second (known: {', '.join(sorted(STRATEGIES))})")
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown strategy {', '.join(map(repr, unknown))}; "
                                         f"known: {', '.join(sorted(STRATEGIES))}")
    return names

def open_for_writing(root: str, command: str):
    """Open the project and snapshot its database before ``command`` writes to it.

    The snapshot also checks the file, so a damaged database stops the command before it
    adds work to it (see :mod:`earmark.store.backup`).
    """
    from earmark.store.backup import take
    from earmark.store.project import open_project

    project = open_project(root)
    take(project, command)
    return project



def open_checked(root: str):
    """Open the project for a command that only reads, after SQLite's quick check.

    A read that misses the damaged pages would print counts or rows without a word that
    the file is damaged; the check finds it, and the message says how to restore.
    """
    from earmark.store.project import open_project

    project = open_project(root)
    project.store.check()
    return project

def plural(n: int, noun: str) -> str:
    """``1 clip``, ``2 clips``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def warn_unreadable(unreadable: tuple[tuple[int, str], ...]) -> int:
    """Name the stored clips a rank could not read; the exit code: 2 if any, else 0."""
    if not unreadable:
        return 0
    print(f"warning: {plural(len(unreadable), 'stored clip')} could not be read, so they are "
          "not transcribed and not in the queue:", file=sys.stderr)
    for clip_id, why in unreadable[:10]:
        print(f"  clip {clip_id}: {shown(why)}", file=sys.stderr)
    if len(unreadable) > 10:
        print(f"  ... and {len(unreadable) - 10} more", file=sys.stderr)
    return 2
