"""The strategy interface, and the registry of strategies by name.

Apart from :mod:`earmark.ranking.strategies`, so that the modules that define strategies
(``strategies`` itself, :mod:`earmark.ranking.literature`) import it and ``strategies``
imports them without an import cycle.
"""

from __future__ import annotations

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


#: orders that do not rank by the model: their corrections are a fair sample of the pool
#: (:func:`earmark.evaluate.calibration.unreviewed` needs to know)
UNRANKED_ORDERS = ("random", "file-order")
