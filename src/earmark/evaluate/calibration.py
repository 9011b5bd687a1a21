"""Calibrated word confidence, the pool's estimated WER, and the review left to a target.

Every correction tells which words of the hypothesis it started from were wrong
(:func:`word_diff`, computed on the fly from the stored hypothesis words and the typed
text, so no column is needed). Those labels fit an isotonic map from a word's
probability to its chance of being wrong (:func:`fit_calibration`); with too few
corrected words the raw probabilities stand (``1 - p``) and the result says so. The
map turns the unreviewed transcripts into expected word errors and a WER with an
interval (:func:`estimate_pool`). What earmark reports (:func:`unreviewed`) joins the
raw probabilities and a calibration that sees each word's clip, and tells how much
review a target WER still needs (:func:`review_to_target`) from the same numbers.

Pure functions: arrays and strings in, numbers out; :mod:`earmark.review.stopping`
reads them from a project.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from earmark.config import CostConfig

#: words a person says per second, for a clip whose hypothesis is empty
SPEECH_WORDS_PER_SECOND = 2.5


@dataclass(frozen=True)
class WordDiff:
    """A correction against the hypothesis it started from."""

    labels: tuple[int | None, ...]  # per hypothesis word: 1 wrong, 0 right, None not scored
    deletions: int  # reference words the hypothesis left out
    reference_words: int  # words of the correction (normalized)

    @property
    def errors(self) -> int:
        """Word errors of the hypothesis: wrong hypothesis words plus deletions (an
        upper bound of the WER numerator: a word split by the normalizer counts once)."""
        return sum(1 for x in self.labels if x) + self.deletions


@dataclass(frozen=True)
class Calibration:
    """Word probability -> chance the word is wrong, fitted on corrections."""

    fitted: bool  # False: too few corrected words; raw ``1 - p`` is used
    words: int  # corrected hypothesis words it was fitted on
    deletion_rate: float  # deleted reference words per scored hypothesis word
    reference_ratio: float  # reference words per scored hypothesis word
    x: tuple[float, ...] = ()  # isotonic knots: word probability ...
    y: tuple[float, ...] = ()  # ... and the error chance there
    note: str = ""

    def error_prob(self, p: Sequence[float] | np.ndarray) -> np.ndarray:
        """Each word's chance of being wrong."""
        p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
        if not self.fitted or len(self.x) == 0:
            return 1.0 - p
        return np.interp(p, self.x, self.y)


@dataclass(frozen=True)
class PoolEstimate:
    """Expected word errors and WER of transcripts nobody reviewed, with a 95 % interval."""

    clips: int
    words: float  # estimated reference words
    errors: float  # expected word errors
    errors_low: float
    errors_high: float
    wer: float
    wer_low: float
    wer_high: float
    calibrated: bool
    note: str = ""


@dataclass(frozen=True)
class ReviewLeft:
    """What a target WER of the whole pool still asks of the reviewers."""

    target_wer: float
    pool_wer: float  # estimated now: corrected clips count as right
    reached: bool
    clips: int  # clips to review, in order of expected errors per second
    audio_minutes: float
    annotator_minutes: float  # by the cost model
    reachable: bool  # False: even reviewing every clip leaves the estimate above target


def word_diff(hypothesis_words: Sequence[str], corrected: str) -> WordDiff:
    """Which hypothesis words a correction changed, and the words it added.

    Parameters
    ----------
    hypothesis_words
        The words as the model wrote them (with spaces and punctuation).
    corrected
        The text the person saved.
    """
    import jiwer

    from earmark.evaluate.metrics import _token_owners, normalize, word_error_labels

    labels = tuple(word_error_labels(corrected, list(hypothesis_words)))
    ref = normalize(corrected)
    n_ref = len(ref.split())
    tokens, _ = _token_owners(list(hypothesis_words))
    if not ref:
        return WordDiff(labels, 0, 0)
    if not tokens:
        return WordDiff(labels, n_ref, n_ref)
    out = jiwer.process_words(ref, " ".join(tokens))
    return WordDiff(labels, int(out.deletions), n_ref)


def fit_calibration(probs: Sequence[Sequence[float]], diffs: Sequence[WordDiff],
                    min_words: int = 30) -> Calibration:
    """Fit the isotonic map on corrected clips (word probabilities and their diffs).

    Parameters
    ----------
    probs
        Per corrected clip, its hypothesis words' probabilities (as ``diffs[k].labels``).
    diffs
        :func:`word_diff` of each clip.
    min_words
        Scored words needed to fit; fewer keep the raw probabilities.
    """
    p, y = [], []
    deletions = ref_words = 0
    for ps, d in zip(probs, diffs):
        deletions += d.deletions
        ref_words += d.reference_words
        for q, lab in zip(ps, d.labels):
            if lab is not None:
                p.append(float(q))
                y.append(int(lab))
    n = len(p)
    if n < max(1, min_words):
        return Calibration(False, n, 0.0, 1.0,
                           note=(f"{n} corrected word{'' if n == 1 else 's'}, fewer than the {min_words} "
                                 "a calibration needs: the model's raw probabilities are used"))
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=False, out_of_bounds="clip")
    iso.fit(np.asarray(p), np.asarray(y, dtype=np.float64))
    return Calibration(True, n, deletions / n, ref_words / n if ref_words else 1.0,
                       tuple(float(v) for v in iso.X_thresholds_),
                       tuple(float(v) for v in iso.y_thresholds_))


def _clip_terms(cal: Calibration, probs: Sequence[Sequence[float]],
                durations: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per clip: expected errors, estimated reference words, and the errors' variance."""
    err, words, var = [], [], []
    for ps, dur in zip(probs, durations):
        if len(ps) == 0:  # an empty hypothesis misses every word said
            w = SPEECH_WORDS_PER_SECOND * float(dur)
            err.append(w), words.append(w), var.append(0.0)
            continue
        q = cal.error_prob(ps)
        n = len(ps)
        err.append(float(q.sum()) + cal.deletion_rate * n)
        words.append(cal.reference_ratio * n)
        var.append(float((q * (1 - q)).sum()))
    return np.asarray(err), np.asarray(words), np.asarray(var)


def estimate_pool(cal: Calibration, probs: Sequence[Sequence[float]], durations: Sequence[float],
                  corrected: tuple[Sequence[Sequence[float]], Sequence[WordDiff]] | None = None,
                  resamples: int = 200, seed: int = 0) -> PoolEstimate:
    """Expected word errors and WER of unreviewed transcripts.

    The interval joins two sources of doubt: the words themselves (each wrong with its
    calibrated chance, independently) and, when ``corrected`` (the probabilities and
    diffs the calibration was fitted on) is given and the calibration was fitted, the
    calibration's own (refitted on resampled corrected clips).
    """
    err, words, var = _clip_terms(cal, probs, durations)
    e, w = float(err.sum()), float(words.sum())
    if w <= 0:
        return PoolEstimate(len(err), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, cal.fitted, cal.note)
    sd_words = float(np.sqrt(var.sum()))
    wers = []
    if corrected is not None and cal.fitted:
        rng = np.random.default_rng(seed)
        cp, cd = corrected
        for _ in range(resamples):
            k = rng.integers(0, len(cd), len(cd))
            c = fit_calibration([cp[i] for i in k], [cd[i] for i in k], min_words=1)
            be, bw, _ = _clip_terms(c, probs, durations)
            wers.append(be.sum() / bw.sum() if bw.sum() > 0 else e / w)
    sd_cal = float(np.std(wers)) if wers else 0.0
    sd = np.hypot(sd_words / w, sd_cal)
    wer = e / w
    return PoolEstimate(len(err), w, e, max(0.0, e - 1.96 * sd * w), e + 1.96 * sd * w,
                        wer, max(0.0, wer - 1.96 * sd), wer + 1.96 * sd, cal.fitted, cal.note)


def estimate_audited(probs: Sequence[Sequence[float]], diffs: Sequence[WordDiff],
                     audit_probs: Sequence[Sequence[float]], audit_diffs: Sequence[WordDiff],
                     audit_durations: Sequence[float], rest_probs: Sequence[Sequence[float]], rest_durations: Sequence[float],
                     min_words: int = 30) -> PoolEstimate:
    """The unreviewed pool's WER from the queue's corrections, corrected by an audit.

    The queue reviews the clips it thinks worst, so a calibration fitted on them learns
    their error rate, above the rest's at the same word probability. A few clips drawn
    at random from the rest (the audit) tell by how much: the expected errors of the rest
    are scaled by the audit's true errors over its expected errors (a ratio estimator,
    right on average whatever the calibration; the calibration only makes it tighter).

    Parameters
    ----------
    probs, diffs
        The reviewed queue's word probabilities and :func:`word_diff`.
    audit_probs, audit_diffs, audit_durations
        The same for the audit clips, and their seconds of audio.
    rest_probs, rest_durations
        The unreviewed clips (the audit clips among them or not).
    """
    cal = fit_calibration([*probs, *audit_probs], [*diffs, *audit_diffs], min_words)
    base = estimate_pool(cal, rest_probs, rest_durations, resamples=0)
    err, _, _ = _clip_terms(cal, audit_probs, audit_durations)
    expected = float(err.sum())
    actual = float(sum(d.errors for d in audit_diffs))
    if expected <= 0 or not audit_diffs:
        return base
    scale = actual / expected
    return PoolEstimate(base.clips, base.words, base.errors * scale, base.errors_low * scale,
                        base.errors_high * scale, base.wer * scale, base.wer_low * scale,
                        base.wer_high * scale, base.calibrated,
                        f"scaled by {scale:.2f}: {len(audit_diffs)} audit clips' errors over their expected")


def _context_features(probs: Sequence[Sequence[float]]) -> list[np.ndarray]:
    """Per clip, per word: the word's log-odds and its clip's mean log-odds."""
    out = []
    for ps in probs:
        p = np.clip(np.asarray(ps, dtype=np.float64), 1e-4, 1 - 1e-4)
        z = np.log(p / (1 - p))
        out.append(np.column_stack([z, np.full(z.size, z.mean() if z.size else 0.0)]) if z.size
                   else np.zeros((0, 2)))
    return out


def _in_context_terms(cal: Calibration, probs: Sequence[Sequence[float]], diffs: Sequence[WordDiff],
                      rest_probs: Sequence[Sequence[float]],
                      rest_durations: Sequence[float]) -> tuple[np.ndarray, np.ndarray] | None:
    """Per unreviewed clip: expected errors and reference words under a calibration that
    sees each word's clip; None when it cannot be fitted.

    The queue picks clips by how unsure the model is of them as a whole, so a word at
    probability p in a reviewed clip is wrong more often than one at the same p in a
    clip nobody picked. A logistic model of a word's error on its own log-odds and its
    clip's mean log-odds conditions on what the selection looked at, so it is not
    misled by it (it extrapolates to surer clips along the clip feature instead).
    ``cal``: the isotonic calibration fitted on the same corrections (its deletion rate
    and reference-word ratio; unfitted means too few corrected words).
    """
    x, y = [], []
    for f, d in zip(_context_features(probs), diffs):
        for row, lab in zip(f, d.labels):
            if lab is not None:
                x.append(row)
                y.append(int(lab))
    if not cal.fitted or len(set(y)) < 2:
        return None
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1.0).fit(np.asarray(x), np.asarray(y))
    err, words = [], []
    for f, ps, dur in zip(_context_features(rest_probs), rest_probs, rest_durations):
        if len(ps) == 0:  # an empty hypothesis misses every word said
            w = SPEECH_WORDS_PER_SECOND * float(dur)
            err.append(w), words.append(w)
            continue
        err.append(float(lr.predict_proba(f)[:, 1].sum()) + cal.deletion_rate * len(ps))
        words.append(cal.reference_ratio * len(ps))
    return np.asarray(err, dtype=np.float64), np.asarray(words, dtype=np.float64)


def _summed(terms: tuple[np.ndarray, np.ndarray], note: str) -> PoolEstimate:
    err, words = float(terms[0].sum()), float(terms[1].sum())
    wer = err / words if words else 0.0
    return PoolEstimate(len(terms[0]), words, err, err, err, wer, wer, wer, True, note)


IN_CONTEXT_NOTE = "logistic on the word's and its clip's log-odds"


@dataclass(frozen=True)
class Unreviewed:
    """The reported estimate of the unreviewed clips, what it was made of, and each
    clip's expected errors and reference words under it (the order and the sums that
    :func:`review_to_target` works with, so the target reads the same estimate)."""

    estimate: PoolEstimate
    raw_wer: float  # from the raw probabilities
    in_context_wer: float | None  # None: too few corrections to fit it
    clip_errors: np.ndarray
    clip_words: np.ndarray


def unreviewed(probs: Sequence[Sequence[float]], diffs: Sequence[WordDiff],
               rest_probs: Sequence[Sequence[float]], rest_durations: Sequence[float],
               ranked: bool = True, min_words: int = 30) -> Unreviewed:
    """The unreviewed pool's WER as earmark reports it, from the corrections so far.

    Corrections in a ranked queue's order are the clips the model was least sure of, so
    the two simple estimates fall on either side of the truth: the raw probabilities
    under it (the model is over-sure), the in-context calibration over it (fitted on the
    worst clips, it carries their error rate to surer ones). The estimate is their
    midpoint and the interval spans both (on speechocean762 the truth lay between them at
    every check of the default strategy: ``benchmarks/RESULTS.md``). Corrections made
    in random or file order are a fair sample of the pool: the in-context calibration
    alone then (``ranked=False``). Too few corrected words: raw probabilities, said so.

    Parameters
    ----------
    probs, diffs
        The corrected clips' hypothesis word probabilities and :func:`word_diff`.
    rest_probs, rest_durations
        The unreviewed clips' word probabilities and seconds of audio.
    ranked
        Whether the corrections came in a ranked queue's order.
    min_words
        Corrected hypothesis words needed to fit a calibration.
    """
    raw_err, raw_words, _ = _clip_terms(fit_calibration([], [], 1), rest_probs, rest_durations)
    raw_wer = float(raw_err.sum() / raw_words.sum()) if raw_words.sum() > 0 else 0.0
    cal = fit_calibration(probs, diffs, min_words)
    ctx = _in_context_terms(cal, probs, diffs, rest_probs, rest_durations)
    if ctx is None:  # too few corrections (raw probabilities) or no word wrong: ``cal`` alone
        est = estimate_pool(cal, rest_probs, rest_durations, resamples=0)
        return Unreviewed(est, raw_wer, None, *clip_terms(cal, rest_probs, rest_durations))
    ctx_est = _summed(ctx, IN_CONTEXT_NOTE)
    if not ranked:
        return Unreviewed(ctx_est, raw_wer, ctx_est.wer, *ctx)
    lo, hi = sorted((raw_wer, ctx_est.wer))
    raw_e = float(raw_err.sum())
    lo_e, hi_e = sorted((raw_e, ctx_est.errors))
    words = (float(raw_words.sum()) + ctx_est.words) / 2
    est = PoolEstimate(len(rest_probs), words, (raw_e + ctx_est.errors) / 2, lo_e, hi_e, (lo + hi) / 2, lo, hi,
                       True, "midway between the raw probabilities and the in-context calibration (the range)")
    return Unreviewed(est, raw_wer, ctx_est.wer, (raw_err + ctx[0]) / 2, (raw_words + ctx[1]) / 2)


def estimate_unreviewed(probs: Sequence[Sequence[float]], diffs: Sequence[WordDiff],
                        rest_probs: Sequence[Sequence[float]], rest_durations: Sequence[float],
                        ranked: bool = True, min_words: int = 30) -> PoolEstimate:
    """The estimate of :func:`unreviewed` alone."""
    return unreviewed(probs, diffs, rest_probs, rest_durations, ranked, min_words).estimate


def review_to_target(clip_errors: Sequence[float] | np.ndarray, clip_words: Sequence[float] | np.ndarray,
                     durations: Sequence[float], reviewed_words: float, target_wer: float,
                     cost: CostConfig = CostConfig()) -> ReviewLeft:
    """Review needed, in expected-errors-per-second order, to bring the whole pool's
    estimated WER to ``target_wer``.

    The pool's transcripts are the corrections where there are any (no errors) and the
    hypotheses elsewhere. Later fine-tuning usually lowers the rest's errors too, so the
    minutes are an upper bound for one more round at the current model.

    Parameters
    ----------
    clip_errors, clip_words
        Each unreviewed clip's expected word errors and reference words (as
        :class:`Unreviewed` gives them, or :func:`clip_terms` for one calibration).
    durations
        Each unreviewed clip's seconds of audio.
    reviewed_words
        Reference words of the corrected clips (they count in the WER's denominator).
    """
    err = np.asarray(clip_errors, dtype=np.float64)
    total_words = float(np.sum(clip_words)) + reviewed_words
    left = float(err.sum())
    wer = left / total_words if total_words > 0 else 0.0
    if wer <= target_wer:
        return ReviewLeft(target_wer, wer, True, 0, 0.0, 0.0, True)
    dur = np.asarray(durations, dtype=np.float64)
    order = np.argsort(-(err / np.maximum(dur, 1e-3)), kind="stable")
    seconds = audio = 0.0
    for n, i in enumerate(order, 1):
        left -= err[i]
        audio += dur[i]
        seconds += cost.seconds_per_clip + cost.replay_factor * dur[i] + cost.seconds_per_edit * err[i]
        if left / total_words <= target_wer:
            return ReviewLeft(target_wer, wer, False, n, audio / 60, seconds / 60, True)
    return ReviewLeft(target_wer, wer, False, len(order), audio / 60, seconds / 60, False)


def clip_terms(cal: Calibration, probs: Sequence[Sequence[float]],
               durations: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Per clip: expected word errors and reference words under one calibration."""
    err, words, _ = _clip_terms(cal, probs, durations)
    return err, words


def describe(est: PoolEstimate, left: ReviewLeft | None = None) -> list[str]:
    """Lines for people: the estimate and, with a target, what remains."""
    how = "calibrated on the corrections" if est.calibrated else "raw model probabilities"
    lines = [f"unreviewed   {est.clips} clips: about {est.errors:.0f} word errors "
             f"(95 %: {est.errors_low:.0f}-{est.errors_high:.0f}), WER {est.wer:.3f} "
             f"({est.wer_low:.3f}-{est.wer_high:.3f}), {how}"]
    if est.note:
        lines.append(f"             note: {est.note}")
    if left is not None:
        if left.reached:
            lines.append(f"target       REACHED: estimated pool WER {left.pool_wer:.3f} <= target "
                         f"{left.target_wer:.3f}; review may stop")
        elif not left.reachable:
            lines.append(f"target       WER {left.target_wer:.3f} not reachable by review at this model "
                         f"(estimated pool WER {left.pool_wer:.3f}); fine-tune, then look again")
        else:
            lines.append(f"target       WER {left.target_wer:.3f}: about {left.annotator_minutes:.0f} min of "
                         f"review left ({left.clips} clips, {left.audio_minutes:.1f} min of audio; "
                         f"estimated pool WER now {left.pool_wer:.3f})")
    return lines
