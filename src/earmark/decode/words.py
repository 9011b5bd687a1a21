"""From a decoded window to each clip's words: word times by Whisper's DTW recipe over the
recorded cross-attention rows (:func:`align_words`), and a packed window's words and
tokens given back to the clips they fall in (:func:`split_window`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from earmark.config import SAMPLE_RATE, DecodeConfig
from earmark.decode.dtw import dtw_jumps
from earmark.decode.packing import Window, owners, suspect
from earmark.decode.repetition import compression_ratio
from earmark.decode.steps import Decoded
from earmark.decode.types import TokenScore, Transcript, WordScore

if TYPE_CHECKING:
    import torch

FRAMES_PER_SECOND = 100  # mel frames
POSITIONS_PER_SECOND = 50  # encoder positions (whisper.timing.TOKENS_PER_SECOND)
# whisper.transcribe's defaults for merging punctuation into words
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


def align_words(tokenizer: Any, window: Window, d: Decoded) -> list[WordScore]:
    """Word times by Whisper's DTW recipe over the recorded cross-attention rows."""
    import torch
    from whisper.timing import WordTiming, median_filter, merge_punctuations

    tk = tokenizer
    if not d.tokens or d.qk is None:
        return []
    num_frames = int(round(window.audio.size / SAMPLE_RATE * FRAMES_PER_SECOND))
    weights = d.qk[:, :, : max(num_frames // 2, 1)]  # heads x tokens x frames
    weights = weights.softmax(dim=-1)
    std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
    weights = median_filter((weights - mean) / std, 7)
    matrix = weights.mean(dim=0)[len(tk.sot_sequence) : -1]
    jump_times = dtw_jumps(-matrix.double().numpy()) / POSITIONS_PER_SECOND

    words, word_tokens = tk.split_to_word_tokens(d.tokens + [tk.eot])
    if len(word_tokens) <= 1:
        return []
    bounds = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    timings = [WordTiming(word, toks, float(jump_times[a]), float(jump_times[b]),
                          float(np.mean(d.probs[a:b])))
               for word, toks, a, b in zip(words[:-1], word_tokens[:-1], bounds[:-1], bounds[1:])]
    # punctuation joins its word (as whisper does), so a packed window's "." never
    # starts the next clip
    merge_punctuations(timings, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS)
    return [WordScore(t.word, t.start, t.end, t.probability, len(t.tokens))
            for t in timings if t.word]


def split_window(tokenizer: Any, cfg: DecodeConfig, window: Window, d: Decoded,
                 frames: "torch.Tensor | None" = None) -> Iterable[tuple[int, Transcript, bool]]:
    """Give each clip of the window its words and tokens, in clip-relative times.

    Yields (clip index, transcript, suspect): ``suspect`` marks a clip of a packed
    window whose words look lost (see :func:`earmark.decode.packing.suspect`). With the
    window's encoder output ``frames`` (positions, state), each clip also gets the
    mean state over its own positions as its embedding.
    """
    words = align_words(tokenizer, window, d)
    token_scores = [TokenScore(t, tokenizer.decode([t]), p, lp, e)
                    for t, p, lp, e in zip(d.tokens, d.probs, d.logprobs, d.entropies)]
    packed = len(window.placements) > 1
    owner = owners(window.placements, words) if packed else [0] * len(words)
    # tokens follow their word; tokens of no word (none with whole-word splitting) go first
    spans, pos = [], 0
    for w in words:
        spans.append((pos, pos + w.n_tokens))
        pos += w.n_tokens
    for k, place in enumerate(window.placements):
        mine = [i for i, o in enumerate(owner) if o == k]
        toks = ([t for i in mine for t in token_scores[spans[i][0] : spans[i][1]]] if packed
                else token_scores)
        clip_words = tuple(
            WordScore(words[i].word, max(0.0, words[i].start - place.start),
                      min(place.duration, max(0.0, words[i].end - place.start)),
                      words[i].p, words[i].n_tokens) for i in mine)
        text = ("".join(w.word for w in clip_words).strip() if packed
                else tokenizer.decode(d.tokens).strip())
        # a loop cut to its first pass may have swallowed the words of the clip it
        # ended in (near-identical clips side by side copy one into another), so that
        # clip is decoded again with other neighbours, then alone. Only that one: the
        # window's earlier clips were read before the loop, and decoding them again
        # as well cost 4 % more windows for no lower WER (benchmarks/RESULTS.md)
        looped = d.stop_reason == "repetition" and bool(mine) and mine[-1] == len(words) - 1
        lost = packed and (looped or suspect(place, [words[i] for i in mine], cfg))
        embedding: tuple[float, ...] = ()
        if frames is not None:
            first = min(int(place.start * POSITIONS_PER_SECOND), frames.shape[0] - 1)
            last = min(frames.shape[0], max(first + 1, int((place.start + place.duration)
                                                           * POSITIONS_PER_SECOND)))
            embedding = tuple(frames[first:last].mean(dim=0).tolist())
        yield place.index, Transcript(
            text=text, tokens=tuple(toks), words=clip_words, duration=place.duration,
            avg_logprob=float(np.mean([t.logprob for t in toks])) if toks else 0.0,
            no_speech_prob=d.no_speech_prob, compression_ratio=compression_ratio(text),
            stop_reason=d.stop_reason, embedding=embedding), lost
