"""Exported models against earmark's own decoding: `earmark export-model` checked.

tiny.en is exported from a temporary project as a transformers folder (``hf``) and as
CTranslate2 models (``ct2``, float32 and int8), and clips evenly spaced over
speechocean762 are transcribed by each engine: transformers' ``generate`` and
faster-whisper's ``transcribe`` (greedy, no prompt, no timestamp tokens, words timed
from the alignment heads). The reference is earmark's decoder on the same version with
each clip alone in its window (``pack=False``), the same search as those engines;
``*_vs_earmark_packed`` compares with earmark's default packed decoding instead, which
decodes several clips in one window and so writes somewhat different text.

- ``ct2_wer_vs_earmark``, ``hf_wer_vs_earmark``: corpus WER between each engine's text and
  earmark's (after Whisper's English normalizer); ``ct2_int8_wer_vs_earmark`` for int8;
  ``ct2`` is faster-whisper end to end (its own log-mel features, timestamp tokens on);
- ``ct2_same_features_wer_vs_earmark``: the converted CTranslate2 model run directly
  (``ctranslate2.models.Whisper.generate``) on openai-whisper's features with earmark's
  search: what the conversion itself changes;
- ``ct2_word_time_mean_abs_diff_s``: mean |start difference| of faster-whisper's words and
  earmark's, over clips whose words match one to one (``*_clips_aligned`` says how many).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_export_model.py [--clips 30]

Writes ``benchmarks/results/export_model.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from common import loadavg, print_and_write, read_manifest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


def corpus_wer(reference: list[str], hypothesis: list[str]) -> float:
    import jiwer
    from whisper.normalizers import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    return float(jiwer.wer([norm(r) or "-" for r in reference], [norm(h) or "-" for h in hypothesis]))


def time_diffs(ours, served) -> tuple[float, int]:
    """Mean |start difference| over words of clips whose words line up; clips used."""
    diffs, clips = [], 0
    for t, s in zip(ours, served):
        if [w.word.strip() for w in t.words] == [w[0].strip() for w in s.words] and t.words:
            diffs += [abs(a.start - b[1]) for a, b in zip(t.words, s.words)]
            clips += 1
    return (sum(diffs) / len(diffs) if diffs else float("nan")), clips


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=30)
    args = ap.parse_args()

    from earmark import audio as au
    from earmark.config import DecodeConfig
    from earmark.decode.decoder import Decoder
    from earmark.models.export import export_model
    from earmark.models.served import ctranslate2_texts, faster_whisper_texts, transformers_texts
    from earmark.models.versions import load_version
    from earmark.store.project import init_project

    rows = read_manifest()
    rows = rows[:: max(1, len(rows) // args.clips)][: args.clips]
    audios = [au.load_audio(Path(r["audio"])) for r in rows]
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    project = init_project(work / "proj")
    mv = project.store.active_model()
    model = load_version(project, mv, "cpu")
    unpacked = Decoder(model, replace(DecodeConfig(device="cpu"), pack=False)).transcribe(audios)
    packed = Decoder(model, DecodeConfig(device="cpu")).transcribe(audios)
    ours = [t.text for t in unpacked]

    figures: dict = {"clips": len(rows), "audio_seconds": round(sum(len(a) for a in audios) / 16000, 1)}
    start = time.perf_counter()
    hf = export_model(project, None, "hf", work / "hf")
    figures["hf_export_seconds"] = round(time.perf_counter() - start, 1)
    for q in ("", "int8"):
        start = time.perf_counter()
        ct2 = export_model(project, None, "ct2", work / f"ct2{q}", q)
        figures[f"ct2{'_' + q if q else ''}_export_seconds"] = round(time.perf_counter() - start, 1)
        served = faster_whisper_texts(ct2.out, audios)
        key = "ct2" + (f"_{q}" if q else "")
        figures[f"{key}_wer_vs_earmark"] = round(corpus_wer(ours, [s.text for s in served]), 4)
        figures[f"{key}_wer_vs_earmark_packed"] = round(
            corpus_wer([t.text for t in packed], [s.text for s in served]), 4)
        if not q:  # the converted model itself, on earmark's features and search
            direct = ctranslate2_texts(ct2.out, audios)
            figures["ct2_same_features_wer_vs_earmark"] = round(corpus_wer(ours, [s.text for s in direct]), 4)
        diff, aligned = time_diffs(unpacked, served)
        figures[f"{key}_word_time_mean_abs_diff_s"] = round(diff, 4)
        figures[f"{key}_clips_aligned"] = aligned
    hf_texts = [s.text for s in transformers_texts(hf.out, audios)]
    figures["hf_wer_vs_earmark"] = round(corpus_wer(ours, hf_texts), 4)
    figures["hf_wer_vs_earmark_packed"] = round(corpus_wer([t.text for t in packed], hf_texts), 4)
    figures["earmark_packed_wer_vs_unpacked"] = round(corpus_wer(ours, [t.text for t in packed]), 4)
    figures["loadavg"] = loadavg()
    print_and_write("export_model", figures, 36)
    return 0


if __name__ == "__main__":
    sys.exit(main())
