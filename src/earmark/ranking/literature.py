"""Strategies from the active-learning literature, and the file-order baseline.

Registered in :data:`earmark.ranking.strategies.STRATEGIES` when that module loads.

- ``errors-per-review-second``: cost-aware uncertainty (Settles et al. 2008, "Active
  learning with real annotation costs"): expected word errors per second of the
  annotator's time (listening, replays, typing, by the cost model), not per second of
  audio, so short clips pay their fixed overhead.
- ``cluster-errors-per-second``: cluster-diverse uncertainty (Kundacina et al. 2024):
  the pool's mean encoder states in k-means clusters, clusters visited in turn, each
  time its most uncertain clip left, so one voice or one kind of trouble does not take
  a whole round.
- ``file-order``: the order the clips were imported, what a person does without earmark.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from earmark.config import CostConfig
from earmark.ranking.registry import Candidate, Strategy, _ByScore, register


@register("file-order")
class FileOrder(Strategy):
    """Clips in the order they were imported (clip id): review without a ranking."""

    def priority(self, c: Candidate) -> float:
        return -float(c.clip_id)


@register("errors-per-review-second")
class ErrorsPerReviewSecond(_ByScore, score="errors_per_second"):
    """Expected word errors per second of review (the cost model's seconds)."""

    cost = CostConfig()

    def priority(self, c: Candidate) -> float:
        rate = c.scores.get("errors_per_second", float("nan"))
        if not np.isfinite(rate):
            return float("nan")
        errors = rate * c.duration
        k = self.cost
        return errors / (k.seconds_per_clip + k.replay_factor * c.duration + k.seconds_per_edit * errors)


@register("cluster-errors-per-second")
class ClusterErrorsPerSecond(_ByScore, score="errors_per_second"):
    """Errors per second, taken in turn from k-means clusters of the encoder states.

    About ``sqrt(n / 2)`` clusters for ``n`` clips; clusters are visited in the order
    of their best clip, each giving its next most uncertain clip. Without embeddings
    it is plain ``errors-per-second``.
    """

    uses_embeddings = True

    def order(self, pool: Sequence[Candidate]) -> list[Candidate]:
        base = super().order(pool)
        if len(base) < 4 or any(c.embedding is None for c in base):
            return base
        from sklearn.cluster import KMeans

        items = sorted(base, key=lambda c: c.clip_id)  # the clustering must not see input order
        x = np.asarray([c.embedding for c in items], dtype=np.float64)
        x = x - x.mean(axis=0)
        x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-12
        k = max(2, min(len(items) - 1, round(math.sqrt(len(items) / 2))))
        labels = KMeans(n_clusters=k, n_init=3, random_state=self.seed).fit_predict(x)
        label = {c.clip_id: int(l) for c, l in zip(items, labels)}
        queues: dict[int, list[Candidate]] = {}
        for c in base:  # score order within each cluster
            queues.setdefault(label[c.clip_id], []).append(c)
        turn = list(queues)  # clusters in the order of their best clip
        out: list[Candidate] = []
        while turn:
            for l in list(turn):
                out.append(queues[l].pop(0))
                if not queues[l]:
                    turn.remove(l)
        return out
