"""Rank a project's pool: transcribe what the active model has not seen, score, order.

Transcription is streamed in chunks; each chunk's transcripts are committed in one
transaction, so a killed run loses at most the chunk in progress and the next run
starts after the last committed clip.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from sqlalchemy import delete, or_, select
from tqdm.auto import tqdm

from earmark import audio as au
from earmark.config import DecodeConfig, SelectionConfig
from earmark.errors import (CorruptCheckpoint, ModelWeightsNotFound, UnfinishedModelVersion, UnknownModelVersion,
                     UnreadableAudio)
from earmark.decode.packing import WINDOW_SECONDS
from earmark.store.project import Project
from earmark.ranking.scoring import hallucination_flags, transcript_scores
from earmark.ranking.strategies import Candidate, get_strategy, shown_score_name
from earmark.store.db import Clip, Correction, ModelVersion, QueueEntry, Transcript as TranscriptRow
from earmark.decode.decoder import Decoder, Transcript
from earmark.decode.autotune import decoder_for
from earmark.ranking.pipeline import Writer, prefetched

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
    from earmark.models.loading import cpu_cores, usable_threads

    threads = usable_threads(cfg.threads) or cpu_cores()
    overlap = threads >= 2
    return (max(1, threads // 2) if overlap else threads), overlap


# --- model versions: find, load, switch ---------------------------------------------------

def lookup_version(project: Project, model: str) -> ModelVersion | None:
    """The version named ``model``, or whose spec it is (a path as given or made absolute)."""
    from earmark.models.loading import normalize_spec

    specs = {model, normalize_spec(model)}
    with project.store.session() as s:
        rows = s.scalars(select(ModelVersion).where(
            or_(ModelVersion.name == model, ModelVersion.spec.in_(specs))).order_by(ModelVersion.id)).all()
    # a name is what people type and see in `earmark status`, so it wins over a spec
    return next((m for m in rows if m.name == model), rows[0] if rows else None)


def unknown_version(project: Project, model: str) -> UnknownModelVersion:
    """The error for a version name that is not in ``project``, listing the known ones."""
    with project.store.session() as s:
        names = list(s.scalars(select(ModelVersion.name).order_by(ModelVersion.id)))
    return UnknownModelVersion(f"no model version {model!r} in {project.root}; known versions: "
                               f"{', '.join(names) or 'none'} (see `earmark models`)")


def check_ready(project: Project, mv: ModelVersion) -> None:
    """Raise :class:`UnfinishedModelVersion` when ``mv`` is a fine-tuning run still going.

    Its checkpoint does not exist yet, and loading it would say "no checkpoint file",
    which hides the cause and the remedy.
    """
    if mv.status == "training":
        raise UnfinishedModelVersion(
            f"model version {mv.name!r} of {project.root} is an unfinished fine-tuning run, with no "
            f"checkpoint yet; finish it with `earmark finetune {project.root} --resume`, or use "
            "another version or model")


def _other_models_hint(project: Project, mv: ModelVersion) -> str:
    """How to go on with another model when ``mv`` cannot load."""
    from pathlib import Path

    from earmark.models.loading import looks_like_path

    with project.store.session() as s:
        others = list(s.scalars(select(ModelVersion).where(
            ModelVersion.id != mv.id, ModelVersion.status != "training").order_by(ModelVersion.id)))
    # only versions that can load: not one whose checkpoint is gone too
    names = [o.name for o in others
             if not looks_like_path(spec := version_spec(project, o)) or Path(spec).is_file()]
    versions = f"a version ({', '.join(names)}) or " if names else ""
    return (f"To go on with another model, make it active with `earmark rank {project.root} "
            f"--model NAME`, NAME being {versions}a Whisper name such as tiny.en")


def version_spec(project: Project, mv: ModelVersion) -> str:
    """What loads a version: a fine-tuned one's checkpoint inside *this* project folder.

    Its record holds the path relative to the project, so a project copied or moved
    elsewhere loads its own checkpoints, not the ones of the folder it came from (the
    absolute path stored as its spec); other versions load from their spec.
    """
    relative = (mv.record or {}).get("checkpoint")
    return str(project.root / relative) if relative else mv.spec


def load_version(project: Project, mv: ModelVersion, device: str) -> "whisper.Whisper":
    """Load the model of a project's version.

    Raises
    ------
    UnfinishedModelVersion
        ``mv`` is a fine-tuning run that has not finished.
    CorruptCheckpoint, ModelWeightsNotFound
        Its checkpoint is damaged or gone; the message names the version, the file, and
        how to go on with another model.
    """
    from pathlib import Path

    from earmark.models.loading import load_checkpoint, load_model, looks_like_path

    check_ready(project, mv)
    spec = version_spec(project, mv)
    path = Path(spec).expanduser()
    if path.is_file():
        return load_checkpoint(path, device, remedy=f"It is the checkpoint of model version {mv.name}. "
                                                    + _other_models_hint(project, mv))
    if looks_like_path(spec):
        raise ModelWeightsNotFound(
            f"model version {mv.name!r} of {project.root}: its checkpoint {path} is gone (moved or "
            f"deleted); put it back. {_other_models_hint(project, mv)}")
    return load_model(spec, device)  # a Whisper name: its own messages say what to install


def switch_model(project: Project, model: str, device: str) -> tuple[ModelVersion, "whisper.Whisper | None"]:
    """Make ``model`` (a version's name, or a spec) the active version; return it and its model.

    The model is loaded before the project changes, so a name that is wrong, a path that
    does not exist or a damaged file leaves the active version and the version table as
    they were. A new spec is stored as :func:`~earmark.models.loading.normalize_spec` gives it (a
    checkpoint's absolute path), so the project works from any folder. The model comes
    back unloaded (None) when ``model`` is already the active version.
    """
    from earmark.models.loading import load_model, looks_like_path, normalize_spec

    mv = lookup_version(project, model)
    active = project.store.active_model()
    if mv is not None and active is not None and mv.id == active.id:
        return mv, None
    if mv is not None:
        loaded = load_version(project, mv, device)
    else:
        try:
            loaded = load_model(model, device)  # its errors show the path as it was given
        except ModelWeightsNotFound as exc:
            if looks_like_path(model) or isinstance(exc, CorruptCheckpoint):
                raise
            # a mistyped version name ("ft-09") is more likely here than a Whisper name
            with project.store.session() as s:
                names = ", ".join(s.scalars(select(ModelVersion.name).order_by(ModelVersion.id)))
            raise ModelWeightsNotFound(f"{exc}; nor is it a version of this project (its versions: "
                                       f"{names or 'none yet'}; see `earmark models`)") from exc
        mv = project.store.ensure_model_version(normalize_spec(model))
    project.store.set_active(mv.id)
    return mv, loaded


# --- transcription ---------------------------------------------------------------------------

def transcribe_pending(project: Project, mv: ModelVersion, cfg: DecodeConfig,
                       progress: bool = True, limit: int | None = None,
                       model: "whisper.Whisper | None" = None) -> Transcribed:
    """Transcribe and store every clip ``mv`` has not transcribed (the first ``limit``).

    Audio is read one chunk at a time, so memory does not grow with the pool. ``model``
    is ``mv``'s model when the caller has loaded it already; otherwise it loads here,
    and only when there is something to transcribe.
    """
    from earmark.models.loading import torch_threads

    pending = _pending(project, mv.id, limit)
    if not pending:
        return Transcribed()
    model = model if model is not None else load_version(project, mv, cfg.device)
    threads, overlap = _ranking_threads(cfg, model.device.type)
    with torch_threads(threads):
        decoder, choice = decoder_for(model, version_spec(project, mv), cfg, overlap)
        done = _transcribe_chunks(project, mv, cfg, pending, decoder, progress)
    return replace(done, decoding=f"{choice.reason}{' (cached choice)' if choice.cached else ''}")


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
    # the next chunk is read, and the last one written, while this one decodes
    with bar, Writer() as writer:
        for part, (readable, audios, bad) in prefetched(_chunks(pending, chunk, chunk_seconds),
                                                        lambda p: _read_chunk(project, p)):
            unreadable.extend(bad)
            skipped = sum(d for _, _, d in part) - sum(d for _, _, d in readable)
            bar.update(round(skipped, 1))
            part = readable
            if not part:
                continue
            results = decoder.transcribe(audios)
            writer.submit(_store_chunk, project, mv.id, part, results)
            n += len(part)
            seconds = sum(d for _, _, d in part)
            done_s += seconds
            bar.update(round(seconds, 1))
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


def candidates(project: Project, mv_id: int, embeddings: bool = False) -> list[Candidate]:
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
    ordered = strategy.order(candidates(project, mv_id, embeddings=strategy.uses_embeddings))
    shown = shown_score_name(strategy.name)
    with project.store.session() as s:
        s.execute(delete(QueueEntry))
        s.add_all(QueueEntry(clip_id=c.clip_id, rank=i + 1, strategy=strategy.name,
                             score=float(c.scores.get(shown, 0.0)),
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
        A version's name, or a model spec (a Whisper name or a checkpoint path), to rank
        with; it becomes the active version once it has loaded. Default: the active one.
    decode, selection
        Override the project's configuration.
    progress
        Show a progress bar (clips, audio hours, audio seconds per second).
    limit
        Transcribe at most this many pending clips (in clip order; the rest wait for
        the next run). The queue is still rebuilt over every transcribed clip.

    Raises
    ------
    BadConfig
        A decoding setting out of range, or a device this machine lacks.
    ModelWeightsNotFound, CorruptCheckpoint, UnfinishedModelVersion
        ``model`` (or the active version) cannot load; nothing in the project changed.
    """
    from earmark.models.loading import check_decode_config

    decode = decode or project.config.decode
    selection = selection or project.config.selection
    check_decode_config(decode)  # a bad setting fails here, before the project changes
    get_strategy(selection.strategy)  # fail before hours of decoding, not after
    loaded = None
    if model:
        mv, loaded = switch_model(project, model, decode.device)
    else:
        active = project.store.active_model()
        mv, loaded = (active, None) if active else switch_model(project, decode.model, decode.device)
    decode = replace(decode, model=mv.spec)
    done = transcribe_pending(project, mv, decode, progress, limit, model=loaded)
    del loaded  # the queue needs no model; free its memory before building it
    queued = build_queue(project, mv.id, selection)
    return RankReport(**asdict(done), model_version=mv.name, queued=queued, strategy=selection.strategy)
