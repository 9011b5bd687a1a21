"""Benchmark: WER of a fine-tuned model moved part of the way back to its parent.

For each share ``a`` the model's weights become ``parent + a * (trained - parent)``
(``earmark.train.trainable.interpolate``, what ``FinetuneConfig.interpolate`` does when a run
saves its weights) and a manifest is decoded with earmark's decoder. ``a`` 0 is the
parent, 1 the trained checkpoint as saved with ``interpolate`` 1.

This is how the default share was chosen: on the tuning sets of
``bench_finetune.py --tune`` (pool speakers held out before selection), never on the
test speakers.

    .venv/bin/python benchmarks/bench_interpolate.py --manifest WORKDIR/tune.jsonl \\
        --checkpoint WORKDIR/proj/models/ft-001/model.pt --shares 0,0.5,0.7,1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, required=True, help="JSONL with audio and text")
    ap.add_argument("--checkpoint", required=True,
                    help="a fine-tuned model saved with interpolate 1 (the trained weights)")
    ap.add_argument("--parent", default="tiny.en", help="the model it was trained from")
    ap.add_argument("--shares", default="0,0.3,0.5,0.6,0.7,0.8,0.9,1,1.2")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    from earmark.config import DecodeConfig
    from earmark.evaluate.heldout import evaluate_audio, manifest_clips
    from earmark.models.device import torch_threads
    from earmark.models.loading import load_model
    from earmark.train.trainable import interpolate, trainable_state

    clips = manifest_clips(args.manifest)
    audios, refs = clips.audios, clips.references
    with torch_threads(args.threads):
        parent = trainable_state(load_model(args.parent, "cpu"))
        model = load_model(args.checkpoint, "cpu")
        trained = trainable_state(model)
        for share in (float(a) for a in args.shares.split(",")):
            for name, p in model.named_parameters():  # back to the trained weights each time
                p.data = trained[name].clone()
            interpolate(model, parent, share)
            r = evaluate_audio(model, audios, refs, DecodeConfig(model=args.parent))
            print(json.dumps({"share": share, "wer": round(r.wer, 4), "words": r.rates.ref_words,
                              "decode_seconds": round(r.decode_seconds, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
