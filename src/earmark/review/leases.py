"""Leases: which annotator holds which clip. A clip shown to one annotator is leased to
them (:func:`next_clip`) with one conditional insert-or-update, so two sessions never
hold the same clip, and an expired lease simply loses that condition and returns the
clip to the queue.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from earmark.errors import NothingRanked, PoolExhausted
from earmark.review.items import ReviewItem, dialect_insert, domain_errors, open_clip
from earmark.store.db import Clip, Correction, Lease, QueueEntry, utcnow, waiting_for_review
from earmark.store.project import Project

# candidates read per query in next_clip; more are read if others take these first
_CANDIDATES_PER_READ = 20

def _same_annotator(holder: str) -> Any:
    """Condition on :class:`Lease`: held by any browser session of ``holder``'s annotator."""
    return Lease.annotator.startswith(holder.rsplit("#", 1)[0] + "#", autoescape=True)


def _lease_stmt(insert: Callable[..., Any], clip_id: int, holder: str, now: datetime,
                expires: datetime, *, from_same_annotator: bool = False) -> Any:
    """INSERT the lease, or overwrite the existing one only if it expired or is the holder's
    (or, with ``from_same_annotator``, another browser session's of the same annotator)."""
    mine = Lease.annotator == holder
    if from_same_annotator:
        mine = mine | _same_annotator(holder)
    return insert(Lease).values(clip_id=clip_id, annotator=holder, expires_at=expires).on_conflict_do_update(
        index_elements=[Lease.clip_id],
        set_={"annotator": holder, "expires_at": expires},
        where=(Lease.expires_at <= now) | mine,
    )


def _take(s: Session, clip_id: int, holder: str, now: datetime, expires: datetime, *,
          from_same_annotator: bool = False) -> bool:
    """Lease ``clip_id`` to ``holder`` unless someone else holds an unexpired lease.

    One statement decides, so concurrent callers cannot both succeed: SQLite runs one
    writer at a time, and PostgreSQL locks the conflicting row while it checks the
    condition. The row count says whether this caller got the lease; SQLAlchemy keeps an
    INSERT's row count only when asked (``preserve_rowcount``), and psycopg reports -1
    for it otherwise.
    """
    stmt = _lease_stmt(dialect_insert(s), clip_id, holder, now, expires,
                       from_same_annotator=from_same_annotator)
    return s.execute(stmt, execution_options={"preserve_rowcount": True}).rowcount == 1


def _claim(s: Session, clip_id: int, holder: str, now: datetime, expires: datetime, *,
           from_same_annotator: bool) -> bool:
    """:func:`_take`, undone when the clip was saved after it was read as free (its lease
    had run out and its first holder saved it meanwhile)."""
    if not _take(s, clip_id, holder, now, expires, from_same_annotator=from_same_annotator):
        return False
    if s.scalar(select(func.count()).where(Correction.clip_id == clip_id)):
        s.execute(delete(Lease).where(Lease.clip_id == clip_id, Lease.annotator == holder))
        return False
    return True


def _lease_expiry(project: Project) -> tuple[datetime, datetime]:
    now = utcnow()
    return now, now + timedelta(minutes=project.config.review.lease_minutes)


@domain_errors
def next_clip(project: Project, holder: str, exclude: Collection[int] = (), *,
              resume: bool = True) -> ReviewItem:
    """Lease the first clip of the queue that nobody corrected, flagged or holds.

    The holder's other leases are released: one session works on one clip at a time.
    With ``resume`` (a session's first clip), a clip still leased to another browser
    session of the same annotator (a tab they reloaded or closed) comes first: it is
    theirs, so it is handed back to them rather than left blocked until the lease runs
    out. Later clips of the session skip those, so that two open tabs of one annotator
    do not keep landing on the same clip.

    Parameters
    ----------
    project
        An open project.
    holder
        Who takes the lease: ``NAME#SESSION`` (see :func:`holder_id`), unique per browser
        session so that two annotators never share a clip; a new session of ``NAME``
        takes over the clip an earlier one of the same name still holds.
    exclude
        Clip ids this session skipped; they stay in the queue for everyone else.
    resume
        Whether the annotator's other sessions' clips may be taken over (see above).

    Raises
    ------
    NothingRanked
        The queue is empty and nothing has been reviewed: ``earmark rank`` has not run.
    PoolExhausted
        Every queued clip is reviewed, held by others, or skipped by this session; the
        message says which.
    """
    now, expires = _lease_expiry(project)
    tried: set[int] = set(exclude)
    others = ~_same_annotator(holder) if resume else Lease.annotator != holder
    held_elsewhere = select(Lease.clip_id).where(Lease.expires_at > now, others)
    own_earlier = select(Lease.clip_id).where(Lease.expires_at > now, _same_annotator(holder),
                                              Lease.annotator != holder)
    with project.store.session() as s:
        while True:
            query = (select(QueueEntry.clip_id)
                     .where(waiting_for_review(),
                            QueueEntry.clip_id.not_in(held_elsewhere))
                     # a clip of the annotator's other tabs (reloaded or closed) first,
                     # then queue order
                     .order_by(QueueEntry.clip_id.in_(own_earlier).desc(), QueueEntry.rank)
                     .limit(_CANDIDATES_PER_READ))
            if tried:
                query = query.where(QueueEntry.clip_id.not_in(tried))
            candidates = s.scalars(query).all()
            if not candidates:
                chosen = None
                break
            chosen = next((c for c in candidates
                           if _claim(s, c, holder, now, expires, from_same_annotator=resume)), None)
            if chosen is not None:
                s.execute(delete(Lease).where(Lease.annotator == holder, Lease.clip_id != chosen))
                break
            tried.update(candidates)  # others took them between the read and the lease
    if chosen is None:
        raise _why_empty(project, holder, exclude)
    return open_clip(project, chosen)


def _why_empty(project: Project, holder: str, exclude: Collection[int]) -> PoolExhausted:
    """The error that explains an empty queue to a person."""
    now = utcnow()
    root = project.root
    with project.store.session() as s:
        queued = s.scalar(select(func.count()).select_from(QueueEntry)) or 0
        reviewed = s.scalar(select(func.count(func.distinct(Correction.clip_id)))) or 0
        clips = s.scalar(select(func.count()).select_from(Clip)) or 0
        open_ids = set(s.scalars(select(QueueEntry.clip_id)
                                 .where(waiting_for_review())))
        held = set(s.scalars(select(Lease.clip_id).where(Lease.expires_at > now,
                                                         ~_same_annotator(holder))))
        mine_elsewhere = set(s.scalars(select(Lease.clip_id).where(
            Lease.expires_at > now, _same_annotator(holder), Lease.annotator != holder)))
    if clips == 0:
        return NothingRanked(f"no clips yet: add audio with `earmark import {root} AUDIO` and "
                             f"then run `earmark rank {root}`")
    if queued == 0 and reviewed == 0:
        return NothingRanked(f"nothing ranked yet: run `earmark rank {root}` to transcribe and "
                             "order the clips for review")
    if not open_ids:
        return PoolExhausted(f"all clips reviewed: every clip in the queue has a correction or a "
                             f"flag. Fine-tune and re-rank (`earmark round {root}`), or import "
                             "more audio and run `earmark rank`")
    skipped = open_ids & set(exclude)
    others = open_ids & held
    parts = []
    if skipped:
        parts.append(f"you skipped {len(skipped)}")
    if others:
        parts.append(f"{len(others)} are open in other annotators' browsers and return to the "
                     f"queue if their lease of {project.config.review.lease_minutes:g} min runs out")
    if mine := (open_ids & mine_elsewhere) - skipped:
        parts.append(f"{len(mine)} {'is' if len(mine) == 1 else 'are'} open in another tab of yours")
    return PoolExhausted(f"no clip left for you: of the {len(open_ids)} clips still to review, "
                         + "; ".join(parts))


def holder_id(annotator: str, session: str) -> str:
    """The lease holder of one browser session: ``NAME#SESSION``.

    A ``#`` in the name is written ``%23`` (and ``%`` ``%25``), so that the name ends at
    the holder's only ``#``: "kim#2" is not taken for a session of "kim".
    """
    if "#" in session:
        raise ValueError(f"a session token holds no '#': {session!r}")
    return f"{annotator.replace('%', '%25').replace('#', '%23')}#{session}"


@domain_errors
def renew(project: Project, clip_id: int, holder: str) -> bool:
    """Extend the holder's lease on a clip (retaking it if it expired and is free).

    Returns
    -------
    bool
        False when another session holds the clip now; saving still works, and both
        texts are kept.
    """
    now, expires = _lease_expiry(project)
    with project.store.session() as s:
        return _take(s, clip_id, holder, now, expires)


@domain_errors
def release(project: Project, clip_id: int, holder: str) -> None:
    """Give a held clip back to the queue at once (no-op when the holder has no lease)."""
    with project.store.session() as s:
        s.execute(delete(Lease).where(Lease.clip_id == clip_id, Lease.annotator == holder))


def skip(project: Project, clip_id: int, holder: str) -> None:
    """Skip a clip: it returns to the queue for others at once.

    The caller keeps it out of its own :func:`next_clip` calls through ``exclude``, so
    the same session is not handed the clip it just passed over.
    """
    release(project, clip_id, holder)


# --- reading one clip ---------------------------------------------------------------------
