"""Word diffs of corrections, the calibration fitted on them, and the pool's estimated WER."""

from __future__ import annotations

import numpy as np

from earmark.config import CostConfig
from earmark.evaluate.calibration import (Calibration, clip_terms, describe, estimate_pool, fit_calibration,
                                          review_to_target, word_diff)


def test_word_diff_marks_changed_words_and_counts_deletions():
    d = word_diff([" The", " cat", " sat", " there."], "The dog sat on the mat there")
    assert d.labels == (0, 1, 0, 0)
    assert d.deletions == 3  # on, the, mat
    assert d.reference_words == 7
    assert d.errors == 4


def test_word_diff_of_an_empty_hypothesis_deletes_every_word():
    d = word_diff([], "three words here")
    assert d.labels == () and d.deletions == 3 and d.reference_words == 3


def test_word_diff_of_an_unchanged_hypothesis_has_no_errors():
    d = word_diff([" Hello,", " world."], "hello world")
    assert d.errors == 0


def _synthetic(n_clips: int, rng: np.random.Generator, bias: float = 0.0):
    """Clips whose words are wrong with chance (1 - p)^2 + bias: the model is over-sure."""
    probs, diffs = [], []
    for _ in range(n_clips):
        p = rng.uniform(0.2, 1.0, 8)
        wrong = rng.random(8) < np.clip((1 - p) ** 2 + bias, 0, 1)
        probs.append(list(p))
        from earmark.evaluate.calibration import WordDiff

        diffs.append(WordDiff(tuple(int(x) for x in wrong), 0, 8))
    return probs, diffs


def test_too_few_words_falls_back_to_raw_probabilities_and_says_so():
    cal = fit_calibration([[0.9, 0.2]], [word_diff([" a", " b"], "a c")], min_words=30)
    assert not cal.fitted and "raw" in cal.note
    assert np.allclose(cal.error_prob([0.9, 0.2]), [0.1, 0.8])


def test_isotonic_calibration_is_monotone_and_closer_to_truth_than_raw():
    rng = np.random.default_rng(0)
    probs, diffs = _synthetic(300, rng)
    cal = fit_calibration(probs, diffs)
    assert cal.fitted
    grid = np.linspace(0.2, 1.0, 50)
    q = cal.error_prob(grid)
    assert np.all(np.diff(q) <= 1e-12)  # surer words are never more likely wrong
    truth = (1 - grid) ** 2
    assert np.mean(np.abs(q - truth)) < np.mean(np.abs((1 - grid) - truth))


def test_pool_estimate_tracks_the_true_wer_with_an_interval_around_it():
    rng = np.random.default_rng(1)
    probs, diffs = _synthetic(300, rng)
    cal = fit_calibration(probs, diffs)
    pool_p, pool_d = _synthetic(400, rng)
    true_wer = sum(sum(d.labels) for d in pool_d) / (8 * 400)
    est = estimate_pool(cal, pool_p, [3.0] * 400, (probs, diffs), resamples=50)
    assert est.wer_low <= est.wer <= est.wer_high
    assert abs(est.wer - true_wer) < 0.03
    assert est.wer_low < true_wer < est.wer_high
    raw = estimate_pool(Calibration(False, 0, 0.0, 1.0), pool_p, [3.0] * 400)
    assert abs(raw.wer - true_wer) > abs(est.wer - true_wer)


def test_review_to_target_reached_and_remaining():
    cal = Calibration(False, 0, 0.0, 1.0)
    probs = [[0.1, 0.1], [0.9, 0.9], [0.5, 0.5]]  # expected errors 1.8, 0.2, 1.0
    err, words = clip_terms(cal, probs, [2.0, 2.0, 2.0])
    done = review_to_target(err, words, [2.0, 2.0, 2.0], reviewed_words=0.0, target_wer=0.9)
    assert done.reached and done.clips == 0
    left = review_to_target(err, words, [2.0, 2.0, 2.0], reviewed_words=0.0, target_wer=0.1,
                            cost=CostConfig(replay_factor=1.0, seconds_per_edit=0.0, seconds_per_clip=0.0))
    assert not left.reached and left.reachable
    assert left.clips == 2  # the worst clip, then the next: 0.2 / 6 words left
    assert abs(left.audio_minutes - 4 / 60) < 1e-9
    text = "\n".join(describe(estimate_pool(cal, probs, [2.0] * 3), left))
    assert "review left" in text and "raw model probabilities" in text
    assert "REACHED" in "\n".join(describe(estimate_pool(cal, probs, [2.0] * 3), done))


def test_an_audit_corrects_a_calibration_fitted_on_the_queues_worst_clips():
    from earmark.evaluate.calibration import estimate_audited

    rng = np.random.default_rng(5)
    # the queue reviewed clips whose words are wrong more often than the rest's at the
    # same probability (bias 0.3): a calibration fitted on them over-estimates the rest
    head_p, head_d = _synthetic(60, rng, bias=0.3)
    rest_p, rest_d = _synthetic(400, rng)
    durations = [3.0] * len(rest_p)
    truth = sum(d.errors for d in rest_d) / sum(d.reference_words for d in rest_d)
    plain = estimate_pool(fit_calibration(head_p, head_d), rest_p, durations, resamples=0)
    assert plain.wer > truth + 0.1
    # the whole rest as the audit: the ratio estimator gives its errors exactly
    full = estimate_audited(head_p, head_d, rest_p, rest_d, durations, rest_p, durations)
    assert abs(full.errors - sum(d.errors for d in rest_d)) < 1e-6 and "scaled by" in full.note
    # a tenth of it at random lands far closer than the biased fit
    k = rng.choice(len(rest_p), 40, replace=False)
    part = estimate_audited(head_p, head_d, [rest_p[i] for i in k], [rest_d[i] for i in k], [3.0] * 40,
                            rest_p, durations)
    assert abs(part.wer - truth) < abs(plain.wer - truth) / 2
    # no audit: the plain calibrated estimate
    assert estimate_audited(head_p, head_d, [], [], [], rest_p, durations).wer == plain.wer
