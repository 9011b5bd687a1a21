"""The ``finetune``, ``round``, ``evaluate``, ``models`` and ``export`` commands (argparse only).

The training options are drawn from :class:`~earmark.config.FinetuneConfig`'s fields
(:mod:`earmark.cli.flags`); each command turns them into that config and calls the library.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict
from typing import Any

from earmark.cli.common import (PROJECT_HELP, add_command, open_checked, open_for_writing, plural, positive_int, shown,
                                warn_unreadable, with_overrides)
from earmark.cli.flags import add_config_flags, flag_names, overrides
from earmark.config import DecodeConfig, FinetuneConfig, flagged_fields


def resume_notice(args: argparse.Namespace) -> str | None:
    """The line saying which flags ``--resume`` leaves unused, if any were given."""
    given = flag_names(args, FinetuneConfig, skip=[f.name for f in flagged_fields(FinetuneConfig)
                                                   if f.metadata.get("runtime")])
    if not (args.resume and given):
        return None
    return (f"note: --resume continues the unfinished run with the settings it started with; "
            f"ignored: {', '.join(given)} (--device and --threads apply)")


def unfinished_notice(project, args: argparse.Namespace) -> str | None:
    """A line naming unfinished runs when a command without --resume may start a new one."""
    if args.resume:
        return None
    names = [mv.name for mv in project.store.unfinished_runs()]
    if not names:
        return None
    return (f"note: {', '.join(names)} {'is' if len(names) == 1 else 'are'} unfinished; the same "
            f"corrections and settings continue {'it' if len(names) == 1 else 'one'}, others start a new "
            f"run (`--resume` continues {names[-1]} with its own settings)")


def json_figures(figures: dict[str, Any]) -> str:
    """Strict JSON of flat figures: NaN (no word errors to detect, say) becomes null.

    Python writes NaN as a bare ``NaN``, which JSON parsers elsewhere reject.
    """
    return json.dumps({k: None if isinstance(v, float) and math.isnan(v) else v for k, v in figures.items()},
                      indent=2, allow_nan=False)


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def print_finetune(r, project_arg: str) -> None:
    print(f"{r.version} from {r.parent}: {plural(r.train_clips, 'training clip')}"
          f"{f' + {r.replay_clips} replayed' if r.replay_clips else ''}, {plural(r.dev_clips, 'dev clip')}, "
          f"{plural(r.steps, 'step')}{' (stopped early)' if r.stopped_early else ''}"
          f"{f', weights of step {r.kept_step} kept' if 0 <= r.kept_step < r.steps else ''}"
          f"{f', resumed at step {r.resumed_from_step}' if r.resumed_from_step else ''}; "
          f"{r.total_seconds:.0f} s")
    print(f"dev WER {_fmt(r.dev_wer_before)} -> {_fmt(r.dev_wer_after)}, "
          f"CER {_fmt(r.dev_cer_before)} -> {_fmt(r.dev_cer_after)}; decoding "
          f"{r.decode_speed_before:.1f} -> {r.decode_speed_after:.1f} audio s/s")
    if r.not_kept_why:
        print(f"(the weights after step {r.steps} were not kept: {r.not_kept_why})")
    if r.best_step != r.kept_step:  # the progress bar showed a lower "best": say why it was not kept
        print(f"(step {r.best_step} had the lowest dev WER, {_fmt(r.best_dev_wer)}, but on "
              f"{plural(r.dev_clips, 'dev clip')} not clearly below step {r.kept_step}'s, so the newer weights of step "
              f"{r.kept_step} were kept: see --dev-confidence)")
    print(r.message)
    print(f"checkpoint {r.checkpoint}")


def cmd_finetune(args: argparse.Namespace) -> int:
    from earmark.train.finetune import finetune

    project = open_for_writing(args.project, "finetune")
    if notice := resume_notice(args) or unfinished_notice(project, args):
        print(notice)
    result = finetune(project, overrides(args, project.config.finetune), resume=args.resume,
                      progress=not args.quiet)
    print_finetune(result, args.project)
    if result.activated:
        print(f"next: earmark rank {args.project}   (or `earmark round` next time: both in one)")
    return 0


def cmd_round(args: argparse.Namespace) -> int:
    from earmark.review.reports import mark_words
    from earmark.rounds import run_round

    project = open_for_writing(args.project, "round")
    if notice := resume_notice(args) or unfinished_notice(project, args):
        print(notice)
    report = run_round(project, overrides(args, project.config.finetune), resume=args.resume,
                       progress=not args.quiet, top=args.top)
    print_finetune(report.finetune, args.project)
    if report.ranked is None:
        print("the queue is unchanged (the new version did not pass the gate)")
        return 0
    q = report.queue
    print(f"re-ranked with {report.ranked.model_version}: transcribed {report.ranked.transcribed} clips "
          f"in {report.ranked.wall_seconds:.0f} s; queue {q.before} -> {q.after} clips")
    print(f"queue reshuffle: mean shift {q.mean_rank_shift:.1f} places, Spearman {_fmt(q.rank_correlation)} "
          f"over {q.common} clips; {q.top_kept} of the old top {q.top} still in the top {q.top}")
    thr = project.config.selection.low_confidence
    for row in report.top_clips:
        print(f"{row.rank:>4}  {row.clip_id:>5}  {row.duration:>4.1f}s  {row.score:>6.3f}  "
              f"{mark_words(row.words, thr, False) or '(empty)'}   [{shown(row.name)}]")
    return warn_unreadable(report.ranked.unreadable)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from earmark.evaluate.heldout import compare, evaluate
    from earmark.store.project import open_project

    project = open_project(args.project)
    # an empty --device or --threads 0 keeps the project's setting
    decode = with_overrides(project.config.decode, device=args.device or None, threads=args.threads or None)
    if args.against:
        cmp = compare(project, model=args.model, against=args.against, manifest=args.manifest, decode=decode,
                      progress=True)
        r = cmp.candidate
    else:
        cmp, r = None, evaluate(project, model=args.model, manifest=args.manifest, decode=decode, progress=True)
    if args.json:
        out: dict[str, Any] = {"model": r.model, "source": r.source, "clips": r.clips,
                               "audio_seconds": round(r.audio_seconds, 2), "wer": r.wer, "cer": r.cer,
                               **{f"confidence_{k}": v for k, v in asdict(r.confidence).items()},
                               # clip_errors: a per-clip list without clip names, not a figure
                               **{k: v for k, v in asdict(r.rates).items()
                                  if k not in ("wer", "cer", "clip_errors")},
                               "decode_seconds": round(r.decode_seconds, 2)}
        if cmp is not None:
            red = cmp.reduction
            out.update(against=cmp.baseline.model, against_wer=cmp.baseline.wer, against_cer=cmp.baseline.cer,
                       relative_wer_reduction=red.relative if red else math.nan,
                       relative_wer_reduction_low=red.low if red else math.nan,
                       relative_wer_reduction_high=red.high if red else math.nan,
                       interval_level=red.level if red else math.nan,
                       interval_groups=red.groups if red else 0, interval_by=cmp.by)
        print(json_figures(out))
        return 0
    print(f"{r.model} on {r.source}: {r.clips} clips, {r.audio_seconds / 60:.1f} min")
    print(f"WER {_fmt(r.wer)}  CER {_fmt(r.cer)}  ({r.rates.ref_words} reference words: "
          f"{r.rates.substitutions} substituted, {r.rates.deletions} deleted, {r.rates.insertions} inserted"
          f"{f'; {r.rates.skipped} clips with empty references skipped' if r.rates.skipped else ''})")
    c = r.confidence
    print(f"word confidence as an error detector: AUC-ROC {_fmt(c.auc)}, ECE {_fmt(c.ece)} "
          f"over {c.words} words ({_fmt(c.error_fraction)} of them wrong)")
    print(f"decoding {r.decode_seconds:.1f} s ({r.speed:.1f} audio s/s)")
    if cmp is not None:
        _print_comparison(cmp)
    return 0


def _print_comparison(cmp) -> None:
    b, red = cmp.baseline, cmp.reduction
    print(f"against {b.model}: WER {_fmt(b.wer)}  CER {_fmt(b.cer)} on the same clips")
    if red is None:
        print(f"{b.model} makes no word error on these clips: no reduction to measure")
        return
    if red.groups < 2:
        print(f"relative WER reduction {red.relative:.1%} (the clips are all one speaker's: no "
              "interval; a manifest of several speakers, or without a speaker column, gives one)")
        return
    units = plural(red.groups, cmp.by if cmp.by != "speaker and clip" else "speaker or clip")
    print(f"relative WER reduction {red.relative:.1%} ({red.level:.0%} interval with the {units} "
          f"drawn again: {red.low:.1%} to {red.high:.1%})")
    if red.low > 0 or red.high < 0:
        verdict = "better" if red.low > 0 else "worse"
        print(f"{cmp.candidate.model} is {verdict} than {b.model} beyond what the choice of "
              f"{'clips' if cmp.by == 'clip' else 'speakers'} explains")
    else:
        print(f"the interval includes 0: these clips cannot tell {cmp.candidate.model} from {b.model}")


def _wer(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.3f}"


def _show_version(project, name: str) -> None:
    from earmark.review.reports import minute, version_details

    v = version_details(project, name)
    if v.status == "training":  # its checkpoint is written when the run ends
        print(f"{v.name} (unfinished: being trained now, or stopped before the end)")
    else:
        print(f"{v.name} ({v.status}): {v.spec}")
    if v.verdict is not None:
        # written when the run ended; the status above is today's
        print(f"when it finished, the gate said: {v.verdict}")
        print(f"parent {v.parent or '-'}, mode {v.mode or '-'}, {plural(v.train_clips, 'training clip')}, "
              f"{plural(v.dev_clips, 'dev clip')}, {plural(v.steps or 0, 'step')}, "
              f"{minute(v.started_at)} to {minute(v.finished_at)} (UTC)")
    elif v.status == "training":
        print(f"an unfinished fine-tuning run: `earmark finetune {project.root} --resume` continues it")
    else:
        print("a base model: no fine-tuning record")
    if v.record_path:
        print(f"record: {v.record_path}")


def cmd_models(args: argparse.Namespace) -> int:
    from pathlib import Path

    from earmark.models.loading import looks_like_path
    from earmark.store.project import open_project
    from earmark.review.reports import minute, versions

    project = open_project(args.project)
    if args.show:
        _show_version(project, args.show)
        return 0
    listed = versions(project)
    if not listed:
        print(f"no model versions yet: `earmark rank {args.project}` adds the configured model")
        return 0
    missing: list[str] = []
    print(f"{'version':<12} {'status':<10} {'parent':<12} {'clips':>5}  {'dev WER':<15} {'forgetting':>10}  finished")
    for v in listed:
        dev = "" if math.isnan(v.dev_wer_after) else f"{_wer(v.dev_wer_before)} -> {_wer(v.dev_wer_after)}"
        forget = "" if math.isnan(v.forgetting) else f"{v.forgetting:.1%}"
        clips = str(v.train_clips) if v.train_clips else ""
        shown_status = "unfinished" if v.status == "training" else v.status  # running, or killed
        gone = v.status != "training" and looks_like_path(v.spec) and not Path(v.spec).is_file()
        if gone:
            missing.append(v.name)
        print(f"{v.name:<12} {shown_status:<10} {v.parent or '':<12} {clips:>5}  {dev:<15} {forget:>10}  "
              f"{minute(v.finished_at)}" + ("  CHECKPOINT MISSING" if gone else ""))
    if missing:
        print(f"missing: the checkpoint file of {', '.join(missing)} is gone (moved or deleted); put it "
              "back to use the version again")
    print(f"`earmark models {args.project} --show NAME`: why a version is or is not active; "
          f"`earmark rank {args.project} --model NAME`: make one active and re-rank with it")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from earmark.export import export

    r = export(open_checked(args.project), args.format, args.out)
    print(f"exported {r.clips} clips ({r.seconds / 60:.1f} min) as {r.format} to {r.path}")
    for f in r.files:
        print(f"  {f}")
    return 0


def _training_flags(s: argparse.ArgumentParser) -> None:
    s.add_argument("project", help=PROJECT_HELP)
    add_config_flags(s, FinetuneConfig)
    s.add_argument("--resume", action="store_true",
                   help="continue the newest unfinished run (a run with the same corrections and "
                        "settings continues anyway)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``finetune``, ``round``, ``evaluate``, ``models`` and ``export``."""
    s = add_command(
        sub, "finetune", cmd_finetune,
        help="fine-tune the active model on the corrections (a new version)",
        description="Train a new model version on every saved, unflagged correction. A dev split "
                    "is held out by speaker (else by clip) and kept the same across rounds. The new "
                    "version becomes active only if its dev WER beats the active model's; otherwise "
                    "it is kept and the command says why. A killed run continues with --resume.",
        epilog="examples:\n  earmark finetune myproj\n  earmark finetune myproj --mode decoder --epochs 3\n"
               "  earmark finetune myproj --mode lora --lr 5e-4\n  earmark finetune myproj --resume")
    _training_flags(s)

    s = add_command(
        sub, "round", cmd_round,
        help="fine-tune, and if the new version passes the gate, re-rank the pool",
        description="One turn of the loop: `finetune`, then (when the new version became active) "
                    "`rank` with it; prints the dev WER change, how the queue moved and its new head.",
        epilog="example:\n  earmark round myproj\n  earmark round myproj --mode decoder --top 5")
    _training_flags(s)
    s.add_argument("--top", type=positive_int, default=10, help="clips of the new queue to show (default %(default)s)")

    s = add_command(
        sub, "evaluate", cmd_evaluate,
        help="WER, CER and confidence quality of a model version",
        description="Transcribe a held-out manifest (or the dev split of the corrections) and report "
                    "WER and CER after Whisper's English normalizer (a read digit string counts as "
                    "one number however it is written), and how well word confidence finds word "
                    "errors (AUC-ROC, expected calibration error). With --against, a baseline "
                    "is decoded on the same clips and the relative WER reduction is given "
                    "with an interval over the speakers, so a gain on a few speakers is not taken "
                    "for more than it is.",
        epilog="examples:\n  earmark evaluate myproj                       # active model, dev split\n"
               "  earmark evaluate myproj --model tiny.en --manifest heldout.jsonl\n"
               "  earmark evaluate myproj --model ft-002 --json\n"
               "  earmark evaluate myproj --model ft-002 --against tiny.en --manifest heldout.jsonl")
    s.add_argument("project", help=PROJECT_HELP)
    s.add_argument("--model", help="version name, checkpoint path or Whisper name (default: the active "
                                   "version); one that is not a version is evaluated without being added")
    s.add_argument("--manifest", help="JSONL/CSV manifest with audio and text (default: the dev split)")
    s.add_argument("--against", metavar="MODEL",
                   help="also evaluate this baseline (a version, checkpoint path or Whisper name) on the "
                        "same clips and report the relative WER reduction, with a 95%% interval over "
                        "the speakers (the manifest's 'speaker' column)")
    add_config_flags(s, DecodeConfig, only=("device", "threads"))
    s.add_argument("--json", action="store_true", help="print the figures as JSON")

    s = add_command(
        sub, "models", cmd_models,
        help="list the model versions: status, parent, dev WER, forgetting check",
        description="Every model version of the project, newest first: whether it is active, "
                    "ready or was refused by the gate (rejected), its parent, the corrections it "
                    "trained on, the dev WER of the parent and of the version on the same held-out "
                    "clips, and the share of the parent's words it changed on the clips the parent "
                    "was surest of. --show NAME prints the gate's verdict and the run's record.",
        epilog="examples:\n  earmark models myproj\n  earmark models myproj --show ft-002\n"
               "  earmark rank myproj --model ft-001      # go back to ft-001 and re-rank with it")
    s.add_argument("project", help=PROJECT_HELP)
    s.add_argument("--show", metavar="NAME", help="one version: the gate's verdict, its settings and record")

    s = add_command(
        sub, "export", cmd_export,
        help="write the corrected data as JSONL, NeMo manifests or an HF audiofolder",
        description="Export every clip's newest unflagged correction with its train/dev split: "
                    "jsonl (earmark's manifest), nemo (train_manifest.json, dev_manifest.json) or hf "
                    "(audiofolder: train/ and validation/ with metadata.jsonl and the FLAC clips).",
        epilog="examples:\n  earmark export myproj --format jsonl\n"
               "  earmark export myproj --format hf --out corrected_ds")
    s.add_argument("project", help=PROJECT_HELP)
    s.add_argument("--format", choices=("jsonl", "nemo", "hf"), default="jsonl", help="layout (default %(default)s)")
    s.add_argument("--out", help="output folder: a new or empty one, or an earlier export, which is "
                                 "replaced (default PROJECT/exports/FORMAT)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run `earmark` instead")
