"""Active-learning simulation on speechocean762: which strategy saves a person's minutes?

Runs ``earmark.simulate`` (or reads a finished run with ``--from DIR``), then writes the
flat figures to ``benchmarks/results/simulate.json`` and the learning curve to
``benchmarks/results/learning_curve.png``.

    python benchmarks/bench_simulate.py --speakers 60 --test-speakers 20 --dev-speakers 6 \\
        --rounds 4 --budget 2 --seeds 3 --workers 3 --threads 1 --out /tmp/sim/full
    python benchmarks/bench_simulate.py --from /tmp/sim/full      # results of a finished run
    python benchmarks/bench_simulate.py --partial /tmp/sim/full --zero-shot zs.pkl --seeds 3 ...

``--partial`` summarizes a run that was stopped: the rounds it appended to
``rounds.partial.jsonl``, keeping the strategies whose every seed finished every round,
with round 0 and the error-detection AUCs from the zero-shot transcripts in a pickle
(``{"texts", "speakers", "durations", "zs": {clip index: Transcript}}``, the study's
clips in the run's order).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from common import DATA, RESULTS, write_result


def from_partial(out: Path, zero_shot: Path, args: argparse.Namespace) -> dict:
    import pickle

    import numpy as np

    from earmark.study_config import SimulateConfig
    from earmark.simulate import (RoundResult, Study, corpus_wer, error_detection, split_speakers,
                                  write_outputs)

    z = pickle.loads(zero_shot.read_bytes())
    n = len(z["texts"])
    study = Study(ids=[str(i) for i in range(n)], speakers=z["speakers"], texts=z["texts"],
                  durations=np.asarray(z["durations"]), features=np.zeros((n, 1, 1), np.float16),
                  frames=np.ones(n, int), embeddings=np.zeros((n, 1), np.float32))
    rows = [RoundResult(**json.loads(l)) for l in (out / "rounds.partial.jsonl").read_text().splitlines()
            if l.strip()]
    cfg = replace(SimulateConfig(), rounds=args.rounds, budget_minutes=args.budget, seeds=args.seeds,
                  speakers=args.speakers, test_speakers=args.test_speakers,
                  dev_speakers=args.dev_speakers, workers=args.workers or 1, threads=args.threads or 0)
    complete = [name for name in dict.fromkeys(r.strategy for r in rows)
                if all({r.round for r in rows if r.strategy == name and r.seed == s}
                       >= set(range(1, cfg.rounds + 1)) for s in range(cfg.seeds))]
    results = []
    for name in complete:
        for seed in range(cfg.seeds):
            _, dev_s, test_s = split_speakers(study.speakers, seed, cfg.test_speakers, cfg.dev_speakers)
            dev = [i for i, s in enumerate(study.speakers) if s in dev_s]
            test = [i for i, s in enumerate(study.speakers) if s in test_s]
            results.append(RoundResult(name, seed, 0, 0, 0.0, 0.0, corpus_wer(study, z["zs"], test),
                                       corpus_wer(study, z["zs"], dev), 0.0))
            results += sorted((r for r in rows if r.strategy == name and r.seed == seed),
                              key=lambda r: r.round)
    _, _, test0 = split_speakers(study.speakers, 0, cfg.test_speakers, cfg.dev_speakers)
    detection = error_detection(study, z["zs"], [i for i, s in enumerate(study.speakers) if s in test0])
    cfg = replace(cfg, strategies=tuple(complete))
    seconds = sum(r.seconds for r in results) / max(1, cfg.workers)
    record = write_outputs(results, detection, cfg, out, seconds, n)
    print("complete strategies:", ", ".join(complete), "| unfinished:",
          ", ".join(sorted({r.strategy for r in rows} - set(complete))) or "none", file=sys.stderr)
    return record


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="source", help="a finished simulate output folder")
    p.add_argument("--manifest", default=str(DATA / "manifest.jsonl"))
    p.add_argument("--out", default="/tmp/earmark-simulate")
    for name, typ in (("rounds", int), ("budget", float), ("seeds", int), ("speakers", int),
                      ("test-speakers", int), ("dev-speakers", int), ("workers", int), ("threads", int)):
        p.add_argument(f"--{name}", type=typ)
    p.add_argument("--partial", help="a stopped simulate output folder (rounds.partial.jsonl)")
    p.add_argument("--zero-shot", help="with --partial: pickle of the zero-shot transcripts")
    p.add_argument("--name", default="simulate",
                   help="results/NAME.json and its plot (default simulate, with learning_curve.png)")
    args = p.parse_args()
    if args.partial:
        out = Path(args.partial)
        record = from_partial(out, Path(args.zero_shot), args)
    elif args.source:
        out = Path(args.source)
        record = json.loads((out / "summary.json").read_text())
    else:
        from earmark.study_config import SimulateConfig
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
    path = write_result(args.name, figures)
    plot = RESULTS / ("learning_curve.png" if args.name == "simulate" else f"learning_curve_{args.name}.png")
    shutil.copyfile(out / "learning_curve.png", plot)
    print(record["table"])
    print(json.dumps({k: figures[k] for k in ("best_strategy", "best_label_saving", "default_error_auc")}))
    print(f"wrote {path} and {plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
