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


def main() -> None:
    from earmark.study_config import StudyConfig
    from earmark.study.run import run_study

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", default=str(DATA / "manifest_all.jsonl"))
    p.add_argument("--strategies", default="random,file-order,oracle,errors-per-second")
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
    a = p.parse_args()
    cfg = StudyConfig(strategies=tuple(a.strategies.split(",")), seeds=a.seeds, rounds=a.rounds,
                      budget_minutes=a.budget, speakers=a.speakers, test_speakers=a.test_speakers,
                      dev_speakers=a.dev_speakers, training=a.training, threads=a.threads)
    rec = run_study(a.manifest, cfg, a.out, log=lambda m: print(m, flush=True), compare_product=a.compare_product)
    flat = {k: v for k, v in rec.items() if k not in ("summary", "config")}
    flat["strategies"] = rec["summary"]["strategies"]
    write_result("al_study", flat)
    shutil.copy(Path(a.out) / "al_study.png", RESULTS / "al_study.png")


if __name__ == "__main__":
    main()
