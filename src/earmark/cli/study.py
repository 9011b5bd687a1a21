"""The ``simulate``, ``study`` and ``demo`` commands: the loop replayed with reference
texts as the annotator, the review-cost study, and the whole loop on the shipped samples."""

from __future__ import annotations

import argparse
from pathlib import Path

from earmark.cli.common import add_command, number, port, positive_int
from earmark.cli.flags import add_config_flags, overrides
from earmark.cli.project import cmd_import, cmd_init
from earmark.cli.rank import cmd_queue, cmd_rank, cmd_status
from earmark.cli.scale import add_simulate_ray_flag, simulate_ray
from earmark.cli.review import cmd_review
from earmark.study_config import SimulateConfig, StudyConfig
from earmark.errors import EarmarkError


def cmd_demo(args: argparse.Namespace) -> int:
    import shutil

    from earmark.resources import sample_manifest
    from earmark.store.project import CONFIG_FILE

    samples = Path(args.samples) if args.samples else sample_manifest()
    if not samples.is_file():
        raise EarmarkError(f"{samples}: no sample manifest here; pass --samples MANIFEST, or "
                           "leave it out for the samples that ship with earmark")
    root = Path(args.project)
    if (root / CONFIG_FILE).exists():
        if not args.fresh:
            raise EarmarkError(f"{root}: already a project; pass --fresh to rebuild the demo there")
        shutil.rmtree(root)
    # each step with the command line that does the same by hand, printed before it runs
    steps = [
        ("", cmd_init, argparse.Namespace(project=str(root), model="tiny.en", db_url=None)),
        (f" {samples}", cmd_import, argparse.Namespace(project=str(root), source=str(samples), quiet=False)),
        ("", cmd_rank, argparse.Namespace(project=str(root), model=None, quiet=False, verbose=False)),  # no option given
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
    from earmark.simulate.run import simulate

    cfg = overrides(args, SimulateConfig())
    record = simulate(Path(args.manifest), cfg, Path(args.out), ray=simulate_ray(args))
    print(record["table"])
    print(record["verdict"])
    print(f"default {record['default_strategy']} word-error AUC {record['default_error_auc']:.3f}")
    print(f"wrote {args.out}/rounds.csv, rounds.json, summary.json, learning_curve.png")
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from earmark.study.run import run_study

    cfg = overrides(args, StudyConfig())
    rec = run_study(args.manifest, cfg, args.out, log=lambda m: print(m, flush=True),
                    compare_product=args.compare_product)
    print(f"{'partial run' if rec['partial'] else 'full run'}: {rec['seeds']} seeds, pool "
          f"{rec['pool_minutes']:.1f} min, pool/budget {rec['pool_to_budget']:.1f}")
    for key in ("review_minutes_ratio_vs_random", "review_minutes_ratio_vs_oracle", "model_label_saving",
                "pool_wer_estimate_abs_error", "product_loop_gap"):
        v = rec[key]
        print(f"{key:34} {'n/a' if v is None else f'{v:.3f}'}")
    print(f"default strategy: {rec['default_strategy']} ({rec['default_strategy_why']})")
    print(f"wrote {args.out}/al_study.json and al_study.png (run again to continue a stopped study)")
    return 0


# --- parser -------------------------------------------------------------------------


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``simulate``, ``study`` and ``demo``."""
    s = add_command(sub, "simulate", cmd_simulate,
                    help="replay the loop with reference texts to compare strategies",
                    description="Replay active learning with the manifest's reference texts as the "
                                "annotator: split speakers into pool/dev/test, then each round rank "
                                "the pool, label clips up to the budget of audio minutes, fine-tune "
                                "the base model's decoder on everything labeled, and score the test "
                                "set. Writes rounds.csv/json, learning_curve.png and summary.json.",
                    epilog="examples:\n  earmark simulate --manifest ../shared/data/speechocean762/manifest.jsonl "
                           "\\\n      --strategies random,errors-per-second --rounds 4 --budget 2 --seeds 3 "
                           "--out sim/\n  earmark simulate --manifest m.jsonl --seeds 5 --ray HEAD:6379"
                           "   # each (strategy, seed) a Ray task")
    s.add_argument("--manifest", required=True, help="JSONL with audio, text, speaker (and duration)")
    add_config_flags(s, SimulateConfig)
    s.add_argument("--out", default="simulate", help="output folder (default ./%(default)s)")
    add_simulate_ray_flag(s)  # hand-made: where the work runs is no setting of the study

    s = add_command(
        sub, "study", cmd_study, help="measure review minutes saved: strategies against random and the oracle",
        description="Replay the loop on a large pool with the manifest's references as the corrections, "
                    "ranking with the product's packed decoder, and measure the WER of the whole pool "
                    "against review cost (audio minutes and annotator minutes of the cost model) for each "
                    "strategy, random, file order and the oracle order. Resumable: each (strategy, seed, "
                    "round) is written to --out as it finishes, and a run again continues there.",
        epilog="example:\n  earmark study --manifest ../shared/data/speechocean762/manifest_all.jsonl "
               "--seeds 5 --rounds 5 --budget 3 --out study/")
    s.add_argument("--manifest", required=True, help="JSONL/CSV with audio, text, speaker and duration")
    add_config_flags(s, StudyConfig)
    s.add_argument("--compare-product", type=number(int, 0), default=0,
                   help="also run the product's finetune loop for the default strategy on this many seeds")
    s.add_argument("--out", default="study", help="study folder (default ./%(default)s)")

    s = add_command(sub, "demo", cmd_demo, help="the whole loop on the shipped samples",
                    description="Create a project from the shipped data_samples/ (synthetic "
                                "speech full of drug names, legal and engineering terms), rank "
                                "it, show the queue and status, and open the review app.",
                    epilog="examples:\n  earmark demo                     # ./demo_project, then the app\n"
                           "  earmark demo /tmp/d --fresh --no-app")
    s.add_argument("project", nargs="?", default="demo_project", help="folder (default %(default)s)")
    s.add_argument("--samples", help="manifest to import (default: the shipped data_samples)")
    s.add_argument("--fresh", action="store_true", help="delete an existing project in the folder first")
    s.add_argument("--top", type=positive_int, default=15, help="queue rows to show (default %(default)s)")
    s.add_argument("--no-app", action="store_true", help="stop before opening the review app")
    s.add_argument("--port", type=port, default=8501, help="review app port (default %(default)s)")
