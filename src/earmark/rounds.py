"""One turn of the loop: fine-tune on the corrections, and if the gate passes, re-rank.

``earmark round`` calls :func:`run_round`. It closes the open labeling round (the
review app opens one at the first correction of a round), so the next corrections
start a new round ranked by the new model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from earmark.config import FinetuneConfig
from earmark.ranking.rank import RankReport, rank
from earmark.review.reports import queue
from earmark.store.db import QueueEntry, Round, utcnow, waiting_for_review
from earmark.store.project import Project
from earmark.train.finetune import FinetuneResult, finetune


@dataclass(frozen=True)
class QueueChange:
    """How the review queue moved between two rankings."""

    before: int  # clips queued before
    after: int  # clips queued after
    common: int  # clips in both
    mean_rank_shift: float  # mean |new rank - old rank| over common clips
    rank_correlation: float  # Spearman correlation of the two orders over common clips (nan if < 2)
    top_kept: int  # how many of the old top ``top`` are still in the new top ``top``
    top: int


@dataclass(frozen=True)
class RoundReport:
    """What a round did."""

    finetune: FinetuneResult
    ranked: RankReport | None  # None when the gate refused the new version
    queue: QueueChange | None
    top_clips: list = field(default_factory=list)  # earmark.review.reports.QueueRow, new head of the queue


def queue_snapshot(project: Project) -> dict[int, int]:
    """clip id -> place (1, 2, ...) of each clip still waiting for review, in queue order.

    The queue is rebuilt only by ``rank``, so before a re-rank it still lists the clips
    corrected since; counted, they would read as clips the new ranking dropped.
    """
    with project.store.session() as s:
        ids = s.scalars(select(QueueEntry.clip_id).where(waiting_for_review()).order_by(QueueEntry.rank))
        return {cid: place for place, cid in enumerate(ids, 1)}


def queue_change(before: dict[int, int], after: dict[int, int], top: int = 10) -> QueueChange:
    """Compare two queues (clip id -> rank); pure."""
    import math

    from scipy.stats import spearmanr

    common = sorted(set(before) & set(after))
    shift = sum(abs(after[c] - before[c]) for c in common) / len(common) if common else 0.0
    corr = math.nan
    if len(common) >= 2:
        corr = float(spearmanr([before[c] for c in common], [after[c] for c in common]).statistic)
    old_top = {c for c, r in before.items() if r <= top}
    new_top = {c for c, r in after.items() if r <= top}
    # with fewer clips than ``top``, "the top 10" of six clips would read as ten
    return QueueChange(len(before), len(after), len(common), shift, corr, len(old_top & new_top),
                       min(top, max(len(before), len(after))))


def close_round(project: Project, result: FinetuneResult) -> int | None:
    """Note the fine-tune in the open labeling round; close it if the version was activated.

    A refused version changes neither the model nor the queue, so the annotators' round
    goes on (its progress is not reset); the attempt is kept in the round's config.
    Returns the round's number, or None without an open round.
    """
    with project.store.session() as s:
        current = s.scalars(select(Round).where(Round.closed_at.is_(None))
                            .order_by(Round.number.desc())).first()
        if current is None:
            return None
        attempt = {"version": result.version, "activated": result.activated,
                   "dev_wer_before": result.dev_wer_before, "dev_wer_after": result.dev_wer_after}
        config = dict(current.config or {})
        config["finetune_attempts"] = [*config.get("finetune_attempts", []), attempt]
        if result.activated:
            config["finetune"] = attempt
            current.closed_at = utcnow()
        current.config = config
        return current.number


def run_round(project: Project, cfg: FinetuneConfig | None = None, *, resume: bool = False,
              progress: bool = True, top: int = 10) -> RoundReport:
    """Fine-tune; if the new version passes the gate, re-rank the pool with it.

    Parameters
    ----------
    project
        An open project with corrections.
    cfg
        Fine-tuning settings (default: the project's).
    resume
        Continue an unfinished fine-tuning run first.
    top
        Size of the queue head compared and returned.
    """
    cfg = cfg or project.config.finetune
    result = finetune(project, cfg, resume=resume, progress=progress)
    close_round(project, result)
    if not result.activated:
        return RoundReport(result, None, None, [])
    before = queue_snapshot(project)
    report = rank(project, progress=progress)
    change = queue_change(before, queue_snapshot(project), top)
    return RoundReport(result, report, change, queue(project, top))

