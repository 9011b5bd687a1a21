"""How far the review has come: the current round's progress and one clip's history.
"""

from __future__ import annotations


from sqlalchemy import func, select

from earmark.review.items import (ClipHistory, HistoryEntry, RoundProgress, annotator_of, as_utc,
                                  domain_errors, open_clip)
from earmark.store.db import Clip, Correction, Lease, ModelVersion, Round, TranscriptRow, utcnow
from earmark.store.project import Project


@domain_errors
def round_progress(project: Project) -> RoundProgress:
    """Corrected clips and minutes of the open round, against its budget.

    Before the first save of a round the round does not exist yet; it is reported with
    the next number, the configured budget and nothing done.
    """
    with project.store.session() as s:
        active = s.scalar(select(ModelVersion.name).where(ModelVersion.active.is_(True)))
        current = s.scalars(select(Round).where(Round.closed_at.is_(None))
                            .order_by(Round.number.desc())).first()
        if current is None:
            number = (s.scalar(select(func.max(Round.number))) or 0) + 1
            return RoundProgress(number, project.config.review.round_budget_minutes, 0, 0.0, 0, active)
        rows = s.execute(select(Correction.clip_id, Correction.flag, Clip.duration)
                         .join(Clip, Clip.id == Correction.clip_id)
                         .where(Correction.round_id == current.id)).all()
    corrected = {cid: dur for cid, fl, dur in rows if fl is None}
    flagged = {cid for cid, fl, _ in rows if fl is not None} - set(corrected)
    return RoundProgress(current.number, current.budget_minutes, len(corrected),
                         sum(corrected.values()) / 60, len(flagged), active)


@domain_errors
def clip_history(project: Project, clip_id: int) -> ClipHistory:
    """The clip, every model's transcript of it, and every correction and flag, oldest first.

    Raises
    ------
    InvalidReview
        No clip has this id.
    """
    item = open_clip(project, clip_id)
    now = utcnow()
    with project.store.session() as s:
        reference = s.scalar(select(Clip.reference_text).where(Clip.id == clip_id))
        transcripts = s.execute(select(ModelVersion.name, TranscriptRow.text)
                                .join(ModelVersion, ModelVersion.id == TranscriptRow.model_version_id)
                                .where(TranscriptRow.clip_id == clip_id)
                                .order_by(ModelVersion.id)).all()
        rows = s.execute(select(Correction, Round.number)
                         .outerjoin(Round, Round.id == Correction.round_id)
                         .where(Correction.clip_id == clip_id).order_by(Correction.id)).all()
        holder = s.scalar(select(Lease.annotator).where(Lease.clip_id == clip_id,
                                                        Lease.expires_at > now))
    entries = tuple(HistoryEntry(c.id, as_utc(c.created_at), c.annotator, c.text, c.flag, c.note,
                                 c.seconds_spent, c.hypothesis, number) for c, number in rows)
    return ClipHistory(item, reference, tuple((m, t.strip()) for m, t in transcripts), entries,
                       annotator_of(holder) if holder else None)
