"""Pure metrics of transcripts: WER and CER, paired comparisons, and how well word
confidence finds word errors.

Error rates are computed after Whisper's English text normalizer (so "Two, six." and
"26" compare equal) with jiwer, pooled over clips (total errors over total reference
words), as speech papers report them (:mod:`earmark.wer`, re-exported here: decoding
scores its choice of engine with them too, and may not import evaluation).

Confidence quality treats each hypothesis word's probability as a detector of word
errors: hypothesis and reference are aligned word by word (jiwer's alignment), a word
that is substituted or inserted is an error, and we report

- the AUC-ROC of ``1 - p`` as an error score (0.5 is chance, 1.0 a perfect detector);
- the expected calibration error (ECE) of ``p`` as the chance that the word is right.

Two models scored on the same clips are compared by bootstrap: over clips for the
chance that one makes fewer errors (:func:`prob_fewer_errors`), over speakers for an
interval of the relative WER reduction (:func:`relative_reduction`).

Everything here takes strings and numbers and returns numbers; :mod:`earmark.evaluate.heldout`
wires it to a project, a model version and clips.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from earmark.wer import ErrorRates as ErrorRates, error_rates as error_rates, normalize as normalize


@dataclass(frozen=True)
class ConfidenceQuality:
    """Word probability as a detector of word errors."""

    auc: float  # AUC-ROC of 1 - p for "this word is wrong"; nan with one class only
    ece: float  # expected calibration error of p as P(word is right), 10 equal bins
    words: int  # hypothesis words scored (after normalization)
    error_fraction: float  # share of those words that are errors


def scored_groups(references: Sequence[str], groups: Sequence[object]) -> list:
    """The group of each clip that :func:`error_rates` scores, in order: a clip whose
    reference normalizes to nothing is skipped there, so it is left out here too, and
    the labels line up with :attr:`ErrorRates.clip_errors`."""
    return [g for g, ref in zip(groups, references) if normalize(ref)]


def prob_fewer_errors(errors_a: Sequence[int], errors_b: Sequence[int], rounds: int = 2000,
                      seed: int = 0) -> float:
    """How sure we can be that model A makes fewer word errors than model B on such clips.

    A paired bootstrap over clips (Bisani and Ney, 2004): the clips are resampled with
    replacement ``rounds`` times, and the result is the share of resamples in which A's
    total errors are strictly fewer than B's. Both models must have been scored on the
    same clips, in the same order; since the reference words are the same too, fewer
    errors means a lower pooled WER. A few dozen dev clips often differ by several WER
    points between two training epochs by chance alone; this says when they do not.
    """
    a, b = np.asarray(errors_a, dtype=np.int64), np.asarray(errors_b, dtype=np.int64)
    if a.shape != b.shape:
        raise ValueError(f"paired comparison needs the same clips: {a.size} and {b.size} scores")
    if a.size == 0:
        return 0.0
    idx = np.random.default_rng(seed).integers(0, a.size, size=(rounds, a.size))
    diff = a - b
    return float(np.mean(diff[idx].sum(axis=1) < 0))


@dataclass(frozen=True)
class Reduction:
    """How far model B lowers model A's word errors on the same clips, with an interval."""

    relative: float  # 1 - errors_b / errors_a over all clips: the relative WER reduction
    low: float  # the bootstrap interval's bounds at ``level``; nan with a single group
    high: float
    level: float
    groups: int  # units resampled (speakers, or clips when none are given)
    # with a target: the share of resamples whose reduction reaches it; else nan
    reach: float = math.nan


def relative_reduction(errors_a: Sequence[int], errors_b: Sequence[int],
                       groups: Sequence[object] | None = None, level: float = 0.95,
                       rounds: int = 2000, seed: int = 0, target: float | None = None) -> Reduction:
    """The relative WER reduction from model A to model B, with a bootstrap interval.

    Both models were scored on the same clips, so they share the reference words and
    the relative reduction of the pooled WER is ``1 - errors_b / errors_a``. The
    interval resamples ``groups`` (e.g. each clip's speaker) with replacement and takes
    every clip of a drawn group, since one speaker's clips err together: the spread
    then says how much the figure would move with other speakers like these. Without
    groups each clip is its own.

    Parameters
    ----------
    errors_a, errors_b
        Word errors per clip (:attr:`ErrorRates.clip_errors`), in the same clip order.
    groups
        One label per clip; clips with the same label are drawn together.
    level
        Coverage of the percentile interval, e.g. 0.95.
    rounds, seed
        Bootstrap resamples and their seed.
    target
        A reduction to test for, e.g. 0.4: :attr:`Reduction.reach` is the share of
        resamples that reach it.
    """
    a, b = np.asarray(errors_a, dtype=np.int64), np.asarray(errors_b, dtype=np.int64)
    if a.shape != b.shape:
        raise ValueError(f"paired comparison needs the same clips: {a.size} and {b.size} scores")
    labels = list(range(a.size)) if groups is None else list(groups)
    if len(labels) != a.size:
        raise ValueError(f"{len(labels)} group labels for {a.size} clips")
    if a.sum() == 0:
        raise ValueError("model A makes no word errors on these clips: no reduction to measure")
    _, index = np.unique(np.asarray([str(g) for g in labels]), return_inverse=True)
    n = int(index.max()) + 1
    relative = float(1.0 - b.sum() / a.sum())
    if n < 2:  # one speaker drawn again is the same speaker: no spread to speak of
        return Reduction(relative=relative, low=math.nan, high=math.nan, level=level, groups=n,
                         reach=math.nan if target is None else float(relative >= target))
    per_a, per_b = np.bincount(index, a, n), np.bincount(index, b, n)
    draws = np.random.default_rng(seed).integers(0, n, size=(rounds, n))
    sums_a, sums_b = per_a[draws].sum(axis=1), per_b[draws].sum(axis=1)
    # a resample whose speakers A got all right has no reduction to speak of: left out
    rel = 1.0 - sums_b[sums_a > 0] / sums_a[sums_a > 0]
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(rel, [tail, 100 - tail])
    return Reduction(relative=relative, low=float(low), high=float(high),
                     level=level, groups=n,
                     reach=math.nan if target is None else float(np.mean(rel >= target)))


def _token_owners(words: Sequence[str]) -> tuple[list[str], list[int]]:
    """Normalize a word sequence as a whole and say which word each token came from.

    The normalizer rewrites across word boundaries ("two six" -> "26"), so each prefix
    is normalized in turn and the tokens it adds (or rewrites) belong to the word that
    was just added.
    """
    tokens: list[str] = []
    owners: list[int] = []
    for i in range(len(words)):
        current = normalize(" ".join(w.strip() for w in words[: i + 1])).split()
        keep = 0
        while keep < min(len(tokens), len(current)) and tokens[keep] == current[keep]:
            keep += 1
        owners = owners[:keep] + [i] * (len(current) - keep)
        tokens = current
    return tokens, owners


def word_error_labels(reference: str, words: Sequence[str]) -> list[int | None]:
    """Label each hypothesis word 1 (an error), 0 (right) or None (not scored).

    Parameters
    ----------
    reference
        The reference transcript of the clip.
    words
        The hypothesis words as the model wrote them (with punctuation and spaces).

    Returns
    -------
    list
        One label per word. A word is an error when any of its normalized tokens is
        substituted or inserted in the alignment with the reference; a word with no
        token of its own (punctuation, or merged into the next word by the
        normalizer) is not scored.
    """
    import jiwer

    tokens, owners = _token_owners(words)
    labels: list[int | None] = [None] * len(words)
    if not tokens:
        return labels
    ref = normalize(reference)
    wrong = [True] * len(tokens)  # an empty reference makes every word an insertion
    if ref:
        for chunk in jiwer.process_words(ref, " ".join(tokens)).alignments[0]:
            if chunk.type == "equal":
                for k in range(chunk.hyp_start_idx, chunk.hyp_end_idx):
                    wrong[k] = False
    for k, i in enumerate(owners):
        labels[i] = max(labels[i] or 0, int(wrong[k]))
    return labels


def roc_auc(errors: Sequence[int], scores: Sequence[float]) -> float:
    """AUC-ROC of ``scores`` as a detector of ``errors`` (1 = error); nan with one class."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(errors, dtype=int)
    if y.size == 0 or y.min() == y.max():
        return math.nan
    return float(roc_auc_score(y, np.asarray(scores, dtype=float)))


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[int],
                               n_bins: int = 10) -> float:
    """ECE: the bin-size-weighted mean gap between confidence and accuracy.

    Parameters
    ----------
    confidence
        Predicted probabilities that each item is right, in [0, 1].
    correct
        1 where the item is right, 0 where it is wrong.
    n_bins
        Equal-width bins over [0, 1]; a confidence of exactly 1 falls in the last one.
    """
    p = np.clip(np.asarray(confidence, dtype=float), 0.0, 1.0)
    y = np.asarray(correct, dtype=float)
    if p.size == 0:
        return math.nan
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            total += mask.sum() / p.size * abs(p[mask].mean() - y[mask].mean())
    return float(total)


def confidence_quality(references: Sequence[str],
                       word_probs: Sequence[Sequence[tuple[str, float]]]) -> ConfidenceQuality:
    """Score word probabilities as error detectors over many clips.

    Parameters
    ----------
    references
        Reference transcript per clip.
    word_probs
        Per clip, the hypothesis words with their probabilities, in order.
    """
    labels: list[int] = []
    probs: list[float] = []
    for ref, words in zip(references, word_probs):
        for lab, (_, p) in zip(word_error_labels(ref, [w for w, _ in words]), words):
            if lab is not None:
                labels.append(lab)
                probs.append(float(p))
    if not labels:
        return ConfidenceQuality(math.nan, math.nan, 0, math.nan)
    return ConfidenceQuality(
        auc=roc_auc(labels, [1.0 - p for p in probs]),
        ece=expected_calibration_error(probs, [1 - lab for lab in labels]),
        words=len(labels), error_fraction=float(np.mean(labels)))
