"""Selection strategies behind one interface, and a registry by name.

A strategy orders a pool of candidates (most worth a person's time first); selection
under a budget of audio seconds then takes clips in that order. The loop never asks
which concrete strategy it holds.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

# the interface and the registry live apart so that other modules can register strategies
from earmark.ranking.registry import STRATEGIES as STRATEGIES, Candidate as Candidate, Strategy as Strategy
from earmark.ranking.registry import _ByScore, _finite as _finite, get_strategy as get_strategy, register


@register("random")
class RandomStrategy(Strategy):
    """Uniformly random order, reproducible from the seed (the baseline)."""

    def order(self, pool: Sequence[Candidate]) -> list[Candidate]:
        items = sorted(pool, key=lambda c: c.clip_id)
        random.Random(self.seed).shuffle(items)
        return items


@register("least-confidence")
class LeastConfidence(_ByScore, score="least_confidence"):
    """``1 - exp(mean token log-prob)``: the clip's overall doubt."""


@register("min-word-prob")
class MinWordProb(_ByScore, score="min_word_prob"):
    """The weakest word: ``1 - min word probability``."""


@register("errors-per-second")
class ErrorsPerSecond(_ByScore, score="errors_per_second"):
    """Expected word errors per second of audio: most fixes per minute listened."""


@register("entropy")
class Entropy(_ByScore, score="entropy"):
    """Mean token entropy."""


@register("longest-first")
class LongestFirst(Strategy):
    """Longest clips first (a baseline that ignores the model)."""

    def priority(self, c: Candidate) -> float:
        return c.duration


@register("diverse-errors-per-second")
class DiverseErrorsPerSecond(_ByScore, score="errors_per_second"):
    """The most uncertain clips (errors per second), spread out by k-center greedy.

    The top ``shortlist`` share of the pool by errors per second is ordered by
    k-center greedy in the space of mean-pooled encoder states (each next clip the one
    farthest from those already taken), so a round does not spend its budget on ten
    clips of the same voice and the same trouble; the rest of the pool follows in
    score order. Without embeddings it is plain ``errors-per-second``.
    """

    shortlist = 0.3  # share of the pool, by score, that the spread is chosen from
    uses_embeddings = True

    def order(self, pool: Sequence[Candidate]) -> list[Candidate]:
        base = super().order(pool)
        top = base[: max(1, int(np.ceil(self.shortlist * len(base))))] if base else []
        if len(top) < 3 or any(c.embedding is None for c in top):
            return base
        return k_center_order(top) + base[len(top):]


def k_center_order(items: Sequence[Candidate]) -> list[Candidate]:
    """Greedy k-center order: the first item, then each time the one farthest (cosine
    distance of centred embeddings) from every item already taken."""
    x = np.asarray([c.embedding for c in items], dtype=np.float64)
    x = x - x.mean(axis=0)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-12
    taken = [0]
    dist = 1.0 - x @ x[0]
    dist[0] = -np.inf
    for _ in range(len(items) - 1):
        k = int(np.argmax(dist))
        taken.append(k)
        dist = np.minimum(dist, 1.0 - x @ x[k])
        dist[taken] = -np.inf
    return [items[k] for k in taken]


DEFAULT_STRATEGY = "errors-per-second"


def shown_score_name(name: str) -> str:
    """The clip score the queue shows beside a clip ordered by strategy ``name``.

    The strategy's own score; for orders that have none (random, longest-first), the
    default strategy's, so the queue still says how doubtful each clip is.
    """
    return get_strategy(name).score_name or get_strategy(DEFAULT_STRATEGY).score_name or ""


# strategies from the literature register themselves on import (kept in their own module)
import earmark.ranking.literature  # noqa: E402,F401
