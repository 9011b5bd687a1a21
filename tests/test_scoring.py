"""Pure scoring functions on hand-made arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from earmark.ranking import scoring as sc


def test_least_confidence():
    assert sc.least_confidence([0.0, 0.0]) == pytest.approx(0.0)
    assert sc.least_confidence([math.log(0.5)] * 3) == pytest.approx(0.5)
    assert sc.least_confidence([]) == 1.0


def test_min_word_uncertainty():
    assert sc.min_word_uncertainty([0.9, 0.2, 0.99]) == pytest.approx(0.8)
    assert sc.min_word_uncertainty([]) == 1.0


def test_errors_per_second_counts_expected_wrong_words_per_second():
    # two words at p=0.5 and one sure word in 2 s: one expected error, 0.5 per second
    assert sc.errors_per_second([0.5, 0.5, 1.0], 2.0) == pytest.approx(0.5)
    assert sc.errors_per_second([], 3.0) == sc.EMPTY_ERRORS_PER_SECOND


def test_errors_per_second_prefers_short_dense_clips():
    long_clip = sc.errors_per_second([0.5] * 4 + [1.0] * 40, 20.0)
    short_clip = sc.errors_per_second([0.5] * 2, 2.0)
    assert short_clip > long_clip


def test_mean_entropy():
    assert sc.mean_entropy([0.5, 1.5]) == pytest.approx(1.0)
    assert sc.mean_entropy([]) == 0.0


@pytest.mark.parametrize("how,expected", [("mean", 2.0), ("min", 1.0), ("max", 3.0), ("sum", 6.0),
                                          ("sum_per_second", 3.0)])
def test_aggregate(how, expected):
    assert sc.aggregate(np.array([1.0, 2.0, 3.0]), how, duration=2.0) == pytest.approx(expected)


def test_aggregate_errors():
    assert math.isnan(sc.aggregate([], "mean"))
    with pytest.raises(ValueError):
        sc.aggregate([1.0], "sum_per_second")
    with pytest.raises(ValueError):
        sc.aggregate([1.0], "median")  # type: ignore[arg-type]


def test_hallucination_flags():
    base = dict(n_words=5, duration=3.0, avg_logprob=-0.2, no_speech_prob=0.1,
                compression_ratio=1.2, stop_reason="eot")
    assert sc.hallucination_flags(**base) == ()
    assert "loop" in sc.hallucination_flags(**{**base, "stop_reason": "repetition"})
    assert "loop" in sc.hallucination_flags(**{**base, "compression_ratio": 3.0})
    assert "no-speech" in sc.hallucination_flags(**{**base, "no_speech_prob": 0.9, "avg_logprob": -1.5})
    assert "too-fast" in sc.hallucination_flags(**{**base, "n_words": 40})
    assert sc.hallucination_flags(**{**base, "n_words": 0}) == ("empty",)


def test_clip_scores_has_every_strategy_score():
    from earmark.ranking.strategies import STRATEGIES

    scores = sc.clip_scores(token_logprobs=[-0.1], token_entropies=[0.3], word_probs=[0.9], duration=1.0)
    needed = {cls.score_name for cls in STRATEGIES.values() if cls.score_name}
    assert needed <= scores.keys()
