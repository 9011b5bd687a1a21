"""Small pure helpers the dashboard's charts need: readable histogram bins and the
corrections whose edit rate cannot be a correction of the clip's hypothesis."""

from __future__ import annotations

import math

import pandas as pd

#: a correction with more than this many times the hypothesis's words (and at least
#: :data:`IMPLAUSIBLE_EXTRA_WORDS` more) is more likely a text pasted into the wrong clip
#: than a correction of it
IMPLAUSIBLE_RATIO = 3.0
IMPLAUSIBLE_EXTRA_WORDS = 5


def readable_step(low: float, high: float, max_bins: int = 20) -> float:
    """A histogram bin width of 1, 2 or 5 times a power of ten that cuts ``[low, high]``
    into at most ``max_bins`` bins, so that bin edges read as round numbers (0.05, 0.1,
    0.2 ... rather than 0.0733)."""
    span = high - low
    if not math.isfinite(span) or span <= 0:
        return 1.0
    raw = span / max_bins
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def implausible(edits: pd.DataFrame) -> pd.Series:
    """Per row of ``edits`` (columns ``words``, the corrected text's words, and
    ``hyp_words``, the hypothesis's), whether the text is far longer than the hypothesis
    (see :data:`IMPLAUSIBLE_RATIO`)."""
    hyp = edits["hyp_words"].clip(lower=1)
    return (edits["words"] > IMPLAUSIBLE_RATIO * hyp) & (
        edits["words"] - edits["hyp_words"] >= IMPLAUSIBLE_EXTRA_WORDS)
