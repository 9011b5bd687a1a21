"""``earmark study``: the review-cost study (argparse only; the work is earmark.study)."""

from __future__ import annotations

import argparse

from earmark.cli.main import add_command, count, positive_float, positive_int, thread_count, with_overrides


def cmd_study(args: argparse.Namespace) -> int:
    from earmark.config import StudyConfig
    from earmark.study.run import run_study

    strategies = (tuple(s.strip() for s in args.strategies.split(",") if s.strip())
                  if args.strategies else None)
    cfg = with_overrides(StudyConfig(), strategies=strategies, seeds=args.seeds, rounds=args.rounds,
                         budget_minutes=args.budget, test_speakers=args.test_speakers,
                         dev_speakers=args.dev_speakers, speakers=args.speakers, model=args.model,
                         training=args.training, threads=args.threads,
                         finetune_max_steps=args.finetune_max_steps)
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


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``study``."""
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
    s.add_argument("--strategies", help="comma-separated: registered names, random, file-order, oracle")
    s.add_argument("--seeds", type=positive_int, help="speaker splits (default 5)")
    s.add_argument("--rounds", type=count, help="review rounds after the zero-shot round 0 (default 5)")
    s.add_argument("--budget", type=positive_float, help="audio minutes reviewed per round (default 3)")
    s.add_argument("--speakers", type=positive_int, help="speakers drawn from the manifest (default: all)")
    s.add_argument("--test-speakers", type=positive_int, help="held-out test speakers (default 20)")
    s.add_argument("--dev-speakers", type=count, help="held-out dev speakers (default 10)")
    s.add_argument("--model", help="Whisper model (default tiny.en)")
    s.add_argument("--training", choices=("cheap", "product"),
                   help="cheap: decoder-only over cached encoder outputs (default); product: `finetune`")
    s.add_argument("--compare-product", type=count, default=0,
                   help="also run the product's finetune loop for the default strategy on this many seeds")
    s.add_argument("--finetune-max-steps", type=count, help="product path: cap on finetune's steps (0: none)")
    s.add_argument("--threads", type=thread_count, help="torch threads")
    s.add_argument("--out", default="study", help="study folder (default ./study)")
