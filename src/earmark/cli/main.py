"""The ``earmark`` command: argparse only. It parses into config dataclasses and calls
the library; every earmark error is printed as one clear line (exit code 2)."""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from earmark import __version__
from earmark.cli import backup, deploy, project, rank, review, study, train
from earmark.cli.common import Parser, shown
from earmark.errors import EarmarkError, EarmarkWarning

EPILOG = """typical loop:
  earmark init myproj
  earmark import myproj recordings/          # or a JSONL/CSV manifest
  earmark rank myproj                        # transcribe + score + order the queue
  earmark queue myproj --top 20
  earmark review myproj                      # correct clips in the browser
  earmark round myproj                       # fine-tune on corrections, re-rank
"""


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="earmark", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Active learning for speech transcription: Whisper scores every token it "
                    "writes, the least sure clips go first to human review, and the corrections "
                    "fine-tune the model.", epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"earmark {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    for group in (project, rank, backup, train, deploy, review, study):  # in the order of the loop
        group.add_commands(sub)
    return p


def _show_config_warnings() -> None:
    """Print earmark's own warnings as one plain line each (not Python's file:line form)."""
    shown_before = warnings.showwarning
    if getattr(shown_before, "earmark", False):  # main() called again in one process
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, EarmarkWarning):
            print(f"earmark: warning: {shown(str(message))}", file=sys.stderr)
        else:
            shown_before(message, category, filename, lineno, file, line)

    show.earmark = True  # type: ignore[attr-defined]
    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    _show_config_warnings()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return args.func(args)
    except EarmarkError as exc:
        print(f"earmark: error: {shown(str(exc), keep_lines=True)}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"earmark: error: {shown(str(exc), keep_lines=True)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `earmark queue P | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # the machine refused (a full disk, a permission): not earmark's fault
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"earmark: error: {shown(where + (exc.strerror or str(exc)))}; free disk space or fix "
              "the permissions, then run the command again", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nearmark: interrupted; finished work is saved, run the same command to continue",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
