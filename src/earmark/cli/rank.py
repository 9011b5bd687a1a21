"""The ``rank``, ``queue`` and ``status`` commands: transcribe and order the pool, show the
queue's head, and where the project stands."""

from __future__ import annotations

import argparse
import logging
import sys

from earmark.cli.common import (PROJECT_HELP, add_command, count, open_checked, open_for_writing, plural, positive_int,
                                print_standing, shown, warn_unreadable)
from earmark.cli.flags import add_config_flags, overrides
from earmark.cli.scale import add_ray_flags, ray_backend
from earmark.config import DecodeConfig, SelectionConfig
from earmark.ranking.strategies import STRATEGIES


def cmd_rank(args: argparse.Namespace) -> int:
    from earmark.ranking.rank import rank

    project = open_for_writing(args.project, "rank")
    decode = overrides(args, project.config.decode)
    selection = overrides(args, project.config.selection)
    if args.verbose:  # the probe's figures as they come (it runs once per machine and model)
        logging.basicConfig(format="%(message)s")
        logging.getLogger("earmark.decode.autotune").setLevel(logging.INFO)
    report = rank(project, model=args.model, decode=decode, selection=selection,
                  progress=not args.quiet, transcribe=ray_backend(args))
    if args.verbose and report.decoding:
        print(f"decoding: {report.decoding}")
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


def cmd_queue(args: argparse.Namespace) -> int:
    from earmark.review.reports import mark_words, queue

    project = open_checked(args.project)
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
    from earmark.review.reports import status

    project = open_checked(args.project)
    st = status(project)
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
    print_standing(project)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``rank``, ``queue`` and ``status``."""
    s = add_command(sub, "rank", cmd_rank, help="transcribe new clips, score them, order the queue",
                    description="Transcribe every clip the active model has not transcribed "
                                "(resumable: a killed run continues where it stopped), store token "
                                "probabilities, entropies and word times, and order the review queue.",
                    epilog="examples:\n  earmark rank myproj\n  earmark rank myproj --strategy entropy\n"
                           "  earmark rank myproj --model ft-002     # a version, a Whisper name or a checkpoint\n"
                           "  earmark rank myproj --ray HEAD:6379    # on a Ray cluster (audio sent to it)\n"
                           "  earmark rank myproj --ray HEAD:6379 --ship-audio never   # project on shared storage")
    s.add_argument("project", help=PROJECT_HELP)
    s.add_argument("--model", help="a version's name, a Whisper name or a checkpoint path; it becomes "
                                   "active once it has loaded")
    add_config_flags(s, DecodeConfig)
    add_config_flags(s, SelectionConfig, choices={"strategy": sorted(STRATEGIES)})
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.add_argument("-v", "--verbose", action="store_true",
                   help="say which engine and arithmetic decoding uses, and why (the measured speeds)")
    add_ray_flags(s)  # hand-made: where the work runs is no setting of the project

    s = add_command(sub, "queue", cmd_queue, help="show the head of the review queue",
                    description="Show the clips to review first (those nobody has corrected or "
                                "flagged yet), with low-confidence words marked. The score is the "
                                "one the ranking strategy orders by (higher: reviewed sooner); "
                                "orders without one (random, longest-first) show the "
                                "errors-per-second score, to say how doubtful each clip is.",
                    epilog="examples:\n  earmark queue myproj\n  earmark queue myproj --top 50 --plain > queue.txt")
    s.add_argument("project", help=PROJECT_HELP)
    s.add_argument("--top", type=positive_int, default=20, help="how many clips (default %(default)s)")
    s.add_argument("--plain", action="store_true", help="mark words with [brackets], no colour")

    s = add_command(sub, "status", cmd_status, help="counts: clips, rejected, transcribed, corrected",
                    description="Where the project stands: clips and minutes imported, files "
                                "rejected and why, the active model, how many clips it has "
                                "transcribed, how many wait for review, how many are corrected, and "
                                "the snapshots of its database.",
                    epilog="examples:\n  earmark status myproj\n  earmark status myproj --show-rejected 100")
    s.add_argument("project", help=PROJECT_HELP)
    s.add_argument("--show-rejected", type=count, default=10, metavar="N",
                   help="list up to N rejected files with reasons (default %(default)s)")
