"""Where a project stands: the unreviewed pool's estimated errors, and review left to a target.

Reads the corrections (with the transcripts they started from) and the active model's
transcripts of the clips nobody corrected; the numbers come from
:mod:`earmark.evaluate.calibration`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from earmark.config import CostConfig
from earmark.evaluate.calibration import (PoolEstimate, ReviewLeft, describe, review_to_target, unreviewed,
                                          word_diff)
from earmark.ranking.registry import UNRANKED_ORDERS
from earmark.store.db import Clip, TranscriptRow
from earmark.store.project import Project

#: corrected hypothesis words needed before the calibration replaces raw probabilities
MIN_CALIBRATION_WORDS = 30


@dataclass(frozen=True)
class Standing:
    """The estimate and, with ``review.target_wer`` set, what remains to reach it (from
    the same per-clip numbers as the estimate)."""

    estimate: PoolEstimate
    left: ReviewLeft | None

    def lines(self) -> list[str]:
        """Lines for `earmark status` and `earmark round`."""
        return describe(self.estimate, self.left)

    def short(self) -> str:
        """One phrase for the review app's progress line."""
        e = self.estimate
        text = f"unreviewed WER ≈ {e.wer:.2f} ({e.wer_low:.2f}-{e.wer_high:.2f})"
        if not e.calibrated:
            text += ", uncalibrated"
        if self.left is not None:
            text += (f" · target {self.left.target_wer:.2f} REACHED" if self.left.reached else
                     f" · target {self.left.target_wer:.2f}: about {self.left.annotator_minutes:.0f} min of review left"
                     if self.left.reachable else f" · target {self.left.target_wer:.2f} not reachable at this model")
        return text


def standing(project: Project, cost: CostConfig = CostConfig()) -> Standing | None:
    """The project's :class:`Standing`; None when the active model has transcribed nothing
    nobody corrected (nothing to estimate)."""
    store = project.store
    mv = store.active_model()
    latest = [c for c in store.latest_corrections() if c.flag is None and c.text]
    corrected = {c.clip_id for c in store.latest_corrections(include_flagged=True)}
    with store.session() as s:
        started = {t.id: t.words for t in s.scalars(select(TranscriptRow).where(
            TranscriptRow.id.in_([c.transcript_id for c in latest if c.transcript_id])))}
        rows = []
        if mv is not None:
            rows = s.execute(select(TranscriptRow.words, Clip.duration, Clip.id)
                             .join(Clip, Clip.id == TranscriptRow.clip_id)
                             .where(TranscriptRow.model_version_id == mv.id)).all()
    c_probs, c_diffs = [], []
    for c in latest:
        words = started.get(c.transcript_id or -1)
        if words is None:
            continue  # typed without a stored hypothesis: nothing to learn the words from
        c_probs.append([float(w["p"]) for w in words])
        c_diffs.append(word_diff([w["word"] for w in words], c.text or ""))
    pool = [(w, d) for w, d, cid in rows if cid not in corrected]
    if not pool:
        return None
    probs = [[float(x["p"]) for x in w] for w, _ in pool]
    durations = [float(d) for _, d in pool]
    ranked = project.config.selection.strategy not in UNRANKED_ORDERS
    est = unreviewed(c_probs, c_diffs, probs, durations, ranked, MIN_CALIBRATION_WORDS)
    target = project.config.review.target_wer
    left = None
    if target > 0:
        reviewed_words = float(sum(d.reference_words for d in c_diffs))
        left = review_to_target(est.clip_errors, est.clip_words, durations, reviewed_words, target, cost)
    return Standing(est.estimate, left)
