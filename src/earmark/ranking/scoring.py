"""Clip scores from token and word arrays. Pure functions: arrays in, numbers out.

Every uncertainty score is oriented so that **higher means review sooner**. A clip
with no words at all (the model wrote nothing) scores as the most uncertain, because
an empty hypothesis for a clip that passed the silence check is usually a miss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from earmark.decode.types import Transcript

# Expected word errors per second for a clip with no words: every word of speech at a
# typical 2.5 words/s was missed.
EMPTY_ERRORS_PER_SECOND = 2.5
# Hallucination thresholds, from whisper.transcribe's defaults where it has one.
COMPRESSION_RATIO_MAX = 2.4
NO_SPEECH_MIN = 0.6
LOGPROB_MIN = -1.0
WORDS_PER_SECOND_MAX = 6.0

Aggregate = Literal["mean", "min", "max", "sum", "sum_per_second"]


def aggregate(values: Sequence[float] | np.ndarray, how: Aggregate = "mean",
              duration: float | None = None) -> float:
    """Reduce per-token or per-word values to one clip value.

    Parameters
    ----------
    values
        Per-item values.
    how
        ``mean``, ``min``, ``max``, ``sum``, or ``sum_per_second`` (needs ``duration``).
    duration
        Clip length in seconds.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return float("nan")
    if how == "mean":
        return float(v.mean())
    if how == "min":
        return float(v.min())
    if how == "max":
        return float(v.max())
    if how == "sum":
        return float(v.sum())
    if how == "sum_per_second":
        if not duration or duration <= 0:
            raise ValueError("sum_per_second needs a positive duration")
        return float(v.sum() / duration)
    raise ValueError(f"unknown aggregate {how!r}")


def least_confidence(token_logprobs: Sequence[float] | np.ndarray) -> float:
    """``1 - exp(mean token log-probability)``: 0 for a sure clip, toward 1 when unsure."""
    if len(token_logprobs) == 0:
        return 1.0
    return 1.0 - float(np.exp(aggregate(token_logprobs, "mean")))


def min_word_uncertainty(word_probs: Sequence[float] | np.ndarray) -> float:
    """``1 - min word probability``: how unsure the model is of its weakest word."""
    if len(word_probs) == 0:
        return 1.0
    return 1.0 - aggregate(word_probs, "min")


def errors_per_second(word_probs: Sequence[float] | np.ndarray, duration: float) -> float:
    """Expected word errors per second of audio: ``sum(1 - p_word) / duration``.

    Each word is wrong with probability ``1 - p``, so the sum is the expected count of
    wrong words; per second, because a person's effort grows with the audio's length.
    """
    if len(word_probs) == 0:
        return EMPTY_ERRORS_PER_SECOND
    return aggregate(1.0 - np.asarray(word_probs, dtype=np.float64), "sum_per_second", duration)


def mean_entropy(token_entropies: Sequence[float] | np.ndarray) -> float:
    """Mean predictive entropy per token, in nats (0 when there are no tokens)."""
    if len(token_entropies) == 0:
        return 0.0
    return aggregate(token_entropies, "mean")


def hallucination_flags(*, n_words: int, duration: float, avg_logprob: float,
                        no_speech_prob: float, compression_ratio: float,
                        stop_reason: str) -> tuple[str, ...]:
    """Signs that the hypothesis is not what was said.

    Returns
    -------
    tuple[str, ...]
        Any of ``"loop"`` (repetition or token cap hit, or text that compresses too
        well), ``"no-speech"`` (the model thinks there is no speech yet wrote words),
        ``"too-fast"`` (more words per second than people speak), ``"empty"``.
    """
    flags = []
    if stop_reason != "eot" or compression_ratio > COMPRESSION_RATIO_MAX:
        flags.append("loop")
    if n_words and no_speech_prob > NO_SPEECH_MIN and avg_logprob < LOGPROB_MIN:
        flags.append("no-speech")
    if duration > 0 and n_words / duration > WORDS_PER_SECOND_MAX:
        flags.append("too-fast")
    if n_words == 0:
        flags.append("empty")
    return tuple(flags)


def clip_scores(*, token_logprobs: Sequence[float], token_entropies: Sequence[float],
                word_probs: Sequence[float], duration: float) -> dict[str, float]:
    """All clip scores by name (each: higher means review sooner)."""
    return {
        "least_confidence": least_confidence(token_logprobs),
        "min_word_prob": min_word_uncertainty(word_probs),
        "errors_per_second": errors_per_second(word_probs, duration),
        "entropy": mean_entropy(token_entropies),
    }


def transcript_scores(t: "Transcript") -> dict[str, float]:
    """:func:`clip_scores` of a transcript: its tokens' log-probabilities and entropies,
    its words' probabilities and its duration."""
    return clip_scores(token_logprobs=[x.logprob for x in t.tokens],
                       token_entropies=[x.entropy for x in t.tokens],
                       word_probs=[w.p for w in t.words], duration=t.duration)
