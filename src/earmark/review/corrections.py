"""Saving what an annotator typed: corrections and flags are appended, never updated,
and a save never silently wins over another annotator's (it is refused with
:class:`~earmark.errors.CorrectedMeanwhile` until the annotator has seen their text and
chosen to replace it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from earmark.config import to_dict
from earmark.errors import CorrectedMeanwhile, EarmarkError, InvalidReview
from earmark.review.items import FLAG_REASONS, ReviewItem, as_utc, dialect_insert, domain_errors
from earmark.review.worddiff import word_diff
from earmark.store.backup import take_if_due
from earmark.store.db import Clip, Correction, Lease, ModelVersion, Round, utcnow
from earmark.store.project import Project

# A correction may hold at most max(_MIN_WORDS, _WORDS_PER_SECOND * duration) words.
# Even fast speech (auctioneers, sports commentary) stays under about 6 words a second,
# so 8 leaves room for contractions split apart and numbers written out, while a text
# pasted into the wrong clip, or a whole document, is caught. The floor keeps very short
# clips (a name, "yes, twelve") from being held to one or two words.
_WORDS_PER_SECOND = 8.0
_MIN_WORDS = 20
# and at most this many characters a word on average: one long run of letters without
# spaces is as implausible as too many words (the longest English words are ~30 letters)
_CHARS_PER_WORD = 30


@dataclass(frozen=True)
class Work:
    """How a clip was worked on, as the review editor measured it (None: not measured)."""

    listen_seconds: float | None = None  # seconds the audio played
    edit_seconds: float | None = None  # seconds from the first edit of the text to the last
    marks_shown: bool | None = None  # whether the low-confidence words were marked


def _open_round(s: Session, project: Project) -> Round:
    """The open round, opened now (numbered after the last) if there is none.

    The insert does nothing when a concurrent save opened the same round first. The last
    number is read before the open round: on PostgreSQL each statement sees the newest
    commits, so a round opened by another save between the two reads is then found open,
    instead of being counted and followed by a second new round.
    """
    number = (s.scalar(select(func.max(Round.number))) or 0) + 1
    current = s.scalars(select(Round).where(Round.closed_at.is_(None))
                        .order_by(Round.number.desc())).first()
    if current is not None:
        return current
    active = s.scalar(select(ModelVersion.id).where(ModelVersion.active.is_(True)))
    s.execute(dialect_insert(s)(Round).values(
        number=number, budget_minutes=project.config.review.round_budget_minutes,
        model_version_id=active, config={"review": to_dict(project.config.review)},
        started_at=utcnow(),
    ).on_conflict_do_nothing(index_elements=[Round.number]))
    return s.scalars(select(Round).where(Round.number == number)).one()


def _check_annotator(annotator: str) -> str:
    name = annotator.strip()
    if not name:
        raise InvalidReview("no annotator name: enter your name so corrections record who made them")
    return name


def max_words(duration: float) -> int:
    """The most words a correction of a clip of ``duration`` seconds may hold."""
    return max(_MIN_WORDS, math.ceil(_WORDS_PER_SECOND * duration))


def _check_length(text: str, item: ReviewItem) -> None:
    words, limit = len(text.split()), max_words(item.duration)
    if words > limit or len(text) > limit * _CHARS_PER_WORD:
        raise InvalidReview(
            f"the correction is too long for {item.name}: {words} word{'' if words == 1 else 's'} "
            f"({len(text)} characters) "
            f"for {item.duration:.1f} s of audio, where at most {limit} words fit "
            f"({_WORDS_PER_SECOND:g} a second, at least {_MIN_WORDS}). Check that the text "
            "belongs to this clip and type only what is said in it")


def _saved_since(s: Session, item: ReviewItem, annotator: str) -> list[Correction]:
    """Corrections and flags of the item's clip that others saved after it was read.

    The annotator's own later saves (another tab, the Browse page) are not counted: they
    knew of those.
    """
    return list(s.scalars(select(Correction).where(Correction.clip_id == item.clip_id,
                                                   Correction.id > item.seen_correction_id,
                                                   Correction.annotator != annotator)
                          .order_by(Correction.id)))


def _describe(c: Correction) -> str:
    when = f"{as_utc(c.created_at):%Y-%m-%d %H:%M} UTC"
    if c.flag is not None:
        return f"{c.annotator} flagged it as '{c.flag}' at {when}"
    return f"{c.annotator} saved “{c.text}” at {when}"


def _refuse_lost_update(s: Session, item: ReviewItem, annotator: str) -> None:
    """Raise :class:`CorrectedMeanwhile` when others saved the clip since it was read."""
    # on PostgreSQL two saves of one clip wait for each other here, so the second one
    # sees the first; SQLite runs one writer at a time anyway (FOR UPDATE is ignored)
    s.execute(select(Clip.id).where(Clip.id == item.clip_id).with_for_update())
    newer = _saved_since(s, item, annotator)
    if not newer:
        return
    raise CorrectedMeanwhile(
        f"{item.name} changed after you opened it: " + "; ".join(_describe(c) for c in newer)
        + ". Your text was not saved: replace theirs on purpose (both stay in the clip's "
        "history), or move on and keep theirs.", newer[-1].id)


def _append(project: Project, item: ReviewItem, *, annotator: str, seconds_spent: float,
            holder: str | None, text: str | None = None, flag: str | None = None,
            note: str | None = None, work: Work | None = None) -> int:
    work = work or Work()
    with project.store.session() as s:
        _refuse_lost_update(s, item, annotator)
        round_ = _open_round(s, project)
        row = Correction(clip_id=item.clip_id, text=text, flag=flag, note=note,
                         annotator=annotator, seconds_spent=max(0.0, float(seconds_spent)),
                         transcript_id=item.transcript_id, hypothesis=item.start_text,
                         round_id=round_.id,
                         word_diff=word_diff(item.hypothesis, text) if text is not None else None,
                         listen_seconds=work.listen_seconds, edit_seconds=work.edit_seconds,
                         marks_shown=work.marks_shown)
        s.add(row)
        if holder is not None:
            s.execute(delete(Lease).where(Lease.clip_id == item.clip_id, Lease.annotator == holder))
        s.flush()
        saved = row.id
    _snapshot_if_due(project)
    return saved


def _snapshot_if_due(project: Project) -> None:
    """A snapshot every ``backup.review_minutes`` of saving, so a damaged database costs
    at most those minutes of corrections (see :mod:`earmark.store.backup`)."""
    try:
        take_if_due(project, "review")
    except EarmarkError as exc:  # the row is committed: say so, or the annotator types it again
        raise type(exc)(f"your work was saved, but {exc}") from exc


@domain_errors
def save_correction(project: Project, item: ReviewItem, text: str, *, annotator: str,
                    seconds_spent: float, holder: str | None = None,
                    work: Work | None = None) -> int:
    """Append a correction of ``item`` and release the holder's lease, in one transaction.

    Parameters
    ----------
    item
        The clip as it was shown: its transcript id and ``start_text`` record which
        hypothesis the annotator started from, and its ``seen_correction_id`` which
        corrections they knew of.
    text
        What the annotator typed; runs of whitespace (newlines too) become one space. At
        most :func:`max_words` words for the clip's duration.
    annotator
        Who corrected it.
    seconds_spent
        How long the clip was open, in seconds.
    holder
        The lease to release, if the clip was leased.
    work
        Seconds listening and editing, and whether the marks were shown. The word-level
        diff against the model's hypothesis (:func:`earmark.review.worddiff.word_diff`)
        is stored with the row as well.

    Returns
    -------
    int
        The id of the new correction row.

    Raises
    ------
    InvalidReview
        The text is empty (flag the clip as "no speech" instead), implausibly long for the
        clip's duration, or no name is given.
    CorrectedMeanwhile
        Another annotator corrected or flagged the clip after ``item`` was read. To
        replace their text on purpose, save
        ``dataclasses.replace(item, seen_correction_id=error.newest_id)``.
    """
    text = " ".join(text.split())
    if not text:
        raise InvalidReview("the correction is empty: type what is said, or flag the clip "
                            "on the Review page (for example as 'no speech')")
    _check_length(text, item)
    return _append(project, item, annotator=_check_annotator(annotator),
                   seconds_spent=seconds_spent, holder=holder, text=text, work=work)


@domain_errors
def flag(project: Project, item: ReviewItem, reason: str, *, annotator: str,
         seconds_spent: float, note: str | None = None, holder: str | None = None,
         work: Work | None = None) -> int:
    """Append a flag (a clip nobody can transcribe as is) and release the lease.

    Parameters
    ----------
    reason
        One of :data:`FLAG_REASONS`.
    note
        Free text, e.g. what "other" means here.

    Raises
    ------
    InvalidReview
        ``reason`` is not one of :data:`FLAG_REASONS`, or no name is given.
    CorrectedMeanwhile
        Another annotator corrected or flagged the clip after ``item`` was read (see
        :func:`save_correction`).
    """
    if reason not in FLAG_REASONS:
        raise InvalidReview(f"unknown flag reason {reason!r}; choose one of: {', '.join(FLAG_REASONS)}")
    return _append(project, item, annotator=_check_annotator(annotator),
                   seconds_spent=seconds_spent, holder=holder, flag=reason,
                   note=(note or "").strip() or None, work=work)


# --- progress and history -------------------------------------------------------------
