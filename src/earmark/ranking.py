"""Rank a project's pool: transcribe what the active model has not seen, score, order.

Transcription is streamed in chunks; each chunk's transcripts are committed in one
transaction, so a killed run loses at most the chunk in progress and the next run
starts after the last committed clip.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace

from sqlalchemy import delete, select
from tqdm.auto import tqdm

from . import audio as au
from .config import DecodeConfig, SelectionConfig
from .project import Project
from .scoring import hallucination_flags, transcript_scores
from .selection import Candidate, get_strategy
from .store import Clip, Correction, ModelVersion, QueueEntry, Transcript as TranscriptRow
from .transcribe import Decoder, Transcript


@dataclass(frozen=True)
class Transcribed:
    """What :func:`transcribe_pending` did: the decoding half of a :class:`RankReport`."""

    transcribed: int = 0  # clips transcribed by this run
    audio_seconds: float = 0.0  # audio transcribed by this run
    wall_seconds: float = 0.0  # time spent transcribing
    windows: int = 0  # 30 s windows the encoder ran on (packed ones and retries)
    retried: int = 0  # re-decodings of clips a packed window lost (see Decoder.transcribe)

    @property
    def audio_seconds_per_second(self) -> float:
        """Throughput of this run (0 when nothing was transcribed)."""
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


@dataclass(frozen=True)
class RankReport(Transcribed):
    """What a rank run did: the decoding, and the queue it built."""

    model_version: str = ""
    queued: int = 0  # clips in the new queue
    strategy: str = ""


def transcript_row(clip_id: int, mv_id: int, t: Transcript) -> TranscriptRow:
    """The database row for a transcript, with its scores and flags."""
    scores = transcript_scores(t)
    flags = hallucination_flags(n_words=len(t.words), duration=t.duration,
                                avg_logprob=t.avg_logprob, no_speech_prob=t.no_speech_prob,
                                compression_ratio=t.compression_ratio, stop_reason=t.stop_reason)
    return TranscriptRow(
        clip_id=clip_id, model_version_id=mv_id, text=t.text,
        tokens=[{"id": x.id, "text": x.text, "p": round(x.p, 5), "logprob": round(x.logprob, 5),
                 "entropy": round(x.entropy, 5)} for x in t.tokens],
        words=[{"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3),
                "p": round(w.p, 5)} for w in t.words],
        avg_logprob=t.avg_logprob, no_speech_prob=t.no_speech_prob,
        compression_ratio=t.compression_ratio,
        scores={**scores, "flags": list(flags), "stop_reason": t.stop_reason},
    )


def _pending(project: Project, mv_id: int, limit: int | None = None) -> list[tuple[int, str, float]]:
    """(clip id, audio path, duration) of clips this model version has not transcribed.

    Only these three small fields per clip are held (no audio), so a pool of a million
    clips costs some tens of MB here.
    """
    with project.store.session() as s:
        done = select(TranscriptRow.clip_id).where(TranscriptRow.model_version_id == mv_id)
        query = select(Clip.id, Clip.audio_path, Clip.duration).where(Clip.id.not_in(done)).order_by(Clip.id)
        rows = s.execute(query.limit(limit) if limit else query).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _ranking_threads(cfg: DecodeConfig, device: str) -> tuple[int, bool]:
    """torch CPU threads for ranking, and whether the encoder should overlap decoding.

    With two or more threads, the encoder of the next batch runs in its own thread
    while this batch decodes, each with half the threads: on two cores that is one
    thread each, with no OpenMP barrier between them. (Two intra-op threads for the
    decoder's small products measured three times slower than one on this project's
    two shared cores.)
    """
    if device != "cpu":
        return 0, False
    threads = cfg.threads or os.cpu_count() or 1
    overlap = threads >= 2
    return (max(1, threads // 2) if overlap else threads), overlap


def transcribe_pending(project: Project, mv: ModelVersion, cfg: DecodeConfig,
                       progress: bool = True, limit: int | None = None) -> Transcribed:
    """Transcribe and store every clip ``mv`` has not transcribed (the first ``limit``).

    Audio is read one chunk at a time, so memory does not grow with the pool.
    """
    from .models import load_model, torch_threads

    pending = _pending(project, mv.id, limit)
    if not pending:
        return Transcribed()
    model = load_model(mv.spec, cfg.device)
    threads, overlap = _ranking_threads(cfg, model.device.type)
    with torch_threads(threads):
        return _transcribe_chunks(project, mv, cfg, pending, Decoder(model, cfg, overlap=overlap),
                                  progress)


def _transcribe_chunks(project: Project, mv: ModelVersion, cfg: DecodeConfig,
                       pending: list[tuple[int, str, float]], decoder: Decoder,
                       progress: bool) -> Transcribed:
    """Decode ``pending`` chunk by chunk, committing each chunk's transcripts."""
    total = sum(d for _, _, d in pending)
    # a chunk holds enough clips to fill every window of a few batches, and is small
    # enough that a kill loses little and memory stays flat on any pool size
    chunk = cfg.batch_size * (8 if cfg.pack else 1) * 2
    start, done_s, n = time.perf_counter(), 0.0, 0
    bar = tqdm(total=round(total, 1), unit="audio-s", desc=f"rank {mv.name}",
               disable=not progress, dynamic_ncols=True)
    with bar:
        for part in _chunks(pending, chunk):
            audios = [au.read_clip(project.clip_path(path)) for _, path, _ in part]
            results = decoder.transcribe(audios)
            with project.store.session() as s:
                seen = set(s.scalars(select(TranscriptRow.clip_id).where(
                    TranscriptRow.model_version_id == mv.id,
                    TranscriptRow.clip_id.in_([c for c, _, _ in part]))))
                for (clip_id, _, _), t in zip(part, results):
                    if clip_id not in seen:  # another rank process may have done it
                        s.add(transcript_row(clip_id, mv.id, t))
            n += len(part)
            seconds = sum(d for _, _, d in part)
            done_s += seconds
            bar.update(round(seconds, 1))
            bar.set_postfix(clips=f"{n}/{len(pending)}", hours=f"{done_s / 3600:.2f}")
    return Transcribed(n, done_s, time.perf_counter() - start, decoder.windows, decoder.retried)


def candidates(project: Project, mv_id: int) -> list[Candidate]:
    """Clips transcribed by ``mv_id`` and not yet corrected or flagged, as candidates."""
    with project.store.session() as s:
        corrected = select(Correction.clip_id)
        rows = s.execute(select(Clip.id, Clip.duration, TranscriptRow.scores)
                         .join(TranscriptRow, TranscriptRow.clip_id == Clip.id)
                         .where(TranscriptRow.model_version_id == mv_id,
                                Clip.id.not_in(corrected))).all()
    return [Candidate(cid, dur, {k: v for k, v in sc.items() if isinstance(v, (int, float))})
            for cid, dur, sc in rows]


def build_queue(project: Project, mv_id: int, sel: SelectionConfig) -> int:
    """Replace the queue with the strategy's order over the uncorrected pool."""
    strategy = get_strategy(sel.strategy, seed=sel.seed)
    ordered = strategy.order(candidates(project, mv_id))
    with project.store.session() as s:
        s.execute(delete(QueueEntry))
        s.add_all(QueueEntry(clip_id=c.clip_id, rank=i + 1, strategy=strategy.name,
                             score=float(c.scores.get(strategy.score_name or "", 0.0)),
                             model_version_id=mv_id)
                  for i, c in enumerate(ordered))
    return len(ordered)


def rank(project: Project, *, model: str | None = None, decode: DecodeConfig | None = None,
         selection: SelectionConfig | None = None, progress: bool = True,
         limit: int | None = None) -> RankReport:
    """Transcribe every clip the model has not seen, score it, and order the queue.

    Parameters
    ----------
    project
        An open project.
    model
        A model spec to rank with; it becomes the active version. Default: the active one.
    decode, selection
        Override the project's configuration.
    progress
        Show a progress bar (clips, audio hours, audio seconds per second).
    limit
        Transcribe at most this many pending clips (in clip order; the rest wait for
        the next run). The queue is still rebuilt over every transcribed clip.
    """
    decode = decode or project.config.decode
    selection = selection or project.config.selection
    get_strategy(selection.strategy)  # fail before hours of decoding, not after
    if model:
        mv = project.store.ensure_model_version(model)
        project.store.set_active(mv.id)
    mv = project.store.active_model() or project.store.ensure_model_version(decode.model)
    decode = replace(decode, model=mv.spec)
    done = transcribe_pending(project, mv, decode, progress, limit)
    queued = build_queue(project, mv.id, selection)
    return RankReport(**asdict(done), model_version=mv.name, queued=queued, strategy=selection.strategy)
