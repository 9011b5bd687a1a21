"""The ``earmark`` command: argparse only. It parses into config dataclasses and calls
the library; every earmark error is printed as one clear line (exit code 2)."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from earmark.errors import EarmarkError

C = TypeVar("C")

EPILOG = """typical loop:
  earmark init myproj
  earmark import myproj recordings/          # or a JSONL/CSV manifest
  earmark rank myproj                        # transcribe + score + order the queue
  earmark queue myproj --top 20
  earmark review myproj                      # correct clips in the browser
  earmark round myproj                       # fine-tune on corrections, re-rank
"""


# --- shared by the commands -------------------------------------------------------------

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


class _Parser(argparse.ArgumentParser):
    """argparse with a mistyped flag told in one line, not after the whole usage block."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the options)\n")


def thread_count(text: str) -> int:
    """An argparse ``type`` for ``--threads``: a count, used up to one thread per core.

    More is not refused (a setting shared between machines may name more cores than this
    one has) but capped, with a note, since torch slows to a crawl with far more threads
    than cores and a run would look hung.
    """
    from earmark.models.loading import cpu_cores

    value = count(text)
    if value > cpu_cores():
        print(f"note: --threads {value} is more than this machine's {cpu_cores()} CPU cores; "
              f"using {cpu_cores()}", file=sys.stderr)
    return value


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


def plural(n: int, noun: str) -> str:
    """``1 clip``, ``2 clips``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


# --- commands -----------------------------------------------------------------------

def cmd_init(args: argparse.Namespace) -> int:
    from earmark.config import DecodeConfig, ProjectConfig
    from earmark.models.loading import normalize_spec
    from earmark.store.project import init_project

    cfg = ProjectConfig(database_url=args.db_url or "", decode=DecodeConfig(model=normalize_spec(args.model)))
    project = init_project(args.project, cfg)
    print(f"created project {project.root} (model {args.model}, "
          f"database {'SQLite' if not args.db_url else args.db_url.split(':')[0]})")
    print(f"next: earmark import {args.project} AUDIO_FOLDER_OR_MANIFEST")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from earmark.ingest import import_audio

    project = open_for_writing(args.project, "import")
    report = import_audio(project, Path(args.source), progress=not args.quiet)
    print(f"imported {plural(report.files_added, 'file')} as {plural(report.clips_added, 'clip')} "
          f"({report.seconds_added / 60:.1f} min); {report.duplicates} already known; "
          f"{len(report.rejected)} rejected")
    for path, reason in report.rejected:
        print(f"  rejected {shown(path)}: {shown(reason.removeprefix(path + ': '))}")
    if report.texts_added or report.text_conflicts or report.changed:
        print(f"reference texts added to {plural(report.texts_added, 'known file')}; "
              f"{plural(report.text_conflicts, 'conflicting text')} not taken (the stored one is kept); "
              f"{plural(len(report.changed), 'changed file')} imported as new clips")
    if report.speakers_added or report.speaker_conflicts:
        print(f"speakers added to {plural(report.speakers_added, 'known file')}; "
              f"{plural(report.speaker_conflicts, 'conflicting speaker')} not taken (the stored one is kept)")
    if report.restored:
        print(f"restored {plural(report.restored, 'stored clip')} of known files that were missing or damaged in "
              "the project's audio folder")
    for warning in report.warnings:
        print(f"  warning: {shown(warning)}")
    if report.clips_added:
        print(f"next: earmark rank {args.project}")
    return 0


def cmd_rank(args: argparse.Namespace) -> int:
    from earmark.ranking.rank import rank

    project = open_for_writing(args.project, "rank")
    decode = with_overrides(project.config.decode, batch_size=args.batch_size, device=args.device,
                            threads=args.threads, pack=False if args.no_pack else None)
    selection = with_overrides(project.config.selection, strategy=args.strategy)
    report = rank(project, model=args.model, decode=decode, selection=selection,
                  progress=not args.quiet)
    if report.transcribed:
        print(f"transcribed {plural(report.transcribed, 'clip')} ({report.audio_seconds / 60:.1f} min of audio) "
              f"in {report.wall_seconds:.1f} s: {report.audio_seconds_per_second:.1f} audio s/s")
    elif not report.queued and not _clip_count(project):
        print(f"the project has no clips yet: import audio first, e.g. `earmark import "
              f"{args.project} recordings/`, then rank again")
        return 0
    else:
        print(f"nothing new to transcribe for {report.model_version}")
    print(f"queue: {plural(report.queued, 'clip')} ordered by {report.strategy}")
    if report.queued:
        print(f"next: earmark queue {args.project} --top 10")
    return warn_unreadable(report.unreadable)


def _clip_count(project) -> int:
    from earmark.review.reports import status

    return status(project).clips


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


def cmd_queue(args: argparse.Namespace) -> int:
    from earmark.store.project import open_project
    from earmark.review.reports import mark_words, queue

    project = open_project(args.project)
    rows = queue(project, args.top)
    if not rows:
        print(f"the project has no clips yet; `earmark import {args.project} recordings/` adds them"
              if not _clip_count(project) else
              f"the queue is empty; run `earmark rank {args.project}` first "
              "(or every clip is already corrected)")
        return 0
    ansi = sys.stdout.isatty() and not args.plain
    thr = project.config.selection.low_confidence
    print(f"{'rank':>4}  {'clip':>5}  {'dur':>5}  {'score':>6}  hypothesis "
          f"(words below p={thr:g} {'underlined' if ansi else 'in [brackets]'})")
    for r in rows:
        flags = f"  <{','.join(r.flags)}>" if r.flags else ""
        print(f"{r.rank:>4}  {r.clip_id:>5}  {r.duration:>4.1f}s  {r.score:>6.3f}  "
              f"{mark_words(r.words, thr, ansi) or '(empty)'}{flags}   [{shown(r.name)}]")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from earmark.store.backup import backup_dir, snapshots
    from earmark.store.project import open_project
    from earmark.review.reports import status

    st = status(open_project(args.project))
    print(f"project      {args.project}")
    print(f"active model {st.active_model or '-'}")
    print(f"clips        {st.clips} ({st.clip_minutes:.1f} min) from {plural(st.files, 'file')}")
    print(f"rejected     {plural(len(st.rejected), 'file')}")
    for path, reason in st.rejected[: args.show_rejected]:
        print(f"  {shown(path)}: {shown(reason.removeprefix(path + ': '))}")
    if len(st.rejected) > args.show_rejected:
        print(f"  ... {len(st.rejected) - args.show_rejected} more (--show-rejected N)")
    print(f"transcribed  {st.transcribed} of {st.clips} by the active model")
    print(f"queued       {st.queued} waiting for review")
    print(f"corrected    {plural(st.corrected, 'clip')} ({st.labeled_minutes:.1f} min labeled), {st.flagged} flagged")
    snaps = snapshots(args.project)
    print(f"snapshots    {len(snaps)} in {backup_dir(args.project)}" + (
        f", newest before {snaps[0].reason} at {snaps[0].taken_at:%Y-%m-%d %H:%M} UTC" if snaps else ""))
    if st.unfinished:
        print(f"unfinished   fine-tuning run{'s' if len(st.unfinished) > 1 else ''} "
              f"{', '.join(st.unfinished)}: `earmark finetune {args.project} --resume` continues the "
              "newest")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from earmark.store.backup import backup_dir, describe, snapshots, take
    from earmark.store.project import database_file, open_project

    project = open_project(args.project)
    if database_file(project.root, project.config) is None:
        print(f"{args.project}: the database is on a server; back it up with the server's own "
              "tools (pg_dump)")
        return 0
    taken = take(project, "backup")
    print(f"took snapshot {taken.name}" if taken else
          "the database is unchanged since the newest snapshot; none taken" if project.config.backup.keep
          else "backup.keep is 0 in earmark.json: no snapshot taken")
    found = snapshots(project.root)
    keep = project.config.backup.keep
    print(f"{plural(len(found), 'snapshot')} in {backup_dir(project.root)}, newest first "
          + (f"(the newest {keep} are kept):" if keep else "(taken before; none are removed while "
             "snapshots are off):"))
    for snap in found:
        print(f"  {describe(snap)}")
    if found:
        print(f"put one back with: earmark restore {args.project} [--snapshot NAME]")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from earmark.store.backup import UNRESTORED_FILE, describe, restore

    r = restore(args.project, args.snapshot, force=args.force)
    print(f"restored {describe(r.snapshot, r.held)}")
    if r.kept.is_dir():
        print(f"the replaced database is kept in {r.kept}")
    else:
        print("there was no database file to keep (it was gone)")
    print(f"corrections saved after the snapshot and copied back: {r.salvaged}")
    if r.unrestored:
        print(f"{plural(r.unrestored, 'correction')} of clips imported after the snapshot are in "
              f"{r.kept / UNRESTORED_FILE}: import their files again (`earmark import`), then "
              "enter them in the review app")
    if r.salvage_problem:
        print(f"  warning: the replaced file could not be read to the end ({r.salvage_problem}); "
              "corrections on its damaged pages are lost")
    print(f"next: earmark status {args.project}   (then `earmark rank {args.project}` transcribes "
          "the clips the snapshot holds no transcript of)")
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    import os
    import subprocess

    from earmark.review.workflow import PROJECT_ENV

    project = open_for_writing(args.project, "review")  # a wrong path fails here, not in the browser
    app = Path(__file__).resolve().parents[1] / "app" / "Review.py"
    if not app.is_file():
        raise EarmarkError(f"{app}: the review app is not here; it ships in earmark's source "
                           "tree, so install earmark from a checkout (pip install -e .)")
    from earmark.review.server import machine_hosts, run_until_stopped

    # the app answers only requests addressed to this machine (see earmark.review.server)
    allow = [a for h in machine_hosts(args.host, getattr(args, "allow_host", None) or ())
             for a in ("--allow", h)]
    cmd = [sys.executable, "-m", "earmark.review.server", *allow, "--", str(app),
           "--server.address", args.host, "--server.port", str(args.port),
           "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--client.toolbarMode", "viewer"]
    _check_port_free(args.host, args.port)  # else the URL printed would show whatever holds it
    env = {**os.environ, PROJECT_ENV: str(project.root.resolve())}
    print(f"review app for {args.project}: http://{args.host}:{args.port}  (Ctrl+C stops it)",
          flush=True)
    return run_until_stopped(subprocess.Popen(cmd, env=env))


def _check_port_free(host: str, port: int) -> None:
    import errno
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the app's server binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
                raise EarmarkError(f"cannot listen on {host}:{port} ({exc.strerror}): {host} is not "
                                   "an address of this machine; pass --host 127.0.0.1 (this machine "
                                   "only) or --host 0.0.0.0 (every network it is on)") from None
            if exc.errno == errno.EACCES:
                raise EarmarkError(f"cannot listen on {host}:{port} ({exc.strerror}): ports below "
                                   "1024 need administrator rights; pass --port N with N of 1024 "
                                   "or more") from None
            raise EarmarkError(f"cannot listen on {host}:{port} ({exc.strerror}): another program, "
                               "perhaps another `earmark review`, is using it; pass --port N with "
                               "a free port") from None


def cmd_demo(args: argparse.Namespace) -> int:
    import shutil

    from earmark.store.project import CONFIG_FILE

    samples = Path(args.samples) if args.samples else \
        Path(__file__).resolve().parents[3] / "data_samples" / "manifest.jsonl"
    if not samples.is_file():
        raise EarmarkError(f"{samples}: no sample manifest here; pass --samples MANIFEST "
                           "(the samples ship in earmark's source tree under data_samples/)")
    root = Path(args.project)
    if (root / CONFIG_FILE).exists():
        if not args.fresh:
            raise EarmarkError(f"{root}: already a project; pass --fresh to rebuild the demo there")
        shutil.rmtree(root)
    # each step with the command line that does the same by hand, printed before it runs
    steps = [
        ("", cmd_init, argparse.Namespace(project=str(root), model="tiny.en", db_url=None)),
        (f" {samples}", cmd_import, argparse.Namespace(project=str(root), source=str(samples), quiet=False)),
        ("", cmd_rank, argparse.Namespace(project=str(root), model=None, batch_size=None, strategy=None,
                                          device=None, threads=None, no_pack=False, quiet=False)),
        (f" --top {args.top}", cmd_queue, argparse.Namespace(project=str(root), top=args.top, plain=False)),
        ("", cmd_status, argparse.Namespace(project=str(root), show_rejected=10)),
    ]
    for extra, func, ns in steps:
        print(f"\n$ earmark {func.__name__.removeprefix('cmd_')} {root}{extra}", flush=True)
        if code := func(ns):
            return code
    if args.no_app:
        print(f"\nnext: earmark review {root}")
        return 0
    print(f"\n$ earmark review {root}", flush=True)
    return cmd_review(argparse.Namespace(project=str(root), host="127.0.0.1", port=args.port))


def cmd_simulate(args: argparse.Namespace) -> int:
    from earmark.config import SimulateConfig
    from earmark.simulate import simulate

    strategies = (tuple(s.strip() for s in args.strategies.split(",") if s.strip())
                  if args.strategies else None)
    cfg = with_overrides(SimulateConfig(), rounds=args.rounds, budget_minutes=args.budget,
                         seeds=args.seeds, speakers=args.speakers, test_speakers=args.test_speakers,
                         dev_speakers=args.dev_speakers, model=args.model, lr=args.lr,
                         epochs=args.epochs, workers=args.workers, threads=args.threads,
                         strategies=strategies)
    record = simulate(Path(args.manifest), cfg, Path(args.out))
    print(record["table"])
    print(record["verdict"])
    print(f"default {record['default_strategy']} word-error AUC {record['default_error_auc']:.3f}")
    print(f"wrote {args.out}/rounds.csv, rounds.json, summary.json, learning_curve.png")
    return 0


# --- parser -------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from earmark.ranking.strategies import DEFAULT_STRATEGY, STRATEGIES

    p = _Parser(
        prog="earmark", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Active learning for speech transcription: Whisper scores every token it "
                    "writes, the least sure clips go first to human review, and the corrections "
                    "fine-tune the model.", epilog=EPILOG)
    from earmark import __version__

    p.add_argument("--version", action="version", version=f"earmark {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = add_command(sub, "init", cmd_init, help="create a project folder",
                    description="Create a project: a folder with its config (earmark.json), its "
                                "database and, later, its clips and model versions.",
                    epilog="examples:\n  earmark init myproj\n  earmark init myproj --model base.en\n"
                           "  earmark init myproj --db-url postgresql+psycopg://me@dbhost/earmark")
    s.add_argument("project", help="folder to create")
    s.add_argument("--model", default="tiny.en",
                   help="Whisper model: tiny.en (default), base, another Whisper name, or a checkpoint path")
    s.add_argument("--db-url", help="SQLAlchemy URL (e.g. postgresql+psycopg://...); default SQLite in the folder")

    s = add_command(sub, "import", cmd_import, help="add audio: a folder or a JSONL/CSV manifest",
                    description="Import audio. A folder is searched recursively for wav, flac, ogg "
                                "and mp3; a manifest (JSONL or CSV) has an 'audio' column and optional "
                                "'text' (reference) and 'speaker'. Files over 30 s are split at "
                                "silences. Unreadable, empty or silent files are recorded as rejected. "
                                "Importing again adds only new files (the same bytes under another "
                                "name count as known), tries the rejected ones again (after a limit "
                                "in earmark.json was raised, say) and writes back stored clips "
                                "that went missing or were damaged.",
                    epilog="examples:\n  earmark import myproj recordings/\n"
                           "  earmark import myproj clips.jsonl     # {\"audio\": \"a.wav\", \"text\": ..., \"speaker\": ...}\n"
                           "  earmark import myproj clips.csv       # header: audio,text,speaker")
    s.add_argument("project", help=PROJECT_HELP)
    s.add_argument("source", help="folder, manifest (.jsonl/.csv), or one audio file")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    s = add_command(sub, "rank", cmd_rank, help="transcribe new clips, score them, order the queue",
                    description="Transcribe every clip the active model has not transcribed "
                                "(resumable: a killed run continues where it stopped), store token "
                                "probabilities, entropies and word times, and order the review queue.",
                    epilog="examples:\n  earmark rank myproj\n  earmark rank myproj --strategy entropy\n"
                           "  earmark rank myproj --model ft-002     # a version, a Whisper name or a checkpoint")
    s.add_argument("project", help=PROJECT_HELP)
    s.add_argument("--model", help="a version's name, a Whisper name or a checkpoint path; it becomes "
                                   "active once it has loaded")
    s.add_argument("--batch-size", type=positive_int, help="30-second windows decoded together (default 16)")
    s.add_argument("--strategy", choices=sorted(STRATEGIES),
                   help=f"queue order (default {DEFAULT_STRATEGY})")
    s.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    s.add_argument("--threads", type=thread_count, help="torch CPU threads (default 0: torch's choice)")
    s.add_argument("--no-pack", action="store_true",
                   help="one clip per 30 s window (slower; packing is on by default)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    s = add_command(sub, "queue", cmd_queue, help="show the head of the review queue",
                    description="Show the clips to review first (those nobody has corrected or "
                                "flagged yet), with low-confidence words marked. The score is the "
                                "one the ranking strategy orders by (higher: reviewed sooner); "
                                "orders without one (random, longest-first) show the "
                                "errors-per-second score, to say how doubtful each clip is.",
                    epilog="examples:\n  earmark queue myproj\n  earmark queue myproj --top 50 --plain > queue.txt")
    s.add_argument("project", help=PROJECT_HELP)
    s.add_argument("--top", type=positive_int, default=20, help="how many clips (default 20)")
    s.add_argument("--plain", action="store_true", help="mark words with [brackets], no colour")

    s = add_command(sub, "status", cmd_status, help="counts: clips, rejected, transcribed, corrected",
                    description="Where the project stands: clips and minutes imported, files "
                                "rejected and why, the active model, how many clips it has "
                                "transcribed, how many wait for review, how many are corrected, and "
                                "the snapshots of its database.",
                    epilog="examples:\n  earmark status myproj\n  earmark status myproj --show-rejected 100")
    s.add_argument("project", help=PROJECT_HELP)
    s.add_argument("--show-rejected", type=count, default=10, metavar="N",
                   help="list up to N rejected files with reasons (default 10)")

    s = add_command(sub, "backup", cmd_backup, help="snapshot the project database now; list the snapshots",
                    description="Copy the project's SQLite database into PROJECT/backups and list "
                                "the snapshots there. earmark takes one by itself before import, "
                                "rank, finetune, round and review, and every few minutes while "
                                "annotators save (backup.keep and backup.review_minutes in "
                                "earmark.json); each is checked before it is kept.",
                    epilog="example:\n  earmark backup myproj")
    s.add_argument("project", help=PROJECT_HELP)

    s = add_command(sub, "restore", cmd_restore, help="put a snapshot back in place of a damaged database",
                    description="Replace the project's database by a snapshot (the newest sound "
                                "one unless --snapshot names another). The replaced file is kept "
                                "in PROJECT/backups, and every correction saved after the snapshot "
                                "that can still be read from it is copied back. Stop the review "
                                "app first: a restore is refused while another process has the "
                                "database open.",
                    epilog="examples:\n  earmark restore myproj\n"
                           "  earmark restore myproj --snapshot earmark-20261206-223000.000_rank.db --force")
    s.add_argument("project", help=PROJECT_HELP)
    s.add_argument("--snapshot", help="file name of the snapshot (`earmark backup` lists them)")
    s.add_argument("--force", action="store_true",
                   help="restore even though the current database reads fine")

    from earmark.cli.train import add_commands  # finetune, round, evaluate, export

    add_commands(sub)

    s = add_command(sub, "review", cmd_review, help="open the review app in the browser",
                    description="Start the review app (Streamlit): annotators correct the clips "
                                "the model is least sure of, with a dashboard and a clip browser. "
                                "It listens on loopback unless --host says otherwise.",
                    epilog="example:\n  earmark review myproj                  # http://127.0.0.1:8501\n"
                           "  earmark review myproj --host 0.0.0.0 --port 8600   # reachable "
                           "from the network")
    s.add_argument("project", help=PROJECT_HELP)
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=port, default=8501, help="port (default 8501)")
    s.add_argument("--allow-host", action="append", metavar="NAME",
                   help="also answer requests addressed to NAME (a reverse proxy's name); by "
                        "default only this machine's names and addresses are answered, which "
                        "keeps other web sites out (DNS rebinding); repeat for more names")

    s = add_command(sub, "simulate", cmd_simulate,
                    help="replay the loop with reference texts to compare strategies",
                    description="Replay active learning with the manifest's reference texts as the "
                                "annotator: split speakers into pool/dev/test, then each round rank "
                                "the pool, label clips up to the budget of audio minutes, fine-tune "
                                "the base model's decoder on everything labeled, and score the test "
                                "set. Writes rounds.csv/json, learning_curve.png and summary.json.",
                    epilog="example:\n  earmark simulate --manifest ../shared/data/speechocean762/manifest.jsonl "
                           "\\\n      --strategies random,errors-per-second --rounds 4 --budget 2 --seeds 3 "
                           "--out sim/")
    s.add_argument("--manifest", required=True, help="JSONL with audio, text, speaker (and duration)")
    s.add_argument("--strategies", help="comma-separated names (default: every registered strategy)")
    s.add_argument("--rounds", type=count, help="rounds after the zero-shot round 0 (default 4)")
    s.add_argument("--budget", type=positive_float, help="audio minutes labeled per round (default 2)")
    s.add_argument("--seeds", type=positive_int, help="repeats with different speaker splits (default 3)")
    s.add_argument("--speakers", type=positive_int, help="speakers drawn for the study (default: all)")
    s.add_argument("--test-speakers", type=positive_int, help="held-out test speakers (default 20)")
    s.add_argument("--dev-speakers", type=positive_int, help="held-out dev speakers (default 10)")
    s.add_argument("--model", help="Whisper model (default tiny.en)")
    s.add_argument("--lr", type=positive_float, help="decoder fine-tuning learning rate")
    s.add_argument("--epochs", type=positive_int, help="passes over the labeled clips per round")
    s.add_argument("--workers", type=positive_int, help="seeds simulated in parallel processes (default 1)")
    s.add_argument("--threads", type=thread_count, help="torch threads per process")
    s.add_argument("--out", default="simulate", help="output folder (default ./simulate)")

    s = add_command(sub, "demo", cmd_demo, help="the whole loop on the shipped samples",
                    description="Create a project from the shipped data_samples/ (synthetic "
                                "speech full of drug names, legal and engineering terms), rank "
                                "it, show the queue and status, and open the review app.",
                    epilog="examples:\n  earmark demo                     # ./demo_project, then the app\n"
                           "  earmark demo /tmp/d --fresh --no-app")
    s.add_argument("project", nargs="?", default="demo_project", help="folder (default demo_project)")
    s.add_argument("--samples", help="manifest to import (default: the shipped data_samples)")
    s.add_argument("--fresh", action="store_true", help="delete an existing project in the folder first")
    s.add_argument("--top", type=positive_int, default=15, help="queue rows to show (default 15)")
    s.add_argument("--no-app", action="store_true", help="stop before opening the review app")
    s.add_argument("--port", type=port, default=8501, help="review app port (default 8501)")
    return p


def _show_config_warnings() -> None:
    """Print earmark's own warnings as one plain line each (not Python's file:line form)."""
    import warnings

    from earmark.errors import EarmarkWarning

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
    except KeyboardInterrupt:
        print("\nearmark: interrupted; finished work is saved, run the same command to continue",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
