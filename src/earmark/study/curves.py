"""Pool WER against review cost, from what each round reviewed. Pure functions.

The pool's transcripts after some review are the corrections of the reviewed clips
(no errors) and the current model's hypotheses for the rest. Within a round each
reviewed clip removes its own errors at its cost; the fine-tune after the round
changes the rest's errors at no review cost (a vertical step of the curve).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Review:
    """One reviewed clip: its hypothesis's word errors when shown, and its cost."""

    clip: int
    duration: float  # seconds of audio
    errors: int  # word errors of the hypothesis shown (the words a person edits)
    seconds: float  # annotator seconds (earmark.study.cost)


@dataclass(frozen=True)
class RoundTrace:
    """A round's review, between the model it was shown and the one trained after it."""

    round: int
    errors_start: int  # word errors of the unreviewed pool under the model shown
    reviews: tuple[Review, ...]
    errors_end: int  # word errors of the still unreviewed pool under the new model


@dataclass(frozen=True)
class ReviewCurve:
    """Points of the pool's WER against cumulative review cost."""

    audio_minutes: np.ndarray
    annotator_minutes: np.ndarray
    wer: np.ndarray


def review_curve(traces: Sequence[RoundTrace], pool_words: int) -> ReviewCurve:
    """The pool's WER after each reviewed clip and after each round's fine-tune."""
    audio, annot, wer = [0.0], [0.0], []
    a = s = 0.0
    for k, t in enumerate(traces):
        errors = t.errors_start
        if k == 0:
            wer.append(errors / pool_words)
        else:  # the previous round's end: the same model, the same clips
            audio.append(a), annot.append(s), wer.append(errors / pool_words)
        for r in t.reviews:
            errors -= r.errors
            a += r.duration / 60
            s += r.seconds / 60
            audio.append(a), annot.append(s), wer.append(errors / pool_words)
        audio.append(a), annot.append(s), wer.append(t.errors_end / pool_words)
    if not traces:
        wer.append(float("nan"))
    return ReviewCurve(np.asarray(audio), np.asarray(annot), np.asarray(wer, dtype=float))


def wer_at(cost: Sequence[float], wer: Sequence[float], at: float) -> float:
    """The curve's WER after ``at`` of cost (the last point at or before it)."""
    c = np.asarray(cost, float)
    k = int(np.searchsorted(c, at, side="right")) - 1
    return float(np.asarray(wer, float)[max(k, 0)])


def oracle_order(errors: Sequence[float], durations: Sequence[float]) -> list[int]:
    """Positions sorted by true word errors per second, most first (ties: position): no
    ranking can remove errors faster per minute of audio."""
    rate = np.asarray(errors, float) / np.maximum(np.asarray(durations, float), 1e-6)
    return sorted(range(len(rate)), key=lambda i: (-rate[i], i))


def take_budget(order: Sequence[int], durations: Sequence[float], budget_seconds: float) -> list[int]:
    """Items in ``order`` until the budget; one that would overrun it is passed over
    (as :meth:`earmark.ranking.strategies.Strategy.select` does)."""
    out, spent = [], 0.0
    for i in order:
        if spent + durations[i] > budget_seconds:
            continue
        out.append(i)
        spent += durations[i]
    return out


def oracle_bound(errors: Sequence[float], durations: Sequence[float], pool_words: int,
                 at: Sequence[float]) -> np.ndarray:
    """The lowest pool WER any order can reach at each review cost ``at`` (audio seconds)
    with one model: clips by true errors per second, the last one counted in part (the
    fractional knapsack's optimum, so no whole-clip order goes below it)."""
    order = oracle_order(errors, durations)
    e = np.asarray(errors, float)[order]
    d = np.asarray(durations, float)[order]
    cost = np.concatenate([[0.0], np.cumsum(d)])
    removed = np.concatenate([[0.0], np.cumsum(e)])
    return (e.sum() - np.interp(np.asarray(at, float), cost, removed)) / pool_words
