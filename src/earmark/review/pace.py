"""How the team works: in how many browsers a name is open, how long the round has left at the
recorded pace, and seconds of work per minute of audio with and without the marks on
low-confidence words.

Reads only; the review editor records the seconds (``corrections.listen_seconds``,
``edit_seconds``, ``seconds_spent``) and whether the marks were shown (``marks_shown``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import func, select

from earmark.review.items import domain_errors
from earmark.review.progress import round_progress
from earmark.store.db import Clip, Correction, TranscriptRow
from earmark.store.project import Project

#: clips opened longer than this are left out of the pace (a tab left open over lunch)
MAX_SECONDS_PER_CLIP = 600.0


class Presence:
    """Which browsers each annotator name is open in, as their keep-alives report.

    One per running app (the app keeps it as a shared resource). A browser is known by an
    id it keeps in its own storage, so a reload or a second tab of the same browser is
    the same browser; another browser, or another machine, under the same name is
    another one, and is told so. A browser that stops reporting (a closed tab) drops out
    after ``window`` seconds.
    """

    def __init__(self, window: float):
        self.window = window
        self._seen: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def visit(self, name: str, browser: str, now: float) -> int:
        """Record that ``browser`` shows ``name``'s page at ``now`` (seconds); return how
        many other browsers showed it within the window."""
        with self._lock:
            seen = self._seen.setdefault(name, {})
            seen[browser] = now
            for b in [b for b, t in seen.items() if now - t > self.window]:
                del seen[b]
            return len(seen) - 1


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
    threshold = project.config.selection.low_confidence
    with project.store.session() as s:
        rows = s.execute(select(Correction.annotator, Correction.marks_shown,
                                Correction.seconds_spent, Clip.duration, TranscriptRow.words)
                         .join(Clip, Clip.id == Correction.clip_id)
                         .outerjoin(TranscriptRow, TranscriptRow.id == Correction.transcript_id)
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

