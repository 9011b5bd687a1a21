"""Scored decoding with the real tiny.en model on shipped clips."""

from __future__ import annotations

import numpy as np
import pytest

from _support import SR, sample_rows, wer
from earmark.config import DecodeConfig
from earmark.decode.packing import pack_windows
from earmark.decode.repetition import compression_ratio


def loops(tokens: list[int], min_tokens: int, max_period: int = 8) -> bool:
    """The loop rule written plainly, one sequence at a time: the oracle for loops_batch."""
    if min_tokens <= 0:
        return False
    for period in range(1, max_period + 1):
        span = max(3, -(-min_tokens // period)) * period
        if len(tokens) >= span:
            tail = tokens[-span:]
            if all(tail[i] == tail[i % period] for i in range(period, span)):
                return True
    return False


def batch_loops(tokens: list[int], min_tokens: int, max_period: int = 8) -> bool:
    """earmark's detector on one sequence: its last token as the next one."""
    import torch

    from earmark.decode.repetition import loops_batch

    history = torch.tensor([tokens[:-1]], dtype=torch.long)
    return bool(loops_batch(history, torch.tensor([tokens[-1]]), min_tokens, max_period)[0])


def test_loop_detector_spares_short_repeats_and_stops_loops():
    assert not batch_loops([1, 0, 1, 0, 1, 0], 12)  # "one zero one zero one zero"
    assert batch_loops([5, 6, 7] * 4, 12)  # "Lili, Lili, Lili, Lili,"
    assert batch_loops([9] * 12, 12)
    assert not batch_loops([9] * 12, 0)
    # " and we are going to be in the world," three times: a 10-token phrase loop
    phrase = list(range(100, 110))
    assert not batch_loops(phrase * 3, 12, max_period=8)
    assert batch_loops(phrase * 3, 12, max_period=DecodeConfig().loop_max_period)
    assert not batch_loops(phrase * 2 + phrase[:9], 12, max_period=24)  # twice is not yet a loop


def test_a_loop_keeps_its_first_pass_only():
    import torch

    from earmark.decode.repetition import first_pass, loops_batch

    phrase = list(range(100, 110))  # 10 tokens
    said = [1, 2, 3]
    tokens = said + phrase * 3  # the third pass's last token closes the loop
    history, nxt = torch.tensor([tokens[:-1]]), torch.tensor([tokens[-1]])
    (period,) = loops_batch(history, nxt, 12, 24).tolist()
    assert period == 10  # the phrase, not a multiple of it
    kept = first_pass(len(tokens) - 1, period, 12)  # the closing token is never kept
    assert tokens[:kept] == said + phrase
    (one,) = loops_batch(torch.tensor([[5] * 11]), torch.tensor([5]), 12, 24).tolist()
    assert one == 1 and first_pass(11, one, 12) == 1  # "all all all ..." keeps one "all"


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
    from earmark.decode.decoder import Decoder

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
    from earmark.decode.decoder import Decoder
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
    from earmark.decode.decoder import Decoder

    rng = np.random.default_rng(0)
    noise = (0.01 * rng.standard_normal(5 * SR)).astype(np.float32)
    results = Decoder(tiny_model, DecodeConfig(pack=False)).transcribe([noise])
    assert len(results[0].tokens) <= DecodeConfig().max_tokens_per_second * 5 + DecodeConfig().min_max_tokens


def test_numpy_dtw_follows_whisper_path():
    """dtw_jumps gives the same word-start columns as whisper.timing's numba DTW."""
    import torch
    from whisper.timing import dtw

    from earmark.decode.dtw import dtw_jumps

    rng = np.random.default_rng(0)
    for _ in range(12):
        x = rng.standard_normal((int(rng.integers(2, 60)), int(rng.integers(30, 800))))
        text_idx, time_idx = dtw(torch.from_numpy(x))
        jumps = np.pad(np.diff(text_idx), (1, 0), constant_values=1).astype(bool)
        assert np.array_equal(dtw_jumps(x), time_idx[jumps])


def test_batched_loop_detector_matches_the_scalar_one():
    import torch

    from earmark.decode.repetition import loops_batch

    rng = np.random.default_rng(1)
    for steps in (0, 5, 11, 20, 40):
        history = rng.integers(0, 3, size=(64, steps))  # few symbols: loops are common
        history[:8, -min(steps, 9):] = 7  # and some rows end in a plain loop
        nxt = rng.integers(0, 3, size=64)
        nxt[:4] = 7
        for period in (8, 24):
            got = loops_batch(torch.from_numpy(history), torch.from_numpy(nxt), 12, period).tolist()
            assert [g > 0 for g in got] == [loops(list(h) + [int(t)], 12, period)
                                            for h, t in zip(history.tolist(), nxt)]
    assert not loops_batch(torch.zeros(2, 30, dtype=torch.long), torch.zeros(2, dtype=torch.long), 0, 24).any()


def test_packed_clips_with_too_few_or_too_many_words_are_suspect():
    from earmark.decode.packing import Placement, suspect
    from earmark.decode.types import WordScore

    place = Placement(index=0, start=5.0, duration=3.0)
    spill = [WordScore(" over", 4.2, 5.4, 0.9, 1), WordScore(" edge", 7.9, 8.8, 0.9, 1)]
    assert not suspect(place, spill, DecodeConfig())  # words over the edges stay put
    assert suspect(place, [], DecodeConfig())
    # one word left of a 3 s utterance: the rest was skipped (0.5 words/s by default)
    assert suspect(place, spill[:1], DecodeConfig())
    assert not suspect(place, spill[:1], DecodeConfig(pack_min_words_per_second=0.0))
    assert suspect(place, spill, DecodeConfig(pack_min_words_per_second=1.0))
    # a loop the alignment spread over the clip: 30 words in 3 s
    looped = [WordScore(" world,", 5.0 + i / 10, 5.1 + i / 10, 0.6, 1) for i in range(30)]
    assert suspect(place, looped, DecodeConfig())
    assert not suspect(place, looped[:18], DecodeConfig())  # 6 words/s: fast, but read
    short = Placement(index=1, start=0.0, duration=0.5)  # "one two three four" in half a second
    assert not suspect(short, looped[:4], DecodeConfig())


@pytest.mark.slow
def test_reduced_precision_leaves_the_model_alone_and_transcribes_alike(tiny_model):
    import torch

    from earmark.decode.precision import native_bf16, resolve_precision
    from earmark.decode.decoder import Decoder

    rows, audios = _easy_and_hard()
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    # one clip per window, so that the arithmetic alone differs (not packing's context)
    exact = Decoder(tiny_model, DecodeConfig(quantize="none", pack=False))
    int8 = Decoder(tiny_model, DecodeConfig(quantize="int8", pack=False))
    bf16 = Decoder(tiny_model, DecodeConfig(quantize="bf16", pack=False))
    assert exact.encoder is tiny_model.encoder and exact.vocab_low is None
    assert any("quantized" in type(m).__module__ for m in int8.encoder.modules())
    assert bf16.vocab_low.dtype == torch.bfloat16
    after = tiny_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the model is untouched
    assert resolve_precision("auto", "cpu") == ("bf16" if native_bf16() else "float32")
    assert resolve_precision("bf16", "cuda") == "float32"
    with pytest.raises(ValueError, match="quantize"):
        Decoder(tiny_model, DecodeConfig(quantize="int4"))
    ref = exact.transcribe(audios[:12])
    wer_ref = np.mean([wer(r["text"], t.text) for r, t in zip(rows, ref)])
    for dec in (int8, bf16):
        out = dec.transcribe(audios[:12])
        assert np.mean([wer(r["text"], t.text) for r, t in zip(rows, out)]) <= wer_ref + 0.1
    # bf16 keeps the scores: the products accumulate in float32, and each step's best
    # tokens get exact float32 logits
    same = [(x, y) for x, y in zip(ref, out) if x.text == y.text]
    assert len(same) >= 3
    diffs = [abs(a.logprob - b.logprob) for x, y in same for a, b in zip(x.tokens, y.tokens)]
    assert np.mean(diffs) < 0.05 and max(diffs) < 1.0


@pytest.mark.slow
def test_a_packed_clip_without_words_is_decoded_again(tiny_model):
    from earmark.decode.decoder import Decoder

    rows, audios = _easy_and_hard()
    silence = np.zeros(2 * SR, dtype=np.float32)  # no words: always suspect when packed
    clips = [audios[0], silence, audios[1], audios[2]]
    dec = Decoder(tiny_model, DecodeConfig(pack=True))
    results = dec.transcribe(clips)
    assert dec.retried >= 1 and all(r is not None for r in results)
    assert len(results[1].words) <= 2
    assert all(results[i].words for i in (0, 2, 3))  # the speech around the silence kept its words


@pytest.mark.slow
def test_the_clip_a_packed_window_loops_in_is_decoded_again(tiny_model):
    """Four copies of one recording (imported as four formats) fill a window, where the
    model may loop over them. Whether it loops depends on the CPU's arithmetic, so the
    test checks what the decoder guarantees either way: the clip a window's loop ends in
    is decoded again, a clip still suspect after a second packed pass is decoded alone,
    and no clip ends up with its neighbours' words."""
    from pathlib import Path

    from earmark.audio import load_audio
    from earmark.decode.decoder import Decoder

    class Recorder(Decoder):
        """The real decoder, recording each pass and each packed window's loop."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.passes: list[tuple[list[int], bool, list[int]]] = []  # indices, packed, suspects
            self.looped_in: list[tuple[int, bool]] = []  # (clip a window's loop ended in, flagged)

        def _run(self, audios, indices, pack, results, on_batch):
            suspects = super()._run(audios, indices, pack, results, on_batch)
            self.passes.append((list(indices), pack, list(suspects)))
            return suspects

        def _split(self, window, d, frames=None):
            out = list(super()._split(window, d, frames))
            spoken = [(t.words[-1].end + p.start, i, lost)
                      for (i, t, lost), p in zip(out, window.placements) if t.words]
            if d.stop_reason == "repetition" and len(window.placements) > 1 and spoken:
                _, last, flagged = max(spoken)
                self.looped_in.append((last, flagged))
            return out

    speech = load_audio(Path(next(r["audio"] for r in sample_rows() if r["audio"].endswith("s18.wav"))))
    dec = Recorder(tiny_model, DecodeConfig(pack=True))
    results = dec.transcribe([speech] * 4)
    assert all(flagged for _, flagged in dec.looped_in)  # the clip a loop ended in: again
    first, *again = dec.passes
    assert first[0] == [0, 1, 2, 3] and first[1]
    for (_, _, suspects), (indices, _, _) in zip(dec.passes, again):
        assert indices == suspects  # each pass decodes exactly what the one before flagged
    assert not dec.passes[-1][2]  # nothing left suspect
    if len(dec.passes) > 1 and len(first[2]) > 1 and dec.passes[1][2]:
        assert dec.passes[-1][1] is False  # still suspect after packing again: alone
    alone = Decoder(tiny_model, DecodeConfig(pack=False)).transcribe([speech])[0]
    for r in results:  # each clip its own transcript, and no neighbour's copy of it
        assert r.words and len(r.words) <= 1.5 * len(alone.words) + 2
        assert r.text.lower().count("claims") <= 1
