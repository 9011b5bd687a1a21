"""The strategies from the literature: cost-aware, cluster-diverse, and file order."""

from __future__ import annotations

import numpy as np

from earmark.ranking.strategies import Candidate, get_strategy


def _clustered(n_per: int = 10) -> list[Candidate]:
    """Two tight groups of voices; group A holds every clip with a high score."""
    rng = np.random.default_rng(0)
    out = []
    for g, centre in enumerate((np.r_[1.0, 0, 0, 0], np.r_[0, 1.0, 0, 0])):
        for k in range(n_per):
            i = g * n_per + k
            emb = tuple(float(v) for v in centre + 0.01 * rng.standard_normal(4))
            out.append(Candidate(i, 2.0, {"errors_per_second": (1.0 if g == 0 else 0.1) + 0.01 * k}, emb))
    return out


def test_cluster_strategy_alternates_between_voices():
    order = get_strategy("cluster-errors-per-second").order(_clustered())
    groups = [c.clip_id // 10 for c in order[:4]]
    assert set(groups) == {0, 1}  # plain errors-per-second would take four of group A
    plain = get_strategy("errors-per-second").order(_clustered())
    assert {c.clip_id // 10 for c in plain[:4]} == {0}
    assert order[0].clip_id == plain[0].clip_id  # the most uncertain clip still goes first


def test_cluster_strategy_is_deterministic_and_a_permutation():
    p = _clustered()
    a = [c.clip_id for c in get_strategy("cluster-errors-per-second", seed=2).order(p)]
    b = [c.clip_id for c in get_strategy("cluster-errors-per-second", seed=2).order(p[::-1])]
    assert a == b and sorted(a) == list(range(20))


def test_cost_aware_prefers_the_longer_of_two_clips_with_equal_error_rates():
    short = Candidate(0, 1.0, {"errors_per_second": 0.5})
    long = Candidate(1, 10.0, {"errors_per_second": 0.5})
    assert [c.clip_id for c in get_strategy("errors-per-review-second").order([short, long])] == [1, 0]
    # errors-per-second cannot tell them apart: the tie goes to the clip id
    assert [c.clip_id for c in get_strategy("errors-per-second").order([short, long])] == [0, 1]


def test_file_order_is_import_order():
    p = [Candidate(i, 1.0, {"errors_per_second": float(i)}) for i in (3, 1, 2)]
    assert [c.clip_id for c in get_strategy("file-order").order(p)] == [1, 2, 3]
