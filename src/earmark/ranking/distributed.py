"""Transcribe a project's pending clips on a Ray cluster (``earmark rank --ray``).

Ray Data batch inference: the pending clips are cut into shards, each shard a row of a
dataset that ``map_batches`` hands to a pool of actors, one Whisper model per actor (and
one GPU per actor when the cluster has GPUs). The driver is the one writer: it takes
the transcripts back as each shard finishes and commits them in one transaction per
shard, skipping any clip already stored, so SQLite serves a local cluster and
PostgreSQL a cluster of machines.

Same output as ``earmark rank``
    A shard is exactly a chunk of the single-process rank (the same clips, cut by the
    same rule), and an actor decodes it with the same :class:`~earmark.decode.decoder.Decoder`
    call, so the clips are packed into the same windows and batched the same way. Only
    the arithmetic's thread count can differ (scores then agree to rounding).

Resuming
    A killed run loses at most the shards in flight: the next run transcribes what is
    not stored. A lost actor is restarted by Ray and its shard is run again; the
    driver's check against stored rows (and the table's unique key) keeps every clip
    transcribed exactly once.

Where the audio lives
    On a one-machine cluster actors read the clips from the project's audio folder by
    path. When the cluster has other machines (or the driver joins as a ``ray://``
    client), the driver reads each shard's clip files and ships their bytes with the
    shard, wave by wave (:mod:`earmark.ranking.shipping`); with the project folder on
    storage every node mounts at the same path (NFS, a shared volume), ``ship_audio=
    "never"`` (``--ship-audio never``) lets the actors read it in place instead, and
    the driver's network carries no audio. Only ids, paths and durations of the pending
    clips are held on the driver at once (tens of MB for a million clips).
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from tqdm.auto import tqdm

from earmark import audio as au
from earmark.config import DecodeConfig
from earmark.decode.autotune import choose, decoder_for, settled
from earmark.decode.gpu import for_device
from earmark.decode.packing import WINDOW_SECONDS
from earmark.errors import ClusterUnavailable, MissingExtra, UnreadableAudio
from earmark.models.device import cpu_cores
from earmark.models.loading import load_model
from earmark.models.versions import check_ready, version_spec
from earmark.ranking.rank import Transcribed, _chunks, _pending, transcript_row
from earmark.ranking.shipping import cluster_view, should_ship, waves
from earmark.store.db import TranscriptRow

if TYPE_CHECKING:
    from earmark.store.db import ModelVersion
    from earmark.store.project import Project

INSTALL = "pip install 'earmark[ray]'"
# the columns of a transcript row an actor sends back (the rest the driver knows)
ROW_FIELDS = ("text", "tokens", "words", "avg_logprob", "no_speech_prob", "compression_ratio", "scores")


@dataclass(frozen=True)
class RayConfig:
    """Where and how wide ``rank --ray`` runs."""

    address: str = ""  # "" starts a local Ray; "auto", "HOST:PORT" or "ray://HOST:PORT" joins one
    workers: int = 0  # actors (models); 0: one per GPU, else one per ``cpus_per_worker`` CPUs
    # CPUs (and torch threads) per actor; 0: the CPUs shared out among ``workers``, or 2
    cpus_per_worker: int = 0
    local_cpus: int = 0  # CPUs of a local Ray (0: this machine's cores)
    # "auto": the driver sends the clips' audio when the cluster has other machines;
    # "always" / "never" force it (never: the project folder is on shared storage)
    ship_audio: str = "auto"


def import_ray() -> Any:
    """``ray`` and ``ray.data``, or :class:`MissingExtra` naming the extra."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise MissingExtra(f"--ray needs Ray Data, which is not installed ({exc}); run `{INSTALL}`") from exc
    return ray


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Raise :class:`ClusterUnavailable` unless ``HOST:PORT`` answers (ray.init would wait long)."""
    if address in ("", "auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterUnavailable(f"--ray {address!r}: not a cluster address; give HOST:PORT "
                                 "(the head's GCS port, 6379 by default), ray://HOST:10001, or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ClusterUnavailable(f"--ray {address}: cannot reach the Ray head ({exc}); start it with "
                                 "`ray start --head` there, or check the address and port") from exc


def connect(cfg: RayConfig) -> tuple[Any, bool]:
    """Start a local Ray or join ``cfg.address``; return ray and whether this call started it."""
    ray = import_ray()
    if ray.is_initialized():
        return ray, False
    import logging

    for name in ("ray", "ray.data"):  # its INFO/WARNING lines would bury the progress bar
        logging.getLogger(name).setLevel(logging.ERROR)
    check_reachable(cfg.address)
    try:
        if cfg.address:
            ray.init(address=cfg.address, log_to_driver=False, logging_level="ERROR")
        else:
            ray.init(num_cpus=cfg.local_cpus or cpu_cores(), include_dashboard=False,
                     log_to_driver=False, logging_level="ERROR")
    except ConnectionError as exc:
        raise ClusterUnavailable(f"--ray {cfg.address or 'local'}: {str(exc).splitlines()[0]}; start "
                                 "a cluster with `ray start --head`, or leave the address out for a "
                                 "local one") from exc
    return ray, True


def plan(resources: dict[str, float], cfg: RayConfig) -> tuple[int, int, int]:
    """(actors, CPUs per actor, GPUs per actor) for a cluster's resources.

    Raises
    ------
    ClusterUnavailable
        The cluster has no CPU (or fewer than one actor needs).
    """
    cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
    if gpus:
        workers = cfg.workers or gpus
        return workers, max(1, cfg.cpus_per_worker or cpus // max(workers, 1) or 1), 1
    if cpus < 1:
        raise ClusterUnavailable("the Ray cluster has no CPU to run on (its resources: "
                                 f"{resources or 'none'}); add a worker node with `ray start --address ...`")
    # by default two CPUs an actor: the encoder of the next batch overlaps this batch's
    # decoding, one thread each, as ranking runs on one machine
    per = cfg.cpus_per_worker or (max(1, cpus // cfg.workers) if cfg.workers else min(2, cpus))
    workers = cfg.workers or max(1, cpus // per)
    if per > cpus:
        raise ClusterUnavailable(f"an actor asks for {per} CPUs but the Ray cluster has {cpus}; "
                                 "ask for fewer (--ray-cpus-per-worker)")
    return workers, per, 0


class ShardTranscriber:
    """A Ray Data actor: one Whisper model, decoding one shard per call.

    Built by Ray in the actor's process: the model loads there, once.
    """

    def __init__(self, spec: str, decode: DecodeConfig, threads: int, gpu: bool) -> None:
        import torch

        device = "cuda" if gpu else "cpu"
        if not gpu:
            torch.set_num_threads(max(1, threads))
        cfg = replace(decode, device=device, threads=threads)
        self.model = load_model(spec, device)
        cfg = for_device(cfg, self.model)  # a GPU's batch size
        # as ranking does on one machine: with 2+ threads the next batch's encoder runs
        # beside this batch's decoding
        self.decoder, _ = decoder_for(self.model, spec, cfg, overlap=not gpu and threads >= 2)
        if not gpu and threads >= 2:
            torch.set_num_threads(max(1, threads // 2))

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, list] = {"shard": [], "rows": [], "unreadable": [], "windows": [], "retried": []}
        shipped = batch["audio"] if "audio" in batch else [None] * len(batch["shard"])
        for shard, ids, paths, files in zip(batch["shard"], batch["clip_ids"], batch["paths"], shipped):
            readable, audios, unreadable = [], [], []
            for k, (cid, path) in enumerate(zip(ids, paths)):
                try:  # the bytes the driver sent, else the file in place
                    audios.append(au.read_clip(path, None if files is None else files[k]))
                    readable.append(int(cid))
                except UnreadableAudio as exc:
                    unreadable.append([int(cid), str(exc)])
            w0, r0 = self.decoder.windows, self.decoder.retried
            results = self.decoder.transcribe(audios) if audios else []
            rows = []
            for cid, t in zip(readable, results):
                row = transcript_row(cid, 0, t)
                rows.append([cid, {k: getattr(row, k) for k in ROW_FIELDS}])
            out["shard"].append(int(shard))
            out["rows"].append(json.dumps(rows))
            out["unreadable"].append(json.dumps(unreadable))
            out["windows"].append(self.decoder.windows - w0)
            out["retried"].append(self.decoder.retried - r0)
        return out


def _shards(project: "Project", pending: list[tuple[int, str, float]], cfg: DecodeConfig) -> list[dict]:
    """The dataset rows: single-process rank's chunks of ``pending``, with absolute paths."""
    size = cfg.batch_size * (8 if cfg.pack else 1) * 2  # as _transcribe_chunks cuts them
    seconds = 3 * cfg.batch_size * WINDOW_SECONDS
    return [{"shard": i, "clip_ids": [c for c, _, _ in part],
             "paths": [str(project.clip_path(p)) for _, p, _ in part],
             "seconds": float(sum(d for _, _, d in part))}
            for i, part in enumerate(_chunks(pending, size, seconds))]


def _write(project: "Project", mv_id: int, rows: list) -> int:
    """Store one shard's transcripts in one transaction; return how many were new."""
    with project.store.session() as s:
        seen = set(s.scalars(select(TranscriptRow.clip_id).where(
            TranscriptRow.model_version_id == mv_id, TranscriptRow.clip_id.in_([c for c, _ in rows]))))
        fresh = [(cid, fields) for cid, fields in rows if cid not in seen]
        s.add_all(TranscriptRow(clip_id=cid, model_version_id=mv_id, **fields) for cid, fields in fresh)
    return len(fresh)


def transcribe_on_ray(project: "Project", mv: "ModelVersion", cfg: DecodeConfig, progress: bool = True,
                      limit: int | None = None, model: Any = None, *, ray_cfg: RayConfig = RayConfig(),
                      ) -> Transcribed:
    """Transcribe and store every clip ``mv`` has not transcribed, on Ray.

    The signature is :func:`earmark.ranking.rank.transcribe_pending`'s (``model``, a
    driver-side copy, is not used: each actor loads its own), so :func:`rank` takes it
    as its ``transcribe`` backend.

    Raises
    ------
    MissingExtra
        Ray Data is not installed.
    ClusterUnavailable
        The address cannot be reached, or the cluster has no resources.
    """
    check_ready(project, mv)
    pending = _pending(project, mv.id, limit)
    if not pending:
        return Transcribed()
    ray, started = connect(ray_cfg)
    try:
        workers, cpus, gpus = plan(ray.cluster_resources(), ray_cfg)
        shards = _shards(project, pending, cfg)
        if model is not None and not gpus:  # the driver's measured choice, the same in every worker
            cfg = settled(cfg, choose(model, version_spec(project, mv), replace(cfg, threads=cpus), cpus))
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        ship = should_ship(ray_cfg.ship_audio, **cluster_view(ray))

        def dataset(part: list[dict]) -> Any:
            return ray.data.from_items(part, override_num_blocks=len(part)).map_batches(
                ShardTranscriber, batch_size=1, batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=min(workers, len(part))),
                num_cpus=cpus, num_gpus=gpus or None, zero_copy_batch=True,
                fn_constructor_kwargs={"spec": version_spec(project, mv), "decode": cfg,
                                       "threads": cpus, "gpu": bool(gpus)})

        # shipped audio goes wave by wave (each wave's files read as it starts), else one pass
        parts = waves(shards) if ship else iter([shards])
        batches = (b for part in parts for b in dataset(part).iter_batches(
            batch_size=1, batch_format="numpy", prefetch_batches=0))
        return _collect(project, mv, batches, shards, {c: d for c, _, d in pending}, progress, tqdm)
    finally:
        if started:
            ray.shutdown()


def _collect(project: "Project", mv: "ModelVersion", batches: Any, shards: list[dict],
             durations: dict[int, float], progress: bool, tqdm: Any) -> Transcribed:
    """Write each finished shard (``batches``: the actors' outputs) as it comes back; the
    report of the run."""
    seconds = {s["shard"]: s["seconds"] for s in shards}
    start, n, done_s, windows, retried = time.perf_counter(), 0, 0.0, 0, 0
    unreadable: list[tuple[int, str]] = []
    bar = tqdm(total=round(sum(seconds.values()), 1), unit="audio-s", desc=f"rank {mv.name} (ray)",
               disable=not progress, dynamic_ncols=True)
    with bar:
        for batch in batches:
            for shard, rows, bad, w, r in zip(batch["shard"], batch["rows"], batch["unreadable"],
                                              batch["windows"], batch["retried"]):
                rows = json.loads(rows)
                _write(project, mv.id, rows)
                unreadable += [(int(c), why) for c, why in json.loads(bad)]
                n += len(rows)
                windows, retried = windows + int(w), retried + int(r)
                done_s += sum(durations[c] for c, _ in rows)
                bar.update(round(seconds[int(shard)], 1))
    if unreadable and not n:
        more = f" (and {len(unreadable) - 1} more stored clips)" if len(unreadable) > 1 else ""
        raise UnreadableAudio(unreadable[0][1] + more)
    return Transcribed(n, done_s, time.perf_counter() - start, windows, retried, tuple(unreadable))
