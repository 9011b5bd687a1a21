"""Scored decoding with the real tiny.en model on shipped clips."""

from __future__ import annotations

import numpy as np
import pytest

from _support import SR, sample_rows, wer
from earmark.config import DecodeConfig
from earmark.transcribe import _loops, compression_ratio, pack_windows


def test_loop_detector_spares_short_repeats_and_stops_loops():
    assert not _loops([1, 0, 1, 0, 1, 0], 12)  # "one zero one zero one zero"
    assert _loops([5, 6, 7] * 4, 12)  # "Lili, Lili, Lili, Lili,"
    assert _loops([9] * 12, 12)
    assert not _loops([9] * 12, 0)


def test_pack_windows_fills_up_to_the_window():
    cfg = DecodeConfig(pack=True, pack_window_seconds=10.0, pack_gap_seconds=1.0)
    assert pack_windows([3, 3, 3, 3, 12, 2], cfg) == [[0, 1], [2, 3], [4], [5]]
    assert pack_windows([3, 3], DecodeConfig(pack=False)) == [[0], [1]]


def test_compression_ratio_flags_repetition():
    assert compression_ratio("hello " * 50) > 2.4
    assert compression_ratio("a normal sentence about the weather") < 2.4


def _easy_and_hard():
    from earmark.audio import load_audio

    rows = sample_rows()[:30]
    return rows, [load_audio(r["audio"]) for r in rows]


@pytest.mark.slow
@pytest.mark.parametrize("pack", [False, True])
def test_tokens_words_and_times_are_consistent(tiny_model, pack):
    from earmark.transcribe import Decoder

    rows, audios = _easy_and_hard()
    results = Decoder(tiny_model, DecodeConfig(pack=pack)).transcribe(audios)
    assert len(results) == len(rows)
    for row, audio, t in zip(rows, audios, results):
        assert t.duration == pytest.approx(audio.size / SR)
        assert all(0.0 < tok.p <= 1.0 and tok.logprob <= 0.0 and tok.entropy >= 0.0 for tok in t.tokens)
        starts = [w.start for w in t.words]
        assert starts == sorted(starts)
        assert all(0.0 <= w.start <= w.end <= t.duration + 1e-6 for w in t.words)
        assert sum(w.n_tokens for w in t.words) == len(t.tokens)
        assert 0.0 <= t.no_speech_prob <= 1.0
    # easy everyday sentences come out right
    easy = [(r, t) for r, t in zip(rows, results) if "weather" in r["text"] or "sister" in r["text"]]
    assert easy and all(wer(r["text"], t.text) <= 0.2 for r, t in easy)
    # the corpus as a whole stays within what tiny.en does on these voices
    assert np.mean([wer(r["text"], t.text) for r, t in zip(rows, results)]) < 0.6


@pytest.mark.slow
def test_low_confidence_words_are_the_wrong_ones(tiny_model):
    """Words the model is unsure of are wrong more often than the sure ones."""
    from earmark.transcribe import Decoder
    from whisper.normalizers import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    rows, audios = _easy_and_hard()
    results = Decoder(tiny_model).transcribe(audios)
    low, high = [], []
    for row, t in zip(rows, results):
        ref = set(norm(row["text"]).split())
        for w in t.words:
            token = norm(w.word).strip()
            if token:
                (low if w.p < 0.5 else high).append(token in ref)
    assert low and high
    assert np.mean(high) > np.mean(low) + 0.2


@pytest.mark.slow
def test_silence_and_tone_do_not_loop(tiny_model):
    from earmark.transcribe import Decoder

    rng = np.random.default_rng(0)
    noise = (0.01 * rng.standard_normal(5 * SR)).astype(np.float32)
    results = Decoder(tiny_model, DecodeConfig(pack=False)).transcribe([noise])
    assert len(results[0].tokens) <= DecodeConfig().max_tokens_per_second * 5 + DecodeConfig().min_max_tokens
