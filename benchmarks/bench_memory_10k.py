"""Memory of `earmark rank` on a pool of 10,000 clips: bounded, and flat over time.

The pool: the 1,250 speechocean762 clips eight times over, each copy made distinct by
2 ms more of trailing silence than the one before (copy 0 is the clip itself), since
identical content is imported only once. Every phase runs in its own subprocess, so
each peak resident set (``getrusage``) is that phase's alone:

1. ``import``: all 10,000 files imported into a fresh project;
2. ``rank``: ``earmark.rank(limit=N)`` transcribes the first N clips of the 10,000-clip
   pool (default 2,000: the whole pool is about 11 hours of audio), with the resident
   set sampled every 2 s next to the number of clips committed, to show that memory
   does not grow with the clips processed;
3. ``queue``: the clips not transcribed in phase 2 get SYNTHETIC transcript rows (copies
   of real ones, labeled so in the output), then the queue is built, and ``status`` and
   ``queue`` read, over all 10,000 transcripts.

    .venv/bin/python benchmarks/bench_memory_10k.py [--rank-clips 2000] [--workdir DIR]

Writes ``benchmarks/results/rank_memory_10k.json`` (and ``peak_rss_gb_10k`` into
``rank_throughput.json`` when that exists).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import DATA, RESULTS, loadavg, peak_rss_gb, read_manifest, write_result

COPIES = 8
PAD_MS = 2


def rss_mb() -> float:
    """Current resident set of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def make_pool(dest: Path) -> Path:
    """Write the 10,000 distinct clips and their manifest; returns the manifest."""
    import numpy as np
    import soundfile as sf

    rows = read_manifest(DATA)
    dest.mkdir(parents=True, exist_ok=True)
    manifest = dest / "manifest.jsonl"
    with open(manifest, "w") as out:
        for r in rows:
            audio, rate = sf.read(r["audio"], dtype="int16")
            for k in range(COPIES):
                path = dest / f"{Path(r['audio']).stem}_{k}.flac"
                if not path.exists():
                    padded = np.concatenate([audio, np.zeros(rate * PAD_MS * k // 1000, dtype=np.int16)])
                    sf.write(str(path), padded, rate, subtype="PCM_16")
                out.write(json.dumps({"audio": str(path), "text": r["text"], "speaker": r["speaker"]}) + "\n")
    return manifest


class Sampler:
    """Samples this process's resident set (and a counter) every ``every`` seconds."""

    def __init__(self, count=None, every: float = 2.0):
        self.count, self.every, self.samples = count, every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = time.perf_counter()

    def _run(self):
        while not self._stop.is_set():
            self.samples.append((round(time.perf_counter() - self.t0, 1), round(rss_mb(), 1),
                                 self.count() if self.count else None))
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.samples.append((round(time.perf_counter() - self.t0, 1), round(rss_mb(), 1),
                             self.count() if self.count else None))


def phase_import(work: Path) -> dict:
    from earmark.ingest import import_audio
    from earmark.store.project import init_project

    project = init_project(work / "proj")
    with Sampler() as s:
        start = time.perf_counter()
        report = import_audio(project, work / "pool" / "manifest.jsonl", progress=False)
        wall = time.perf_counter() - start
    return dict(clips=report.clips_added, duplicates=report.duplicates, rejected=len(report.rejected),
                audio_hours=round(report.seconds_added / 3600, 2), seconds=round(wall, 1),
                rss_samples=s.samples)


def phase_rank(work: Path, limit: int, threads: int) -> dict:
    from dataclasses import replace

    from sqlalchemy import func, select

    from earmark.store.project import open_project
    from earmark.ranking.rank import rank
    from earmark.store.db import TranscriptRow

    project = open_project(work / "proj")

    def count() -> int:
        with project.store.session() as s:
            return s.scalar(select(func.count()).select_from(TranscriptRow)) or 0

    decode = replace(project.config.decode, threads=threads)
    with Sampler(count) as s:
        start = time.perf_counter()
        report = rank(project, decode=decode, progress=False, limit=limit or None)
        wall = time.perf_counter() - start
    return dict(transcribed=report.transcribed, audio_seconds=round(report.audio_seconds, 1),
                rank_seconds=round(wall, 1), speed=round(report.audio_seconds / report.wall_seconds, 2),
                windows=report.windows, retried=report.retried, rss_samples=s.samples)


def phase_queue(work: Path) -> dict:
    from sqlalchemy import select

    from earmark.config import SelectionConfig
    from earmark.store.project import open_project
    from earmark.ranking.rank import build_queue
    from earmark.review.reports import queue, status
    from earmark.store.db import Clip, TranscriptRow

    project = open_project(work / "proj")
    mv = project.store.active_model()
    with project.store.session() as s:
        real = s.scalars(select(TranscriptRow).where(TranscriptRow.model_version_id == mv.id)
                         .order_by(TranscriptRow.clip_id)).all()
        done = {t.clip_id for t in real}
        missing = [c for c in s.scalars(select(Clip.id).order_by(Clip.id)) if c not in done]
        # SYNTHETIC rows: copies of real transcripts, so that the queue has 10,000 to order
        for k, clip_id in enumerate(missing):
            t = real[k % len(real)]
            s.add(TranscriptRow(clip_id=clip_id, model_version_id=mv.id, text=t.text, tokens=t.tokens,
                             words=t.words, avg_logprob=t.avg_logprob, no_speech_prob=t.no_speech_prob,
                             compression_ratio=t.compression_ratio, scores=t.scores))
    del real
    with Sampler() as smp:
        start = time.perf_counter()
        queued = build_queue(project, mv.id, SelectionConfig())
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        st = status(project)
        top = queue(project, top=20)
        read_s = time.perf_counter() - start
    return dict(synthetic_rows=len(missing), real_rows=len(done), queued=queued,
                build_queue_seconds=round(build_s, 2), status_queue_seconds=round(read_s, 2),
                status_transcribed=st.transcribed, top=len(top), rss_samples=smp.samples)


def child(phase: str, work: Path, limit: int, threads: int, out: Path) -> None:
    import torch

    torch.set_num_threads(threads)
    result = {"import": lambda: phase_import(work), "rank": lambda: phase_rank(work, limit, threads),
              "queue": lambda: phase_queue(work)}[phase]()
    result["peak_rss_gb"] = round(peak_rss_gb(), 3)
    out.write_text(json.dumps(result))


def flatness(samples: list) -> dict:
    """RSS at quarters of the clips committed, and the slope over the second half."""
    import numpy as np

    pts = [(c, r) for _, r, c in samples if c]
    if len(pts) < 4:
        return {}
    clips, rss = np.array([p[0] for p in pts], float), np.array([p[1] for p in pts], float)
    half = clips >= clips.max() / 2
    slope = float(np.polyfit(clips[half], rss[half], 1)[0]) * 1000 if half.sum() > 2 else float("nan")
    quarters = {f"rss_mb_at_{q}pct": float(rss[np.searchsorted(clips, clips.max() * q / 100)])
                for q in (25, 50, 75)}
    return {**quarters, "rss_mb_at_end": float(rss[-1]), "rss_slope_mb_per_1000_clips_second_half": round(slope, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rank-clips", type=int, default=2000, help="clips to transcribe (0: all 10,000)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", type=Path, help="keep the pool and project here (default: a temp dir)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.workdir, args.rank_clips, args.threads, args.out)

    tmp = None if args.workdir else tempfile.TemporaryDirectory()
    work = args.workdir or Path(tmp.name)  # type: ignore[union-attr]
    work.mkdir(parents=True, exist_ok=True)
    figures: dict = {"load_average_start": loadavg()}
    start = time.perf_counter()
    make_pool(work / "pool")
    print(f"pool of {COPIES * len(read_manifest(DATA))} files written in {time.perf_counter() - start:.0f} s")
    phases = {}
    for phase in ("import", "rank", "queue"):
        out = work / f"{phase}.json"
        load = loadavg()
        proc = subprocess.run([sys.executable, __file__, "--child", phase, "--workdir", str(work),
                               "--rank-clips", str(args.rank_clips), "--threads", str(args.threads),
                               "--out", str(out)], cwd=Path(__file__).parent)
        if proc.returncode:
            raise SystemExit(f"phase {phase} failed (exit {proc.returncode})")
        phases[phase] = r = json.loads(out.read_text())
        r["load_before"] = load
        print(phase, {k: v for k, v in r.items() if k != "rss_samples"}, flush=True)

    imp, rk, qu = phases["import"], phases["rank"], phases["queue"]
    flat = flatness(rk["rss_samples"])
    figures.update(
        pool_clips=imp["clips"], pool_audio_hours=imp["audio_hours"], import_seconds=imp["seconds"],
        import_peak_rss_gb=imp["peak_rss_gb"],
        rank_clips=rk["transcribed"], rank_audio_seconds=rk["audio_seconds"], rank_seconds=rk["rank_seconds"],
        rank_audio_s_per_s=rk["speed"], rank_windows=rk["windows"], rank_retried=rk["retried"],
        rank_peak_rss_gb=rk["peak_rss_gb"], rank_load_before=rk["load_before"],
        queue_synthetic_rows=qu["synthetic_rows"], queue_real_rows=qu["real_rows"], queued=qu["queued"],
        build_queue_seconds=qu["build_queue_seconds"], status_queue_seconds=qu["status_queue_seconds"],
        queue_peak_rss_gb=qu["peak_rss_gb"],
        peak_rss_gb_10k=max(rk["peak_rss_gb"], qu["peak_rss_gb"]),
        **{f"rank_{k}": v for k, v in flat.items()},
        load_average_end=loadavg(),
    )
    print(json.dumps(figures, indent=1))
    (RESULTS / "rank_memory_10k_rss.json").parent.mkdir(parents=True, exist_ok=True)
    (RESULTS / "rank_memory_10k_rss.json").write_text(json.dumps(
        {p: phases[p]["rss_samples"] for p in phases}) + "\n")
    print("wrote", write_result("rank_memory_10k", figures))
    throughput = RESULTS / "rank_throughput.json"
    if throughput.is_file():
        record = json.loads(throughput.read_text())
        record["peak_rss_gb_10k"] = figures["peak_rss_gb_10k"]
        throughput.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
