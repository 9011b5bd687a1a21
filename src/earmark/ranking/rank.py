"""Rank a project's pool: transcribe what the active model has not seen, score, order.

Transcription is streamed in chunks; each chunk's transcripts are committed in one
transaction, so a killed run loses at most the chunk in progress and the next run
starts after the last committed clip.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from sqlalchemy import delete, select
from tqdm.auto import tqdm

from earmark import audio as au
from earmark.config import DecodeConfig, SelectionConfig
from earmark.decode.autotune import decoder_for, spread
from earmark.decode.decoder import Decoder
from earmark.decode.gpu import for_device
from earmark.decode.packing import WINDOW_SECONDS
from earmark.decode.types import Transcript
from earmark.errors import RunInProgress, UnreadableAudio
from earmark.models.device import cpu_cores, torch_threads, usable_threads
from earmark.models.loading import check_decode_config
from earmark.models.versions import load_version, version_spec, version_to_rank_with
from earmark.ranking.pipeline import Writer, prefetched
from earmark.ranking.scoring import hallucination_flags, transcript_scores
from earmark.ranking.strategies import Candidate, get_strategy, shown_score_name
from earmark.store.db import Clip, Correction, ModelVersion, QueueEntry, TranscriptRow
from earmark.store.project import Project

if TYPE_CHECKING:
    import whisper


@dataclass(frozen=True)
class Transcribed:
    """What :func:`transcribe_pending` did: the decoding half of a :class:`RankReport`."""

    transcribed: int = 0  # clips transcribed by this run
    audio_seconds: float = 0.0  # audio transcribed by this run
    wall_seconds: float = 0.0  # time spent transcribing
    windows: int = 0  # 30 s windows the encoder ran on (packed ones and retries)
    retried: int = 0  # re-decodings of clips a packed window lost (see Decoder.transcribe)
    # (clip id, why) of stored clips that could not be read: left untranscribed, and so
    # out of the queue, while the rest of the pool is ranked
    unreadable: tuple[tuple[int, str], ...] = ()
    # the engine and arithmetic decoding used, and why (earmark.decode.autotune)
    decoding: str = ""

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
        scores={**scores, "flags": list(flags), "stop_reason": t.stop_reason,
                **({"embedding": pack_embedding(t.embedding)} if t.embedding else {})},
    )


def pack_embedding(values: Sequence[float]) -> str:
    """An embedding as base64 float16: 0.8 kB for tiny's 384 states, against 8 kB as JSON
    numbers, so that a pool of 10,000 clips keeps its database and dashboard light."""
    return base64.b64encode(np.asarray(values, dtype="<f2").tobytes()).decode("ascii")


def unpack_embedding(text: Any) -> tuple[float, ...] | None:
    """The embedding :func:`pack_embedding` stored, or None for a transcript without one."""
    if not isinstance(text, str):
        return None
    try:
        return tuple(np.frombuffer(base64.b64decode(text), dtype="<f2").astype(float).tolist())
    except ValueError:  # not base64 of float16s: left without, as a transcript from before
        return None


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


def _chunks(items: list[tuple[int, str, float]], size: int, seconds: float) -> Iterator[list]:
    """Consecutive runs of at most ``size`` clips and (unless one clip is longer) ``seconds`` of audio."""
    part: list = []
    total = 0.0
    for item in items:
        if part and (len(part) == size or total + item[2] > seconds):
            yield part
            part, total = [], 0.0
        part.append(item)
        total += item[2]
    if part:
        yield part


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

    threads = usable_threads(cfg.threads) or cpu_cores()
    overlap = threads >= 2
    return (max(1, threads // 2) if overlap else threads), overlap


# --- transcription ---------------------------------------------------------------------------

def transcribe_pending(project: Project, mv: ModelVersion, cfg: DecodeConfig,
                       progress: bool = True, limit: int | None = None,
                       model: "whisper.Whisper | None" = None) -> Transcribed:
    """Transcribe and store every clip ``mv`` has not transcribed (the first ``limit``).

    Audio is read one chunk at a time, so memory does not grow with the pool. ``model``
    is ``mv``'s model when the caller has loaded it already; otherwise it loads here,
    and only when there is something to transcribe.
    """
    pending = _pending(project, mv.id, limit)
    if not pending:
        return Transcribed()
    model = model if model is not None else load_version(project, mv, cfg.device)
    cfg = for_device(cfg, model)  # a GPU's batch size (chunks follow it)
    threads, overlap = _ranking_threads(cfg, model.device.type)
    with torch_threads(threads):
        decoder, choice = decoder_for(model, version_spec(project, mv), cfg, overlap,
                                      sample=lambda seconds: _pool_sample(project, pending, seconds),
                                      progress=progress)
        done = _transcribe_chunks(project, mv, cfg, pending, decoder, progress)
    return replace(done, decoding=f"{choice.reason}{' (cached choice)' if choice.cached else ''}")


def _pool_sample(project: Project, pending: list[tuple[int, str, float]], seconds: float) -> list:
    """About ``seconds`` of the pending clips' audio, spread over the pool: what the
    measured choice of engine times (unreadable clips are left out here; ranking reports them)."""
    _, audios, _ = _read_chunk(project, [pending[i] for i in spread([d for _, _, d in pending], seconds)])
    return audios


def _transcribe_chunks(project: Project, mv: ModelVersion, cfg: DecodeConfig,
                       pending: list[tuple[int, str, float]], decoder: Decoder,
                       progress: bool) -> Transcribed:
    """Decode ``pending`` chunk by chunk, committing each chunk's transcripts."""
    total = sum(d for _, _, d in pending)
    # a chunk holds enough clips to fill every window of a few batches, and is small
    # enough that a kill loses little and memory stays flat on any pool size; the
    # seconds bound keeps a pool of long clips (a split 2-hour file) from making each
    # chunk, and so each progress update, minutes long
    chunk = cfg.batch_size * (8 if cfg.pack else 1) * 2
    chunk_seconds = 3 * cfg.batch_size * WINDOW_SECONDS
    start, done_s, n = time.perf_counter(), 0.0, 0
    unreadable: list[tuple[int, str]] = []
    bar = tqdm(total=round(total, 1), unit="audio-s", desc=f"rank {mv.name}",
               disable=not progress, dynamic_ncols=True)
    counted = 0.0  # seconds of the clips done so far (transcribed or unreadable)
    # the next chunk is read, and the last one written, while this one decodes
    with bar, Writer() as writer:
        for part, (readable, audios, bad) in prefetched(_chunks(pending, chunk, chunk_seconds),
                                                        lambda p: _read_chunk(project, p)):
            unreadable.extend(bad)
            # unreadable clips count as done at once: nothing more comes of them
            counted += sum(d for _, _, d in part) - sum(d for _, _, d in readable)
            _advance(bar, counted)
            part = readable
            if not part:
                continue
            results = decoder.transcribe(audios)
            writer.submit(_store_chunk, project, mv.id, part, results)
            n += len(part)
            seconds = sum(d for _, _, d in part)
            done_s += seconds
            counted += seconds
            _advance(bar, counted)
            bar.set_postfix(clips=f"{n}/{len(pending)}", hours=f"{done_s / 3600:.2f}")
    if unreadable and not n:  # nothing could be read: the audio folder itself is gone or wrong
        more = f" (and {len(unreadable) - 1} more stored clips)" if len(unreadable) > 1 else ""
        raise UnreadableAudio(unreadable[0][1] + more)
    return Transcribed(n, done_s, time.perf_counter() - start, decoder.windows, decoder.retried,
                       tuple(unreadable))


def _read_chunk(project: Project, part: list[tuple[int, str, float]]):
    """The readable clips of ``part``, their audio, and (clip id, why) of the others."""
    readable, audios, bad = [], [], []
    for item in part:
        try:
            audios.append(au.read_clip(project.clip_path(item[1])))
            readable.append(item)
        except UnreadableAudio as exc:  # one damaged file must not stop the pool's ranking
            bad.append((item[0], str(exc)))
    return readable, audios, bad


def _store_chunk(project: Project, mv_id: int, part: list[tuple[int, str, float]],
                 results: list[Transcript]) -> None:
    """Score and commit one chunk's transcripts in one transaction."""
    rows = [(clip_id, transcript_row(clip_id, mv_id, t)) for (clip_id, _, _), t in zip(part, results)]
    with project.store.session() as s:
        seen = set(s.scalars(select(TranscriptRow.clip_id).where(
            TranscriptRow.model_version_id == mv_id,
            TranscriptRow.clip_id.in_([c for c, _, _ in part]))))
        s.add_all(row for clip_id, row in rows if clip_id not in seen)  # another rank may have done it


def _advance(bar: tqdm, counted: float) -> None:
    """Move ``bar`` to ``counted`` seconds, rounded as its total is.

    Adding each chunk's rounded seconds would drift from the rounded total and end past
    it (tqdm then warns "clamping frac to range [0, 1]"); the bar is set from the running
    sum instead, never past its total.
    """
    target = min(round(counted, 1), bar.total)
    if target > bar.n:
        bar.update(round(target - bar.n, 1))
        bar.n = target  # the difference of two rounded floats may be off in its last bit


def pool_candidates(project: Project, mv_id: int, embeddings: bool = False) -> list[Candidate]:
    """Clips transcribed by ``mv_id`` and not yet corrected or flagged, as candidates.

    ``embeddings``: with each clip's stored encoder embedding (about 10 kB per clip once
    unpacked, so only for the strategies that use them).
    """
    with project.store.session() as s:
        corrected = select(Correction.clip_id)
        rows = s.execute(select(Clip.id, Clip.duration, TranscriptRow.scores)
                         .join(TranscriptRow, TranscriptRow.clip_id == Clip.id)
                         .where(TranscriptRow.model_version_id == mv_id,
                                Clip.id.not_in(corrected))).all()
    return [Candidate(cid, dur, {k: v for k, v in sc.items() if isinstance(v, (int, float))},
                      unpack_embedding(sc.get("embedding")) if embeddings else None)
            for cid, dur, sc in rows]


def build_queue(project: Project, mv_id: int, sel: SelectionConfig) -> int:
    """Replace the queue with the strategy's order over the uncorrected pool."""
    strategy = get_strategy(sel.strategy, seed=sel.seed)
    ordered = strategy.order(pool_candidates(project, mv_id, embeddings=strategy.uses_embeddings))
    shown = shown_score_name(strategy.name)
    with project.store.session() as s:
        s.execute(delete(QueueEntry))
        s.add_all(QueueEntry(clip_id=c.clip_id, rank=i + 1, strategy=strategy.name,
                             score=float(c.scores.get(shown, 0.0)),
                             model_version_id=mv_id)
                  for i, c in enumerate(ordered))
    return len(ordered)


#: the lock file held by the ``rank`` running on a project (in its folder)
RANK_LOCK = ".rank.lock"


@contextmanager
def ranking_alone(project: Project) -> Iterator[None]:
    """Hold the project's rank lock; refuse if another process is ranking it.

    Two ranks at once would each transcribe every pending clip (a clip is claimed only
    when its transcript is stored), doubling hours of work for nothing. The lock is an
    OS file lock in the project folder, which the OS releases when a process dies, so a
    killed rank never leaves it held; it works alike for a project on PostgreSQL, since
    the folder is where every command of the project starts.

    Raises
    ------
    RunInProgress
        Another process holds the lock; the message gives its process id.
    """
    import fcntl
    import os

    path = project.root / RANK_LOCK
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            raise RunInProgress(
                f"{project.root}: another `earmark rank` (or `earmark round`) is ranking this project "
                f"right now (process {holder}); wait for it to finish: it transcribes every clip "
                "this one would, then run this again if its model was not the one you wanted") from None
        try:
            f.seek(0)
            f.truncate()
            f.write(str(os.getpid()))
            f.flush()
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def rank(project: Project, *, model: str | None = None, decode: DecodeConfig | None = None,
         selection: SelectionConfig | None = None, progress: bool = True,
         limit: int | None = None, transcribe: Any = None) -> RankReport:
    """Transcribe every clip the model has not seen, score it, and order the queue.

    Parameters
    ----------
    project
        An open project.
    model
        A version's name, or a model spec (a Whisper name or a checkpoint path), to rank
        with; it becomes the active version once it has loaded. Default: the active one.
    decode, selection
        Override the project's configuration.
    progress
        Show a progress bar (clips, audio hours, audio seconds per second).
    limit
        Transcribe at most this many pending clips (in clip order; the rest wait for
        the next run). The queue is still rebuilt over every transcribed clip.
    transcribe
        What transcribes the pending clips, with :func:`transcribe_pending`'s signature
        (default: that function, in this process); e.g. a partial of
        :func:`earmark.ranking.distributed.transcribe_on_ray`.

    Raises
    ------
    BadConfig
        A decoding setting out of range, or a device this machine lacks.
    ModelWeightsNotFound, CorruptCheckpoint, UnfinishedModelVersion
        ``model`` (or the active version) cannot load; nothing in the project changed.
    RunInProgress
        Another process is ranking the project (see :func:`ranking_alone`).
    """
    decode = decode or project.config.decode
    selection = selection or project.config.selection
    check_decode_config(decode)  # a bad setting fails here, before the project changes
    get_strategy(selection.strategy)  # fail before hours of decoding, not after
    with ranking_alone(project):  # before the switch: a second rank must not change the model
        mv, loaded = version_to_rank_with(project, model, decode)
        decode = replace(decode, model=mv.spec)
        done = (transcribe or transcribe_pending)(project, mv, decode, progress, limit, model=loaded)
        del loaded  # the queue needs no model; free its memory before building it
        queued = build_queue(project, mv.id, selection)
    return RankReport(**asdict(done), model_version=mv.name, queued=queued, strategy=selection.strategy)
