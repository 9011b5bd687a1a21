"""What the review pages show and how they read it: a clip to review with its words and
hypothesis, the round's progress and a clip's history as types, the database errors
translated for people (:func:`domain_errors`), and reading one clip (:func:`open_clip`).
The workflow's rules are in :mod:`earmark.review.workflow`.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from earmark.audio import read_clip
from earmark.config import SAMPLE_RATE
from earmark.errors import DatabaseBusy, EarmarkError, InvalidReview
from earmark.ranking.strategies import shown_score_name
from earmark.store.db import Clip, Correction, ModelVersion, QueueEntry, Source, TranscriptRow
from earmark.store.project import Project

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

def as_utc(dt: datetime) -> datetime:
    # SQLite hands datetimes back without a zone; every stored time is UTC
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def clip_name(source_path: str, offset: float) -> str:
    """A clip's name as pages show it: the source file's name, with the offset of a clip
    cut from a longer file."""
    return Path(source_path).name + (f"@{offset:.1f}s" if offset else "")


def annotator_of(holder: str) -> str:
    """The annotator's name in a lease holder id ``NAME#SESSION`` (see :func:`holder_id`)."""
    return holder.rsplit("#", 1)[0].replace("%23", "#").replace("%25", "%")


def dialect_insert(s: Session) -> Callable[..., Any]:
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

def _transcript_for(s: Session, clip_id: int, mv_id: int | None) -> TranscriptRow | None:
    """The transcript by ``mv_id``, else the newest one of any model."""
    if mv_id is not None:
        tr = s.scalars(select(TranscriptRow).where(TranscriptRow.clip_id == clip_id,
                                                TranscriptRow.model_version_id == mv_id)).first()
        if tr is not None:
            return tr
    return s.scalars(select(TranscriptRow).where(TranscriptRow.clip_id == clip_id)
                     .order_by(TranscriptRow.id.desc())).first()


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

    buf = io.BytesIO()
    sf.write(buf, read_clip(item.audio_path), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return buf.getvalue()


# --- writing ------------------------------------------------------------------------------
