"""A relative WER reduction averaged over several speaker splits, with a bootstrap interval.

One speaker split decides which speakers correct and which are tested, and the figure
moves with it (18 % on one split, 33 % on another): a fine-tuning figure is reported as the
mean over splits. The interval draws the splits again with replacement and, within each
drawn split, its test speakers with replacement, so it holds both sources of spread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class SplitErrors:
    """One split's test set: word errors per clip before and after, and each clip's speaker."""

    before: Sequence[int]
    after: Sequence[int]
    speakers: Sequence[str]

    @property
    def relative(self) -> float:
        return float(1.0 - np.sum(self.after) / np.sum(self.before))


@dataclass(frozen=True)
class MeanReduction:
    mean: float
    low: float
    high: float
    per_split: tuple[float, ...]


def _draws(splits: Sequence[SplitErrors], rounds: int, seed: int) -> np.ndarray:
    """Per bootstrap round, the mean over drawn splits of the relative reduction of their
    drawn test speakers; the same seed draws the same splits and speakers for any ``after``
    of the same test sets, so two models' rounds pair up."""
    rng = np.random.default_rng(seed)
    per = []  # per split: errors before and after summed by speaker
    for s in splits:
        _, index = np.unique(np.asarray([str(g) for g in s.speakers]), return_inverse=True)
        n = int(index.max()) + 1
        per.append((np.bincount(index, np.asarray(s.before, float), n),
                    np.bincount(index, np.asarray(s.after, float), n)))
    means = np.empty(rounds)
    for r in range(rounds):
        rel = []
        for k in rng.integers(0, len(splits), size=len(splits)):
            a, b = per[k]
            draw = rng.integers(0, a.size, size=a.size)
            total = a[draw].sum()
            rel.append(1.0 - b[draw].sum() / total if total > 0 else np.nan)
        means[r] = np.nanmean(rel)
    return means


def mean_reduction(splits: Sequence[SplitErrors], level: float = 0.95, rounds: int = 2000,
                   seed: int = 0) -> MeanReduction:
    """The mean over splits of each split's relative reduction, with a two-level bootstrap."""
    means = _draws(splits, rounds, seed)
    tail = (1.0 - level) / 2 * 100
    relative = tuple(s.relative for s in splits)
    return MeanReduction(float(np.mean(relative)), float(np.nanpercentile(means, tail)),
                         float(np.nanpercentile(means, 100 - tail)), relative)


def mean_difference(a: Sequence[SplitErrors], b: Sequence[SplitErrors], level: float = 0.95,
                    rounds: int = 2000, seed: int = 0) -> MeanReduction:
    """How much more model A cuts than model B (mean over splits), paired: the same test
    sets, splits and speakers drawn for both."""
    diff = _draws(a, rounds, seed) - _draws(b, rounds, seed)
    tail = (1.0 - level) / 2 * 100
    per = tuple(x.relative - y.relative for x, y in zip(a, b))
    return MeanReduction(float(np.mean(per)), float(np.nanpercentile(diff, tail)),
                         float(np.nanpercentile(diff, 100 - tail)), per)


def mean_figures(name: str, m: MeanReduction) -> dict:
    """``NAME_mean_splits``, ``NAME_mean_splits_low``/``_high`` and ``NAME_splits`` (per split)."""
    return {f"{name}_mean_splits": round(m.mean, 4), f"{name}_mean_splits_low": round(m.low, 4),
            f"{name}_mean_splits_high": round(m.high, 4),
            f"{name}_splits": [round(x, 4) for x in m.per_split]}
