"""Score a finished ``bench_finetune.py`` run again: its test clips decoded by tiny.en and by
each fine-tuned version, WER under Whisper's English normalizer alone and under earmark's
(:func:`earmark.evaluate.metrics.normalize`, which also joins a run of digit tokens into one number).

For figures measured before a change of the metric: decoding is deterministic (and
``transcribe()`` is seeded as in the benchmark), so the first column reproduces them.

    .venv/bin/python benchmarks/rescore_finetune.py --workdir /tmp/b0n [--versions ft-001,ft-002]
        [--openai-transcribe] [--out NAME]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import write_result
from earmark.config import DecodeConfig
from earmark.evaluate.heldout import manifest_clips
from earmark.evaluate.metrics import error_rates
from earmark.models.loading import load_model
from earmark.decode.decoder import Decoder


def whisper_only_wer(references: list[str], hypotheses: list[str]) -> float:
    """Pooled WER after Whisper's English normalizer alone (the metric before digit joining)."""
    import jiwer
    from whisper.normalizers import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    pairs = [(" ".join(norm(r).split()), " ".join(norm(h).split())) for r, h in zip(references, hypotheses)]
    pairs = [p for p in pairs if p[0]]
    return jiwer.wer([p[0] for p in pairs], [p[1] for p in pairs])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", required=True, help="the --workdir of a bench_finetune.py run")
    ap.add_argument("--versions", default="ft-001", help="comma-separated versions (default ft-001)")
    ap.add_argument("--openai-transcribe", action="store_true", help="also decode with transcribe()")
    ap.add_argument("--out", default=None, help="result name (default rescore_<workdir name>)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(2)
    work = Path(args.workdir)
    clips = manifest_clips(work / "test.jsonl")
    models = {"tiny.en": "tiny.en", **{v: str(work / "proj" / "models" / v / "model.pt")
                                       for v in args.versions.split(",")}}
    figures: dict = {"workdir": str(work), "clips": len(clips.references)}
    for name, spec in models.items():
        model = load_model(spec, "cpu")
        decoders = {"earmark": lambda: [o.text for o in Decoder(model, DecodeConfig()).transcribe(clips.audios)]}
        if args.openai_transcribe:
            def openai() -> list[str]:
                torch.manual_seed(0)  # as bench_finetune.py seeds it
                return [model.transcribe(a, language="en", fp16=False, verbose=None)["text"]
                        for a in clips.audios]
            decoders["openai_transcribe"] = openai
        for decoder, run in decoders.items():
            hyps = run()
            figures[f"{decoder}_{name}_wer"] = round(error_rates(clips.references, hyps).wer, 4)
            figures[f"{decoder}_{name}_wer_whisper_normalizer"] = round(whisper_only_wer(clips.references, hyps), 4)
            print(decoder, name, figures[f"{decoder}_{name}_wer_whisper_normalizer"],
                  figures[f"{decoder}_{name}_wer"], flush=True)
    for decoder in ("earmark", "openai_transcribe"):
        for v in args.versions.split(","):
            for suffix in ("_wer", "_wer_whisper_normalizer"):
                zero, tuned = figures.get(f"{decoder}_tiny.en{suffix}"), figures.get(f"{decoder}_{v}{suffix}")
                if zero and tuned is not None:
                    figures[f"{decoder}_{v}_relative{suffix.removeprefix('_wer')}"] = round(1 - tuned / zero, 4)
    print(write_result(args.out or f"rescore_{work.name}", figures))


if __name__ == "__main__":
    main()
