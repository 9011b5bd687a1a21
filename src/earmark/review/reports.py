"""Read-only views of a project for people: its status, the head of the queue, and one
model version's story."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from earmark.models.versions import lookup_version, unknown_version, version_spec
from earmark.store.db import Clip, ModelVersion, QueueEntry, Source, TranscriptRow, waiting_for_review
from earmark.store.project import Project
from earmark.train.finetune import RECORD_FILE


@dataclass(frozen=True)
class Status:
    """Counts that say where a project stands."""

    clips: int
    clip_minutes: float
    files: int
    rejected: list[tuple[str, str]]  # (path, reason)
    transcribed: int  # by the active model
    corrected: int  # clips with a correction (not a flag)
    flagged: int
    labeled_minutes: float
    active_model: str | None
    queued: int
    unfinished: tuple[str, ...] = ()  # fine-tuning runs killed or stopped before the end


def status(project: Project) -> Status:
    """Gather the project's :class:`Status`."""
    store = project.store
    mv = store.active_model()
    latest = store.latest_corrections(include_flagged=True)
    corrected_ids = {c.clip_id for c in latest if c.flag is None}
    with store.session() as s:
        n_clips, seconds = s.execute(select(func.count(Clip.id), func.coalesce(func.sum(Clip.duration), 0.0))).one()
        files = s.scalar(select(func.count()).where(Source.status == "ok")) or 0
        rejected = [(p, r) for p, r in s.execute(select(Source.path, Source.reason)
                                                 .where(Source.status == "rejected").order_by(Source.id))]
        transcribed = s.scalar(select(func.count()).select_from(TranscriptRow)
                               .where(TranscriptRow.model_version_id == (mv.id if mv else -1))) or 0
        labeled = s.scalar(select(func.coalesce(func.sum(Clip.duration), 0.0))
                           .where(Clip.id.in_(corrected_ids))) if corrected_ids else 0.0
        queued = s.scalar(select(func.count()).select_from(QueueEntry).where(waiting_for_review())) or 0
    return Status(clips=n_clips, clip_minutes=seconds / 60, files=files, rejected=rejected,
                  transcribed=transcribed, corrected=len(corrected_ids),
                  flagged=sum(1 for c in latest if c.flag is not None),
                  labeled_minutes=(labeled or 0.0) / 60,
                  active_model=mv.name if mv else None, queued=queued,
                  unfinished=tuple(mv.name for mv in store.unfinished_runs()))


@dataclass(frozen=True)
class QueueRow:
    """One line of the review queue."""

    rank: int
    clip_id: int
    name: str  # source file name, with the offset for a clip of a split file
    duration: float
    score: float
    text: str
    words: list[dict]  # [{word, start, end, p}]
    flags: list[str]


def queue(project: Project, top: int = 20) -> list[QueueRow]:
    """The first ``top`` clips of the queue with their hypotheses."""
    with project.store.session() as s:
        rows = s.execute(
            select(QueueEntry, Clip, Source, TranscriptRow)
            .join(Clip, Clip.id == QueueEntry.clip_id)
            .join(Source, Source.id == Clip.source_id)
            .join(TranscriptRow, (TranscriptRow.clip_id == Clip.id)
                  & (TranscriptRow.model_version_id == QueueEntry.model_version_id))
            .where(waiting_for_review())
            .order_by(QueueEntry.rank).limit(top)).all()
    out = []
    for q, clip, src, tr in rows:
        name = Path(src.path).name + (f"@{clip.offset:.1f}s" if clip.offset else "")
        out.append(QueueRow(q.rank, clip.id, name, clip.duration, q.score, tr.text, tr.words,
                            list(tr.scores.get("flags", []))))
    return out


def mark_words(words: list[dict], threshold: float, ansi: bool = False) -> str:
    """Hypothesis text with words below ``threshold`` marked.

    With ``ansi`` low words are red and underlined (two cues, not colour alone);
    otherwise they are wrapped as ``[word]``.
    """
    parts = []
    for w in words:
        text = w["word"]
        if w["p"] < threshold:
            core = text.strip()
            lead = text[: len(text) - len(text.lstrip())]
            text = lead + (f"\033[4;31m{core}\033[0m" if ansi else f"[{core}]")
        parts.append(text)
    return "".join(parts).strip()


@dataclass(frozen=True)
class VersionDetails:
    """What a model version is and why it is (or is not) the active one.

    Figures a run did not record (base models, older records) are NaN.
    """

    name: str
    spec: str  # what loads it: a Whisper name or a checkpoint path
    status: str  # "active", or the stored status: "ready", "rejected", "training"
    verdict: str | None  # the gate's message when the run finished; None otherwise
    parent: str | None
    mode: str | None
    train_clips: int
    dev_clips: int
    steps: int | None
    dev_wer_before: float  # the parent's, on the run's dev split
    dev_wer_after: float
    forgetting: float  # share of the parent's words changed on the clips it was surest of
    started_at: str | None  # ISO 8601, UTC
    finished_at: str | None
    record_path: Path | None  # the record file beside a fine-tuned checkpoint


def _figure(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan


def minute(timestamp: str | None) -> str:
    """An ISO 8601 time as ``YYYY-MM-DD HH:MM`` ("" for None)."""
    return (timestamp or "")[:16].replace("T", " ")


def _details(project: Project, mv: ModelVersion) -> VersionDetails:
    record, config = mv.record or {}, mv.config or {}
    return VersionDetails(
        name=mv.name, spec=version_spec(project, mv), status="active" if mv.active else (mv.status or ""),
        verdict=(record.get("gate") or {}).get("message"),
        parent=(record.get("parent") or {}).get("name"), mode=config.get("mode"),
        train_clips=len(record.get("train_clips") or ()), dev_clips=len(record.get("dev_clips") or ()),
        steps=record.get("steps"), dev_wer_before=_figure(record.get("dev_wer_before")),
        dev_wer_after=_figure(record.get("dev_wer_after")),
        forgetting=_figure((record.get("drift") or {}).get("changed")),
        started_at=record.get("started_at"), finished_at=record.get("finished_at"),
        record_path=(project.root / record["checkpoint"]).with_name(RECORD_FILE)
        if record.get("checkpoint") else None)


def versions(project: Project) -> list[VersionDetails]:
    """Every model version of the project, newest first."""
    with project.store.session() as s:
        return [_details(project, mv) for mv in s.scalars(select(ModelVersion).order_by(ModelVersion.id.desc()))]


def version_details(project: Project, name: str) -> VersionDetails:
    """The :class:`VersionDetails` of the version named (or with spec) ``name``.

    Raises
    ------
    UnknownModelVersion
        No such version; the message lists the known ones.
    """
    mv = lookup_version(project, name)
    if mv is None:
        raise unknown_version(project, name)
    return _details(project, mv)
