"""The review-cost study on speechocean762 (``earmark.study``): review minutes against
random and the oracle order, label saving, the pool-WER estimate's error.

Resumable: the study folder keeps every (training, strategy, seed, round) it finished,
and a run with the same arguments continues where it stopped. The figures go to
``benchmarks/results/al_study.json`` and the plot to ``benchmarks/results/al_study.png``.

    python benchmarks/bench_al_study.py --out benchmarks/al_study_run        # the full study
    python benchmarks/bench_al_study.py --speakers 20 --test-speakers 8 --dev-speakers 2 \\
        --seeds 2 --rounds 2 --budget 0.75 --strategies random,oracle,errors-per-second \\
        --out benchmarks/al_study_run/partial                                # a partial run
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from common import DATA, RESULTS, write_result


#: figures only the loop's rounds give (fine-tuning between rounds)
LOOP_KEYS = ("largest_labeled_minutes", "pool_to_budget", "product_loop_checked", "product_loop_gap",
             "product_loop_gap_per_round", "product_loop_seeds", "product_loop_test_wer", "model_label_saving",
             "model_label_saving_ci_low", "model_label_saving_ci_high", "model_label_saving_undefined_share",
             "loop_seeds", "loop_minutes_to_remove_a_third", "loop_review_minutes_ratio_vs_random",
             "loop_pool_wer_estimate_abs_error", "loop", "training")


def main() -> None:
    from earmark.study_config import StudyConfig
    from earmark.study.run import run_study

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", default=str(DATA / "manifest_all.jsonl"))
    p.add_argument("--strategies", default="random,file-order,oracle,errors-per-second")
    p.add_argument("--screen", default="", help="strategies in the review-only curves alone")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--budget", type=float, default=3.0)
    p.add_argument("--speakers", type=int, default=0)
    p.add_argument("--test-speakers", type=int, default=20)
    p.add_argument("--dev-speakers", type=int, default=10)
    p.add_argument("--training", default="cheap")
    p.add_argument("--compare-product", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default="benchmarks/al_study_run")
    p.add_argument("--name", default="al_study", help="results/<name>.json and .png")
    p.add_argument("--loop-from", default="", help="another study folder whose loop figures join this record")
    a = p.parse_args()
    cfg = StudyConfig(strategies=tuple(a.strategies.split(",")), screen=tuple(filter(None, a.screen.split(","))),
                      seeds=a.seeds, rounds=a.rounds,
                      budget_minutes=a.budget, speakers=a.speakers, test_speakers=a.test_speakers,
                      dev_speakers=a.dev_speakers, training=a.training, threads=a.threads)
    rec = run_study(a.manifest, cfg, a.out, log=lambda m: print(m, flush=True), compare_product=a.compare_product)
    if a.loop_from:  # the loop's rounds ran on a smaller pool in their own folder
        import json

        loop = json.loads((Path(a.loop_from) / "al_study.json").read_text())
        keep = ("seeds", "pool_minutes", "speakers", "test_speakers", "config")
        rec["loop_study"] = {k: loop[k] for k in keep if k in loop}
        rec.update({k: v for k, v in loop.items() if k not in rec or k in LOOP_KEYS})
    flat = {k: v for k, v in rec.items() if k != "config"}
    write_result(a.name, flat)
    shutil.copy(Path(a.out) / "al_study.png", RESULTS / f"{a.name}.png")


if __name__ == "__main__":
    main()
