"""How the team works: who else is open under a name, how long the round has left at the
recorded pace, and seconds of work per minute of audio with and without the marks on
low-confidence words.

Reads only; the review editor records the seconds (``corrections.listen_seconds``,
``edit_seconds``, ``seconds_spent``) and whether the marks were shown (``marks_shown``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy import func, select

from earmark.review.workflow import _same_annotator, domain_errors, round_progress
from earmark.store.db import Clip, Correction, Lease, utcnow
from earmark.store.project import Project

#: clips opened longer than this are left out of the pace (a tab left open over lunch)
MAX_SECONDS_PER_CLIP = 600.0


@domain_errors
def other_sessions(project: Project, holder: str) -> int:
    """How many other browser sessions of the same annotator hold a clip now.

    Each open review tab renews its lease every few seconds, so a closed tab stops
    counting within ``review.lease_minutes``.
    """
    with project.store.session() as s:
        return s.scalar(select(func.count()).select_from(Lease).where(
            Lease.expires_at > utcnow(), _same_annotator(holder), Lease.annotator != holder)) or 0


@dataclass(frozen=True)
class Pace:
    """The team's recorded pace and what it means for the open round."""

    seconds_per_audio_second: float | None  # None: no timed correction yet
    clips_timed: int
    minutes_left: float | None  # of work, to finish the round's budget at that pace


@domain_errors
def round_pace(project: Project) -> Pace:
    """Seconds of work per second of audio over every timed correction, and the time the
    rest of the open round's budget takes at that pace."""
    with project.store.session() as s:
        rows = s.execute(select(Correction.seconds_spent, Clip.duration)
                         .join(Clip, Clip.id == Correction.clip_id)
                         .where(Correction.text.is_not(None), Correction.seconds_spent > 0,
                                Correction.seconds_spent <= MAX_SECONDS_PER_CLIP)).all()
    work = sum(r[0] for r in rows)
    audio = sum(r[1] for r in rows)
    if not rows or audio <= 0:
        return Pace(None, 0, None)
    ratio = work / audio
    progress = round_progress(project)
    left = max(0.0, progress.budget_minutes - progress.minutes) * ratio  # audio min -> work min
    return Pace(ratio, len(rows), left)


#: the score bands of the with/without comparison, by the share of a clip's words that
#: are below the low-confidence threshold
BANDS = ((0.0, 0.1, "under 10 % unsure"), (0.1, 0.3, "10-30 % unsure"), (0.3, 1.01, "30 % or more unsure"))


@domain_errors
def work_with_and_without_marks(project: Project) -> pd.DataFrame:
    """Seconds of work per minute of audio, with and without the marks.

    One row per (annotator, confidence band, marks shown) with ``clips``,
    ``audio_minutes`` and ``seconds_per_audio_minute``. The band is the share of the
    hypothesis's words the model was unsure of; corrections saved without a record of
    the marks (before the editor) are left out.
    """
    from earmark.store.db import Transcript

    threshold = project.config.selection.low_confidence
    with project.store.session() as s:
        rows = s.execute(select(Correction.annotator, Correction.marks_shown,
                                Correction.seconds_spent, Clip.duration, Transcript.words)
                         .join(Clip, Clip.id == Correction.clip_id)
                         .outerjoin(Transcript, Transcript.id == Correction.transcript_id)
                         .where(Correction.text.is_not(None), Correction.marks_shown.is_not(None),
                                Correction.seconds_spent > 0,
                                Correction.seconds_spent <= MAX_SECONDS_PER_CLIP)).all()
    records = []
    for annotator, marks, seconds, duration, words in rows:
        ws = words or []
        unsure = sum(1 for w in ws if float(w.get("p", 1)) < threshold) / len(ws) if ws else 0.0
        band = next(label for lo, hi, label in BANDS if lo <= unsure < hi)
        records.append({"annotator": annotator, "band": band,
                        "marks": "marked" if marks else "unmarked",
                        "seconds": seconds, "audio_minutes": duration / 60})
    cols = ["annotator", "band", "marks", "clips", "audio_minutes", "seconds_per_audio_minute"]
    if not records:
        return pd.DataFrame(columns=cols)
    frame = pd.DataFrame(records)
    out = (frame.groupby(["annotator", "band", "marks"], as_index=False)
           .agg(clips=("seconds", "size"), seconds=("seconds", "sum"),
                audio_minutes=("audio_minutes", "sum")))
    out["seconds_per_audio_minute"] = out["seconds"] / out["audio_minutes"]
    return out[cols]

