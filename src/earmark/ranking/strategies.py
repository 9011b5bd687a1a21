"""Selection strategies behind one interface, and a registry by name.

A strategy orders a pool of candidates (most worth a person's time first); selection
under a budget of audio seconds then takes clips in that order. The loop never asks
which concrete strategy it holds.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from earmark.errors import UnknownStrategy


@dataclass(frozen=True)
class Candidate:
    """A clip as strategies see it."""

    clip_id: int
    duration: float  # seconds
    scores: Mapping[str, float] = field(default_factory=dict)  # higher: review sooner
    embedding: tuple[float, ...] | None = None  # mean-pooled encoder state, if computed


class Strategy:
    """Base class: subclasses implement :meth:`priority` (or override :meth:`order`)."""

    name: ClassVar[str] = ""
    #: the score a strategy ranks by, shown in the queue
    score_name: ClassVar[str | None] = None
    #: whether :meth:`order` reads :attr:`Candidate.embedding` (loading them costs memory)
    uses_embeddings: ClassVar[bool] = False

    def __init__(self, seed: int = 0):
        self.seed = seed

    def priority(self, c: Candidate) -> float:
        """Higher is reviewed first."""
        raise NotImplementedError

    def order(self, pool: Sequence[Candidate]) -> list[Candidate]:
        """The pool, most worth reviewing first; ties broken by clip id (deterministic)."""
        return sorted(pool, key=lambda c: (-_finite(self.priority(c)), c.clip_id))

    def select(self, pool: Sequence[Candidate], *, count: int | None = None,
               budget_seconds: float | None = None) -> list[Candidate]:
        """Take candidates in :meth:`order` until ``count`` clips or ``budget_seconds``.

        A clip that would overrun the budget is passed over and smaller ones after it
        may still fit, so the budget is used well without ever being exceeded.
        """
        chosen: list[Candidate] = []
        spent = 0.0
        for c in self.order(pool):
            if count is not None and len(chosen) >= count:
                break
            if budget_seconds is not None and spent + c.duration > budget_seconds:
                continue
            chosen.append(c)
            spent += c.duration
        return chosen


def _finite(x: float) -> float:
    return x if np.isfinite(x) else float("-inf")


STRATEGIES: dict[str, type[Strategy]] = {}


def register(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    """Class decorator adding a strategy to :data:`STRATEGIES` under ``name``."""

    def deco(cls: type[Strategy]) -> type[Strategy]:
        cls.name = name
        STRATEGIES[name] = cls
        return cls

    return deco


def get_strategy(name: str, seed: int = 0) -> Strategy:
    """Instantiate a registered strategy.

    Raises
    ------
    UnknownStrategy
        The name is not registered; the message lists the names that are.
    """
    try:
        return STRATEGIES[name](seed=seed)
    except KeyError:
        raise UnknownStrategy(f"unknown strategy {name!r}; choose one of: "
                              f"{', '.join(sorted(STRATEGIES))}") from None


class _ByScore(Strategy):
    """Orders by one clip score, named in the class statement:
    ``class X(_ByScore, score="errors_per_second")``."""

    def __init_subclass__(cls, *, score: str, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.score_name = score

    def priority(self, c: Candidate) -> float:
        return c.scores.get(self.score_name or "", float("nan"))


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
