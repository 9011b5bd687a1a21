"""Benchmark: how far the fine-tuning figure moves with the test speakers drawn again.

``bench_finetune.py`` reports one relative WER reduction on 25 held-out speakers. This
script decodes the test set of one of its work folders (``--workdir``) again with the
zero-shot model and the fine-tuned versions named, and gives each reduction a 95 %
bootstrap interval over whole test speakers (``earmark.evaluate.metrics.relative_reduction``):
the range the figure would take with another 25 speakers like these. It also says how
many resamples reach a target (``--target``, the issue's 40 %).

It also bounds what less forgetting could add: the test speakers the fine-tuned
version makes *more* errors on than the zero-shot model, their extra errors, and the
reduction if none of them had got worse (each speaker's errors the fewer of the two
models'), beside the same bound clip by clip.

    .venv/bin/python benchmarks/bench_reduction_interval.py --workdir /tmp/b0n \\
        --versions ft-001 --openai-transcribe --out finetune_interval_split0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def forgetting_bound(before, after, speakers: list[str]) -> dict:
    """What the fine-tuned model lost where the zero-shot one was better, and the
    reduction it would reach without those losses (per speaker, and per clip)."""
    import numpy as np

    a, b, spk = np.asarray(before), np.asarray(after), np.asarray(speakers)
    per = [(a[spk == s].sum(), b[spk == s].sum()) for s in sorted(set(speakers))]
    worse = [(x, y) for x, y in per if y > x]
    return {"speakers_worse": len(worse), "extra_errors": int(sum(y - x for x, y in worse)),
            "no_forgetting_reduction": round(float(1 - sum(min(x, y) for x, y in per) / a.sum()), 4),
            "no_worse_clip_reduction": round(float(1 - np.minimum(a, b).sum() / a.sum()), 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, required=True,
                    help="a bench_finetune.py work folder (its proj/ and test.jsonl)")
    ap.add_argument("--versions", default="ft-001", help="fine-tuned versions, comma-separated")
    ap.add_argument("--base", default="tiny.en", help="the zero-shot model")
    ap.add_argument("--target", type=float, default=0.40)
    ap.add_argument("--openai-transcribe", action="store_true",
                    help="also decode with openai-whisper's transcribe(), clip by clip")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="-", help="result name: benchmarks/results/NAME.json ('-': none)")
    args = ap.parse_args(argv)

    from bench_finetune import openai_transcribe_wer, scored_speakers
    from common import write_result
    from earmark.evaluate.heldout import evaluate
    from earmark.models.versions import find_version
    from earmark.evaluate.metrics import relative_reduction
    from earmark.models.device import torch_threads
    from earmark.store.project import open_project

    manifest = args.workdir / "test.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    speakers = scored_speakers(rows)
    project = open_project(args.workdir / "proj")
    models = [args.base, *(v.strip() for v in args.versions.split(",") if v.strip())]
    errors: dict[str, dict[str, tuple[int, ...]]] = {"earmark": {}, "openai_transcribe": {}}
    with torch_threads(args.threads):
        for name in models:
            errors["earmark"][name] = evaluate(project, model=name, manifest=manifest).rates.clip_errors
            if args.openai_transcribe:
                spec = find_version(project, name).spec
                errors["openai_transcribe"][name] = openai_transcribe_wer(spec, manifest)["clip_errors"]

    figures: dict = {"workdir": str(args.workdir), "test_clips": len(speakers),
                     "test_speakers": len(set(speakers)), "target": args.target}
    for decoder, by_model in errors.items():
        if not by_model:
            continue
        before = by_model[args.base]
        for name in models[1:]:
            r = relative_reduction(before, by_model[name], speakers, rounds=10_000, target=args.target)
            key = f"{decoder}_{name}"
            figures.update({f"relative_wer_reduction_{key}": round(r.relative, 4),
                            f"low_{key}": round(r.low, 4), f"high_{key}": round(r.high, 4),
                            f"reach_target_{key}": round(r.reach, 4)})
            print(f"{decoder:18s} {name}: {r.relative:.1%} (95 % over speakers: {r.low:.1%} to "
                  f"{r.high:.1%}); {r.reach:.0%} of speaker draws reach {args.target:.0%}", flush=True)
            bound = forgetting_bound(before, by_model[name], speakers)
            figures.update({f"{k}_{key}": v for k, v in bound.items()})
            print(f"{'':18s} {bound['speakers_worse']} speakers worse by {bound['extra_errors']} errors; "
                  f"none worse: {bound['no_forgetting_reduction']:.1%} (no clip worse: "
                  f"{bound['no_worse_clip_reduction']:.1%})", flush=True)
    if args.out != "-":
        print(f"wrote {write_result(args.out, figures)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
