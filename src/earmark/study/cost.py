"""The annotator cost model: seconds a person spends on a clip.

``seconds_per_clip + replay_factor * duration + seconds_per_edit * edited words``
(:class:`earmark.config.CostConfig`). Its parameters can be fitted to the time per clip
the review app records (``Correction.seconds_spent``) with :func:`fit_cost`, and a
project's records checked against it with :func:`project_cost_check`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from earmark.config import CostConfig


@dataclass(frozen=True)
class CostCheck:
    """The cost model against the seconds a project's reviewers spent."""

    clips: int
    mean_recorded: float  # seconds per clip
    mean_predicted: float  # by the configured model
    mean_abs_error: float  # of the configured model, seconds per clip
    fitted: CostConfig | None  # least squares (non-negative) on the records; None with < 5 clips


def annotator_seconds(duration: float | np.ndarray, edits: float | np.ndarray,
                      cost: CostConfig = CostConfig()) -> float | np.ndarray:
    """Seconds a person spends on clips of ``duration`` seconds needing ``edits`` word edits."""
    return cost.seconds_per_clip + cost.replay_factor * duration + cost.seconds_per_edit * edits


def fit_cost(durations: Sequence[float], edits: Sequence[float], seconds: Sequence[float]) -> CostConfig:
    """The non-negative parameters that best predict recorded ``seconds`` (least squares)."""
    from scipy.optimize import nnls

    a = np.column_stack([np.ones(len(durations)), np.asarray(durations, float), np.asarray(edits, float)])
    (per_clip, replay, per_edit), _ = nnls(a, np.asarray(seconds, float))
    return CostConfig(replay_factor=float(replay), seconds_per_edit=float(per_edit),
                      seconds_per_clip=float(per_clip))


def check_cost(durations: Sequence[float], edits: Sequence[float], seconds: Sequence[float],
               cost: CostConfig = CostConfig()) -> CostCheck:
    """Compare the cost model with recorded seconds per clip."""
    d, e, s = (np.asarray(x, float) for x in (durations, edits, seconds))
    if d.size == 0:
        return CostCheck(0, float("nan"), float("nan"), float("nan"), None)
    pred = annotator_seconds(d, e, cost)
    return CostCheck(int(d.size), float(s.mean()), float(np.mean(pred)), float(np.mean(np.abs(pred - s))),
                     fit_cost(d, e, s) if d.size >= 5 else None)


def project_cost_check(project, cost: CostConfig = CostConfig()) -> CostCheck:
    """:func:`check_cost` on a project's corrections that recorded their time."""
    from sqlalchemy import select

    from earmark.evaluate.calibration import word_diff
    from earmark.store.db import Clip, TranscriptRow

    latest = [c for c in project.store.latest_corrections()
              if c.flag is None and c.text and c.seconds_spent > 0 and c.transcript_id]
    with project.store.session() as s:
        words = {t.id: t.words for t in s.scalars(select(TranscriptRow).where(
            TranscriptRow.id.in_([c.transcript_id for c in latest])))}
        dur = {c.id: c.duration for c in s.scalars(select(Clip).where(Clip.id.in_([c.clip_id for c in latest])))}
    rows = [(dur[c.clip_id], word_diff([w["word"] for w in words[c.transcript_id]], c.text).errors,
             c.seconds_spent) for c in latest if c.transcript_id in words and c.clip_id in dur]
    return check_cost(*zip(*rows), cost=cost) if rows else check_cost([], [], [], cost)
