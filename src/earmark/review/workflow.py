"""The review workflow over the store: leases, corrections, flags, round progress and
each clip's history.

The Streamlit pages in ``app/`` only call these functions (and the queries of
:mod:`earmark.review.dashboard`), so everything the app does can be done (and tested) from
Python. Three rules hold here:

* A clip shown to one annotator is *leased* to them (:func:`next_clip`); the lease is
  taken with one conditional insert-or-update, so two sessions never hold the same clip,
  and an expired lease simply loses that condition and returns the clip to the queue.
* Corrections and flags are appended, never updated: re-correcting a clip, or two people
  saving the same clip, leaves every text in the history (:func:`clip_history`).
* A save never silently wins over another annotator's: when someone else corrected or
  flagged the clip after it was opened, the save is refused with
  :class:`~earmark.errors.CorrectedMeanwhile`, and goes through only once the annotator
  has seen their text and chosen to replace it.
* Database locks become :class:`~earmark.errors.DatabaseBusy` with a message a person
  can act on, never a driver traceback.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from earmark.config import SAMPLE_RATE, to_dict
from earmark.errors import (
    CorrectedMeanwhile,
    DatabaseBusy,
    EarmarkError,
    InvalidReview,
    NothingRanked,
    PoolExhausted,
)
from earmark.store.project import Project
from earmark.ranking.strategies import shown_score_name
from earmark.store.db import (
    Clip,
    Correction,
    Lease,
    ModelVersion,
    QueueEntry,
    Round,
    Source,
    Transcript,
    utcnow,
    waiting_for_review,
)

#: environment variable through which ``earmark review`` tells the app its project
PROJECT_ENV = "EARMARK_PROJECT"

#: the flag for a clip whose stored audio file cannot be read
AUDIO_MISSING = "audio missing"

#: why a clip can be flagged instead of corrected
FLAG_REASONS = ("no speech", "unintelligible", "wrong language", "bad audio", AUDIO_MISSING,
                "other")

#: what each sign of a doubtful hypothesis (:func:`earmark.ranking.scoring.hallucination_flags`,
#: stored with the transcript) tells the person correcting it
HYPOTHESIS_WARNINGS = {
    "loop": "The model went into a loop on this clip (it repeated itself or ran on): its "
            "text may be cut short or repeat words. Listen to the whole clip.",
    "no-speech": "The model thinks this clip may hold no speech, yet wrote words: if nobody "
                 "speaks, flag it as “no speech”.",
    "too-fast": "The text has more words than a person says in this time: some may be "
                "invented.",
    "empty": "The model wrote nothing: type what is said, or flag the clip if nothing is.",
}

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

# candidates read per query in next_clip; more are read if others take these first
_CANDIDATES_PER_READ = 20

F = TypeVar("F", bound=Callable[..., Any])


def domain_errors(fn: F) -> F:
    """Turn a lock that outlasted the driver's wait into :class:`DatabaseBusy`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except OperationalError as exc:
            if "locked" not in str(exc.orig).lower() and "busy" not in str(exc.orig).lower():
                raise
            raise DatabaseBusy(
                "the project database is locked by another process (for example `earmark "
                "rank` storing transcripts); wait a moment and try again"
            ) from exc

    return wrapper  # type: ignore[return-value]


# --- what a page shows ----------------------------------------------------------------

@dataclass(frozen=True)
class Word:
    """One word of a hypothesis with its time span (seconds) and probability."""

    text: str  # as the model wrote it, leading space included
    start: float
    end: float
    p: float


@dataclass(frozen=True)
class ReviewItem:
    """A clip as the review page shows it."""

    clip_id: int
    name: str  # source file name, with the offset for a clip of a split file
    duration: float  # seconds
    speaker: str | None
    audio_path: Path  # absolute path of the stored 16 kHz FLAC
    rank: int | None  # place in the queue, None when not queued
    score: float | None  # the ranking score (higher: reviewed sooner)
    model_version: str | None  # the model that wrote the hypothesis
    transcript_id: int | None
    hypothesis: str  # the model's text ("" when the clip is not transcribed)
    words: tuple[Word, ...]
    start_text: str  # what the text box starts from: the newest correction, else the hypothesis
    # id of the newest correction or flag of the clip when it was read (0: none); a save
    # is refused when another annotator saved one after it (see CorrectedMeanwhile)
    seen_correction_id: int = 0
    # signs that the hypothesis is not what was said ("loop", "no-speech", "too-fast", "empty")
    flags: tuple[str, ...] = ()

    @property
    def warnings(self) -> list[str]:
        """What the flags mean for the person correcting the clip, one sentence each."""
        return [HYPOTHESIS_WARNINGS[f] for f in self.flags if f in HYPOTHESIS_WARNINGS]


@dataclass(frozen=True)
class RoundProgress:
    """How far the current round is: corrected clips and audio against its budget."""

    number: int
    budget_minutes: float
    clips: int  # clips with a text correction in this round
    minutes: float  # their audio, in minutes
    flagged: int  # clips flagged in this round
    model_version: str | None  # the active model

    @property
    def fraction(self) -> float:
        """Share of the budget corrected, clipped to [0, 1]."""
        return min(1.0, self.minutes / self.budget_minutes) if self.budget_minutes > 0 else 0.0


@dataclass(frozen=True)
class HistoryEntry:
    """One correction or flag of a clip."""

    correction_id: int
    created_at: datetime  # UTC
    annotator: str
    text: str | None  # None for a flag
    flag: str | None
    note: str | None
    seconds_spent: float  # how long the clip was open
    hypothesis: str | None  # the text the annotator started from
    round_number: int | None


@dataclass(frozen=True)
class ClipHistory:
    """Everything known about one clip, for the Browse page."""

    item: ReviewItem
    reference_text: str | None  # from the import manifest; never shown as a correction
    transcripts: tuple[tuple[str, str], ...]  # (model version, text), oldest model first
    entries: tuple[HistoryEntry, ...]  # oldest first
    held_by: str | None  # annotator holding an unexpired lease on it


# --- small helpers --------------------------------------------------------------------

def _utc(dt: datetime) -> datetime:
    # SQLite hands datetimes back without a zone; every stored time is UTC
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def clip_name(source_path: str, offset: float) -> str:
    """A clip's name as pages show it: the source file's name, with the offset of a clip
    cut from a longer file."""
    return Path(source_path).name + (f"@{offset:.1f}s" if offset else "")


def annotator_of(holder: str) -> str:
    """The annotator's name in a lease holder id ``NAME#SESSION`` (see :func:`holder_id`)."""
    return holder.rsplit("#", 1)[0].replace("%23", "#").replace("%25", "%")


def _insert(s: Session) -> Callable[..., Any]:
    """The dialect's INSERT with ON CONFLICT, which a conditional lease needs."""
    name = s.get_bind().dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        raise EarmarkError(f"the review app needs SQLite or PostgreSQL; this project uses {name}")
    return insert


def score_name(project: Project) -> str:
    """The score the queue is ordered by (the default strategy's for unscored orders)."""
    with project.store.session() as s:
        strategy = s.scalar(select(QueueEntry.strategy).limit(1))
    return shown_score_name(strategy or project.config.selection.strategy)


# --- leases -----------------------------------------------------------------------------

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
    stmt = _lease_stmt(_insert(s), clip_id, holder, now, expires,
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

def _transcript_for(s: Session, clip_id: int, mv_id: int | None) -> Transcript | None:
    """The transcript by ``mv_id``, else the newest one of any model."""
    if mv_id is not None:
        tr = s.scalars(select(Transcript).where(Transcript.clip_id == clip_id,
                                                Transcript.model_version_id == mv_id)).first()
        if tr is not None:
            return tr
    return s.scalars(select(Transcript).where(Transcript.clip_id == clip_id)
                     .order_by(Transcript.id.desc())).first()


@domain_errors
def open_clip(project: Project, clip_id: int, as_of: int | None = None) -> ReviewItem:
    """Read one clip with the hypothesis to show (no lease is taken).

    The hypothesis is the queue's model's transcript, else the active model's, else the
    newest; the text box starts from the newest text correction when there is one.

    Parameters
    ----------
    as_of
        Read the clip as it was when its newest correction had this id (0: before any),
        i.e. as an annotator who opened it then saw it: a page that reads the clip again
        on every rerun passes the ``seen_correction_id`` it first got, so that a save
        still detects what others saved since. None: as it is now.

    Raises
    ------
    InvalidReview
        No clip has this id.
    """
    sname = score_name(project)
    with project.store.session() as s:
        clip = s.get(Clip, clip_id)
        if clip is None:
            raise InvalidReview(f"clip {clip_id} is not in the project {project.root}")
        source = s.get(Source, clip.source_id)
        entry = s.get(QueueEntry, clip_id)
        active = s.scalar(select(ModelVersion.id).where(ModelVersion.active.is_(True)))
        tr = _transcript_for(s, clip_id, entry.model_version_id if entry else active)
        mv_name = (s.scalar(select(ModelVersion.name).where(ModelVersion.id == tr.model_version_id))
                   if tr else None)
        seen = (s.scalar(select(func.max(Correction.id)).where(Correction.clip_id == clip_id)) or 0
                if as_of is None else as_of)
        latest_text = s.scalar(select(Correction.text).where(Correction.clip_id == clip_id,
                                                             Correction.text.is_not(None),
                                                             Correction.id <= seen)
                               .order_by(Correction.id.desc()).limit(1))
    hypothesis = tr.text.strip() if tr else ""
    score = entry.score if entry else (tr.scores.get(sname) if tr else None)
    return ReviewItem(
        clip_id=clip.id, name=clip_name(source.path, clip.offset) if source else str(clip.id),
        duration=clip.duration, speaker=clip.speaker, audio_path=project.clip_path(clip.audio_path),
        rank=entry.rank if entry else None, score=score, model_version=mv_name,
        transcript_id=tr.id if tr else None, hypothesis=hypothesis,
        words=tuple(Word(w["word"], float(w["start"]), float(w["end"]), float(w["p"]))
                    for w in (tr.words if tr else [])),
        start_text=latest_text if latest_text is not None else hypothesis,
        seen_correction_id=seen,
        flags=tuple((tr.scores or {}).get("flags") or ()) if tr else (),
    )


def clip_wav(item: ReviewItem) -> bytes:
    """The clip's audio as a 16-bit WAV file, which every browser plays."""
    import soundfile as sf

    from earmark.audio import read_clip

    buf = io.BytesIO()
    sf.write(buf, read_clip(item.audio_path), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return buf.getvalue()


# --- writing ------------------------------------------------------------------------------

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
    s.execute(_insert(s)(Round).values(
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
    when = f"{_utc(c.created_at):%Y-%m-%d %H:%M} UTC"
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
    from earmark.review.worddiff import word_diff

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
    from earmark.store.backup import take_if_due

    try:
        take_if_due(project, "review")
    except EarmarkError as exc:  # the row is committed: say so, or the annotator types it again
        raise type(exc)(f"your work was saved, but {exc}") from exc


@dataclass(frozen=True)
class Work:
    """How a clip was worked on, as the review editor measured it (None: not measured)."""

    listen_seconds: float | None = None  # seconds the audio played
    edit_seconds: float | None = None  # seconds from the first edit of the text to the last
    marks_shown: bool | None = None  # whether the low-confidence words were marked


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
        transcripts = s.execute(select(ModelVersion.name, Transcript.text)
                                .join(ModelVersion, ModelVersion.id == Transcript.model_version_id)
                                .where(Transcript.clip_id == clip_id)
                                .order_by(ModelVersion.id)).all()
        rows = s.execute(select(Correction, Round.number)
                         .outerjoin(Round, Round.id == Correction.round_id)
                         .where(Correction.clip_id == clip_id).order_by(Correction.id)).all()
        holder = s.scalar(select(Lease.annotator).where(Lease.clip_id == clip_id,
                                                        Lease.expires_at > now))
    entries = tuple(HistoryEntry(c.id, _utc(c.created_at), c.annotator, c.text, c.flag, c.note,
                                 c.seconds_spent, c.hypothesis, number) for c, number in rows)
    return ClipHistory(item, reference, tuple((m, t.strip()) for m, t in transcripts), entries,
                       annotator_of(holder) if holder else None)
