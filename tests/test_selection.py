"""The contract every registered strategy passes, and each one's order."""

from __future__ import annotations

import pytest

from earmark.errors import UnknownStrategy
from earmark.ranking.strategies import STRATEGIES, Candidate, get_strategy


def pool(n: int = 20) -> list[Candidate]:
    return [Candidate(clip_id=i, duration=1.0 + (i * 7) % 5,
                      scores={"least_confidence": (i * 3 % 11) / 11, "min_word_prob": (i * 5 % 13) / 13,
                              "errors_per_second": (i * 7 % 17) / 17, "entropy": (i * 2 % 19) / 19})
            for i in range(n)]


@pytest.mark.parametrize("name", sorted(STRATEGIES))
class TestContract:
    def test_empty_pool(self, name):
        s = get_strategy(name)
        assert s.order([]) == []
        assert s.select([], count=5) == []
        assert s.select([], budget_seconds=60.0) == []

    def test_pool_smaller_than_request(self, name):
        p = pool(4)
        got = get_strategy(name).select(p, count=10)
        assert sorted(c.clip_id for c in got) == [0, 1, 2, 3]

    def test_subset_without_duplicates(self, name):
        p = pool()
        got = get_strategy(name).select(p, count=7)
        ids = [c.clip_id for c in got]
        assert len(ids) == 7 == len(set(ids)) and set(ids) <= {c.clip_id for c in p}

    def test_deterministic_under_seed(self, name):
        p = pool()
        a = [c.clip_id for c in get_strategy(name, seed=3).order(p)]
        b = [c.clip_id for c in get_strategy(name, seed=3).order(list(reversed(p)))]
        assert a == b

    def test_budget_never_exceeded_and_well_used(self, name):
        p = pool()
        got = get_strategy(name).select(p, budget_seconds=12.0)
        spent = sum(c.duration for c in got)
        assert spent <= 12.0
        assert spent >= 12.0 - max(c.duration for c in p)  # nothing left that would fit

    def test_order_is_a_permutation(self, name):
        p = pool()
        assert sorted(c.clip_id for c in get_strategy(name).order(p)) == list(range(20))


@pytest.mark.parametrize("name,score", [("least-confidence", "least_confidence"),
                                        ("min-word-prob", "min_word_prob"),
                                        ("errors-per-second", "errors_per_second"),
                                        ("entropy", "entropy")])
def test_score_strategies_put_most_uncertain_first(name, score):
    ordered = get_strategy(name).order(pool())
    values = [c.scores[score] for c in ordered]
    assert values == sorted(values, reverse=True)


def test_longest_first():
    ordered = get_strategy("longest-first").order(pool())
    assert [c.duration for c in ordered] == sorted((c.duration for c in pool()), reverse=True)


def test_random_depends_on_seed():
    a = [c.clip_id for c in get_strategy("random", seed=1).order(pool())]
    b = [c.clip_id for c in get_strategy("random", seed=2).order(pool())]
    assert a != b


def test_nan_score_goes_last():
    p = [Candidate(1, 1.0, {"entropy": float("nan")}), Candidate(2, 1.0, {"entropy": 0.1})]
    assert [c.clip_id for c in get_strategy("entropy").order(p)] == [2, 1]


def test_unknown_strategy_lists_the_known_ones():
    with pytest.raises(UnknownStrategy, match="errors-per-second"):
        get_strategy("smartest")
