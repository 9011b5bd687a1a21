"""Active-learning simulation on speechocean762: which strategy saves a person's minutes?

Runs ``earmark.simulate`` (or reads a finished run with ``--from DIR``), then writes the
flat figures to ``benchmarks/results/simulate.json`` and the learning curve to
``benchmarks/results/learning_curve.png``.

    python benchmarks/bench_simulate.py --speakers 60 --test-speakers 20 --dev-speakers 6 \\
        --rounds 4 --budget 2 --seeds 3 --workers 3 --threads 1 --out /tmp/sim/full
    python benchmarks/bench_simulate.py --from /tmp/sim/full      # results of a finished run
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from common import DATA, RESULTS, write_result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="source", help="a finished simulate output folder")
    p.add_argument("--manifest", default=str(DATA / "manifest.jsonl"))
    p.add_argument("--out", default="/tmp/earmark-simulate")
    for name, typ in (("rounds", int), ("budget", float), ("seeds", int), ("speakers", int),
                      ("test-speakers", int), ("dev-speakers", int), ("workers", int), ("threads", int)):
        p.add_argument(f"--{name}", type=typ)
    args = p.parse_args()
    if args.source:
        out = Path(args.source)
        record = json.loads((out / "summary.json").read_text())
    else:
        from earmark.config import SimulateConfig
        from earmark.simulate import simulate

        keys = {"rounds": "rounds", "budget": "budget_minutes", "seeds": "seeds", "speakers": "speakers",
                "test_speakers": "test_speakers", "dev_speakers": "dev_speakers",
                "workers": "workers", "threads": "threads"}
        over = {v: getattr(args, k) for k, v in keys.items() if getattr(args, k) is not None}
        out = Path(args.out)
        record = simulate(args.manifest, replace(SimulateConfig(), **over), out)
    figures = {"best_strategy": record["best_strategy"], "best_label_saving": record["best_label_saving"],
               "default_strategy": record["default_strategy"],
               "default_error_auc": record["default_error_auc"], "seconds": record["seconds"],
               "clips": record["clips"], **{f"config_{k}": v for k, v in record["config"].items()
                                             if not isinstance(v, (list, dict))}}
    for k, v in record["error_detection"].items():
        figures[f"auc_{k}"] = v
    for name, s in record["summary"].items():
        for k in ("final_test_wer", "final_dev_wer", "final_minutes", "changed_minutes",
                  "minutes_to_random_final", "label_saving", "curve_area"):
            figures[f"{name}.{k}"] = s[k]
    path = write_result("simulate", figures)
    shutil.copyfile(out / "learning_curve.png", RESULTS / "learning_curve.png")
    print(record["table"])
    print(json.dumps({k: figures[k] for k in ("best_strategy", "best_label_saving", "default_error_auc")}))
    print(f"wrote {path} and {RESULTS / 'learning_curve.png'}", file=sys.stderr)


if __name__ == "__main__":
    main()
