"""What the Dashboard and Browse pages show: the clip table with its filters, and the
figures of how labeling goes.

Read-only queries over the store, each returning a :class:`pandas.DataFrame` the page
draws as it is. :func:`clips_frame` gives every clip its status, ranking score and
newest text; :func:`filter_clips` narrows it for the Browse page without another query.
The figures follow the loop: labeled audio over time (:func:`labeled_over_time`), each
model's WER on its dev clips (:func:`model_wer`), and whether the ranking puts first the
clips annotators changed most (:func:`edit_rate_by_band`). Database locks become
:class:`~earmark.errors.DatabaseBusy`, as in :mod:`earmark.review.workflow`.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from earmark.review import reports
from earmark.review.items import clip_name, domain_errors, score_name
from earmark.store.db import Clip, Correction, Lease, ModelVersion, QueueEntry, Source, TranscriptRow, utcnow
from earmark.store.project import Project

#: a clip's state as the Browse page shows it, in the order of the workflow
STATUSES = ("queued", "in review", "corrected", "flagged", "not ranked")

# --- the clip table (Browse) -------------------------------------------------------------

_CLIP_COLUMNS = ["clip", "name", "speaker", "duration", "status", "score", "rank", "text",
                 "hypothesis", "annotator", "corrections", "updated"]


def _corrections_frame(s: Session) -> pd.DataFrame:
    rows = s.execute(select(Correction.id, Correction.clip_id, Correction.text, Correction.flag,
                            Correction.annotator, Correction.seconds_spent,
                            Correction.transcript_id, Correction.hypothesis,
                            Correction.created_at).order_by(Correction.id)).all()
    df = pd.DataFrame(rows, columns=["id", "clip", "text", "flag", "annotator", "seconds",
                                     "transcript_id", "hypothesis", "created_at"])
    df["created_at"] = pd.to_datetime(df["created_at"], utc=True)
    return df


@domain_errors
def clips_frame(project: Project) -> pd.DataFrame:
    """One row per clip with its status, ranking score and newest text.

    Columns: ``clip, name, speaker, duration, status, score, rank, text, hypothesis,
    annotator, corrections, updated``. ``status`` is one of :data:`STATUSES`; ``text`` is
    the newest correction, else the hypothesis of the active model; ``score`` is the
    queue's score, else the active model's score by the same measure (NaN if untranscribed).
    """
    sname = score_name(project)
    now = utcnow()
    with project.store.session() as s:
        active = s.scalar(select(ModelVersion.id).where(ModelVersion.active.is_(True)))
        clips = pd.DataFrame(s.execute(select(Clip.id, Source.path, Clip.offset, Clip.speaker,
                                              Clip.duration)
                                       .join(Source, Source.id == Clip.source_id)
                                       .order_by(Clip.id)).all(),
                             columns=["clip", "path", "offset", "speaker", "duration"])
        trs = pd.DataFrame(s.execute(select(TranscriptRow.clip_id, TranscriptRow.text, TranscriptRow.scores)
                                     .where(TranscriptRow.model_version_id == active)).all(),
                           columns=["clip", "hypothesis", "scores"])
        queue = pd.DataFrame(s.execute(select(QueueEntry.clip_id, QueueEntry.rank,
                                              QueueEntry.score)).all(),
                             columns=["clip", "rank", "queue_score"])
        leased = set(s.scalars(select(Lease.clip_id).where(Lease.expires_at > now)))
        corr = _corrections_frame(s)
    if clips.empty:
        return pd.DataFrame(columns=_CLIP_COLUMNS)
    clips["name"] = [clip_name(p, o) for p, o in zip(clips["path"], clips["offset"])]
    trs["hypothesis"] = trs["hypothesis"].str.strip()
    trs["model_score"] = [sc.get(sname, np.nan) for sc in trs["scores"]]
    latest = corr.groupby("clip").tail(1)[["clip", "text", "flag", "annotator", "created_at"]]
    latest = latest.rename(columns={"text": "last_text", "flag": "last_flag", "created_at": "updated"})
    df = clips.merge(trs[["clip", "hypothesis", "model_score"]], on="clip", how="left")
    df = df.merge(queue, on="clip", how="left").merge(latest, on="clip", how="left")
    df["score"] = df["queue_score"].fillna(df["model_score"]).astype(float)
    df["rank"] = df["rank"].astype("Int64")
    df["corrections"] = df["clip"].map(corr.groupby("clip").size()).fillna(0).astype(int)
    df["text"] = df["last_text"].where(df["last_text"].notna(), df["hypothesis"]).fillna("")
    df["hypothesis"] = df["hypothesis"].fillna("")
    df["status"] = np.select(
        [df["last_flag"].notna(), df["last_text"].notna(), df["clip"].isin(leased), df["rank"].notna()],
        ["flagged", "corrected", "in review", "queued"], default="not ranked")
    return df[_CLIP_COLUMNS].reset_index(drop=True)


def filter_clips(frame: pd.DataFrame, *, text: str = "", statuses: Collection[str] = (),
                 score_range: tuple[float, float] | None = None,
                 speaker: str | None = None) -> pd.DataFrame:
    """Rows of a :func:`clips_frame` that match every filter given.

    Parameters
    ----------
    text
        Case-insensitive substring of the newest text, the hypothesis or the file name.
    statuses
        Keep these statuses (all when empty).
    score_range
        Inclusive (low, high); clips without a score are dropped when given.
    speaker
        Exact speaker label.
    """
    keep = pd.Series(True, index=frame.index)
    if text.strip():
        needle = text.strip().lower()
        keep &= (frame["text"].str.lower().str.contains(needle, regex=False)
                 | frame["hypothesis"].str.lower().str.contains(needle, regex=False)
                 | frame["name"].str.lower().str.contains(needle, regex=False))
    if statuses:
        keep &= frame["status"].isin(list(statuses))
    if score_range is not None:
        keep &= frame["score"].between(*score_range)
    if speaker:
        keep &= frame["speaker"] == speaker
    return frame[keep.fillna(False)]


def search_clips(project: Project, *, text: str = "", statuses: Collection[str] = (),
                 score_range: tuple[float, float] | None = None,
                 speaker: str | None = None) -> pd.DataFrame:
    """Clips matching the filters, as in :func:`filter_clips`, ordered by clip id."""
    return filter_clips(clips_frame(project), text=text, statuses=statuses,
                        score_range=score_range, speaker=speaker)


# --- dashboard figures --------------------------------------------------------------------

@domain_errors
def labeled_over_time(project: Project) -> pd.DataFrame:
    """Cumulative labeled audio: one row per clip, at the time of its first text correction.

    Columns: ``time`` (UTC), ``clips``, ``minutes``.
    """
    with project.store.session() as s:
        rows = s.execute(select(Correction.clip_id, func.min(Correction.created_at), Clip.duration)
                         .join(Clip, Clip.id == Correction.clip_id)
                         .where(Correction.text.is_not(None))
                         .group_by(Correction.clip_id, Clip.duration)).all()
    df = pd.DataFrame(rows, columns=["clip", "time", "seconds"])
    df["time"] = pd.to_datetime(df["time"], utc=True)
    df = df.sort_values("time", kind="stable")
    return pd.DataFrame({"time": df["time"], "clips": np.arange(1, len(df) + 1),
                         "minutes": df["seconds"].cumsum() / 60}).reset_index(drop=True)


@domain_errors
def model_wer(project: Project) -> pd.DataFrame:
    """The WER of each model version on every dev set it was evaluated on.

    Fine-tuning measures the parent and the new version on the dev clips it held out and
    records both in the new version's record (``dev_wer_before``, ``dev_wer_after``); each
    is one row here, so the parent and the child are compared on the same clips.
    Columns: ``model``, ``dev_set`` (the version whose held-out clips were used),
    ``wer``, ``order`` (creation order of ``model``).
    """
    with project.store.session() as s:
        versions = s.execute(select(ModelVersion.id, ModelVersion.name, ModelVersion.record)
                             .order_by(ModelVersion.id)).all()
    order = {name: vid for vid, name, _ in versions}
    rows = []
    for _, name, record in versions:
        record = record or {}
        parent = (record.get("parent") or {}).get("name")
        if parent in order and isinstance(record.get("dev_wer_before"), (int, float)):
            rows.append((parent, name, float(record["dev_wer_before"]), order[parent]))
        if isinstance(record.get("dev_wer_after"), (int, float)):
            rows.append((name, name, float(record["dev_wer_after"]), order[name]))
    return pd.DataFrame(rows, columns=["model", "dev_set", "wer", "order"])


@domain_errors
def model_versions(project: Project) -> pd.DataFrame:
    """Every model version with what its fine-tune recorded, newest first
    (:func:`earmark.review.reports.versions` as a table).

    Columns: ``version``, ``parent``, ``status`` ("active", or the stored status:
    "ready", "rejected", "training"), ``clips`` (corrections trained on),
    ``dev_wer_before`` (the parent's), ``dev_wer_after``, ``forgetting`` (the share of
    the parent's words changed on the uncorrected clips it was surest of; NaN when not
    measured), ``finished`` (UTC). Base models have no record: NaN and empty fields.
    """
    rows = [(v.name, v.parent or "", v.status, v.train_clips, v.dev_wer_before, v.dev_wer_after,
             v.forgetting, reports.minute(v.finished_at)) for v in reports.versions(project)]
    return pd.DataFrame(rows, columns=["version", "parent", "status", "clips", "dev_wer_before",
                                       "dev_wer_after", "forgetting", "finished"])


def score_distribution(project: Project) -> pd.DataFrame:
    """Ranking score and status of every scored clip. Columns: ``clip``, ``score``, ``status``."""
    df = clips_frame(project)
    return df.loc[df["score"].notna(), ["clip", "score", "status"]].reset_index(drop=True)


def word_edits(hypothesis: str, corrected: str) -> tuple[int, int]:
    """(word edits, corrected words) turning ``hypothesis`` into ``corrected``.

    Case and punctuation are ignored, so the rate counts changed words, not restyling.
    """
    import jiwer

    norm = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(),
                          jiwer.RemoveMultipleSpaces(), jiwer.Strip(), jiwer.ReduceToListOfListOfWords()])
    ref_words = norm(corrected)[0] if corrected.strip() else []
    hyp_words = norm(hypothesis)[0] if hypothesis.strip() else []
    if not ref_words or not hyp_words:
        return max(len(ref_words), len(hyp_words)), len(ref_words)
    out = jiwer.process_words(corrected, hypothesis, reference_transform=norm, hypothesis_transform=norm)
    return out.substitutions + out.deletions + out.insertions, len(ref_words)


@domain_errors
def edit_rates(project: Project) -> pd.DataFrame:
    """How much annotators changed the model's text, per corrected clip.

    Each clip's newest text correction is compared with the model hypothesis it was made
    on. Columns: ``clip``, ``score`` (the ranking score of that transcript), ``edits``,
    ``words``, ``edit_rate`` (edits / corrected words), ``hyp_words`` (the hypothesis's).
    """
    sname = score_name(project)
    with project.store.session() as s:
        corr = _corrections_frame(s)
        corr = corr[corr["text"].notna()].groupby("clip").tail(1)
        trs = {tid: (text, scores) for tid, text, scores in s.execute(
            select(TranscriptRow.id, TranscriptRow.text, TranscriptRow.scores)
            .where(TranscriptRow.id.in_([int(t) for t in corr["transcript_id"].dropna()])))}
    rows = []
    for c in corr.itertuples():
        text, scores = trs.get(c.transcript_id, (c.hypothesis or "", {}))
        edits, words = word_edits(text, c.text)
        rows.append((c.clip, scores.get(sname, np.nan), edits, words, edits / max(words, 1),
                     len(text.split())))
    return pd.DataFrame(rows, columns=["clip", "score", "edits", "words", "edit_rate", "hyp_words"])


def edit_rate_by_band(project: Project, bands: int = 4) -> pd.DataFrame:
    """Word edit rate of corrected clips by ranking-score band (quantiles of the score).

    If the ranking works, high-score bands need more edits. Columns: ``band`` (label with
    the score range), ``low``, ``high``, ``clips``, ``edit_rate`` (pooled: all edits over
    all corrected words of the band); bands ordered from low to high score.
    """
    df = edit_rates(project).dropna(subset=["score"])
    columns = ["band", "low", "high", "clips", "edit_rate"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    codes = pd.qcut(df["score"].rank(method="first"), q=min(bands, len(df)), labels=False)
    out = []
    for _, g in df.groupby(codes, sort=True):
        low, high = float(g["score"].min()), float(g["score"].max())
        out.append((f"{low:.2f}–{high:.2f}", low, high, len(g),
                    g["edits"].sum() / max(int(g["words"].sum()), 1)))
    return pd.DataFrame(out, columns=columns)


@domain_errors
def annotator_rates(project: Project) -> pd.DataFrame:
    """Clips per hour of open-clip time, per annotator (corrections and flags both count).

    Columns: ``annotator``, ``clips``, ``hours``, ``clips_per_hour``.
    """
    with project.store.session() as s:
        corr = _corrections_frame(s)
    columns = ["annotator", "clips", "hours", "clips_per_hour"]
    if corr.empty:
        return pd.DataFrame(columns=columns)
    g = corr.groupby("annotator").agg(clips=("id", "size"), seconds=("seconds", "sum")).reset_index()
    g["hours"] = g["seconds"] / 3600
    g["clips_per_hour"] = g["clips"] / g["hours"].where(g["hours"] > 0)
    return g[columns].sort_values("clips_per_hour", ascending=False).reset_index(drop=True)


def speakers(frame: pd.DataFrame) -> list[str]:
    """The distinct speaker labels of a :func:`clips_frame`, sorted."""
    return sorted(str(x) for x in frame["speaker"].dropna().unique())

