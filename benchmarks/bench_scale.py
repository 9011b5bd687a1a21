"""Ranking on Ray against ranking in one process, on this machine.

The same clips (evenly spaced over speechocean762) are imported into three projects
and ranked with tiny.en: by plain ``earmark.rank()``, and by ``rank()`` with
:func:`earmark.ranking.distributed.transcribe_on_ray` on a local Ray of this machine's
cores, with one actor (both cores: the same overlapped encoder and decoder threads as
the plain run) and with two actors (one core each). Each whole ``rank()`` call is timed
(model loads, Ray's start, the database writes and the queue included); throughput is
audio seconds per wall second.

- ``ray_matches_local``: every clip's text is the same in the plain run and in both Ray
  runs, and every float score agrees within 1e-3;
- ``ray_overhead_ratio``: throughput with one actor / plain throughput (goal >= 0.9);
  ``ray_2workers_ratio``: the same with two actors.

``--batch-size`` (default 8) cuts the pool into several shards of 128 clips, so that
two actors have work to share (at the default of 16 a shard holds 256 clips); all three
runs use it.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_scale.py [--clips 300] [--batch-size 8]

Writes ``benchmarks/results/scale.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from common import loadavg, print_and_write, read_manifest


def transcripts(project) -> dict:
    from sqlalchemy import select

    from earmark.store.db import Clip, TranscriptRow

    with project.store.session() as s:
        # the same manifest imported in the same order: the same clip ids in every project
        return {cid: (text, scores) for cid, text, scores in s.execute(
            select(Clip.id, TranscriptRow.text, TranscriptRow.scores).join(
                TranscriptRow, TranscriptRow.clip_id == Clip.id))}


def same(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        if a[k][0] != b[k][0]:
            return False
        for name, v in a[k][1].items():
            if isinstance(v, float) and abs(b[k][1].get(name, float("nan")) - v) > 1e-3:
                return False
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()

    from earmark.ingest import import_audio
    from earmark.models.device import cpu_cores
    from earmark.ranking.distributed import RayConfig, transcribe_on_ray
    from earmark.ranking.rank import rank
    from earmark.store.project import init_project

    rows = read_manifest()
    rows = rows[:: max(1, len(rows) // args.clips)][: args.clips]
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    manifest = work / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    runs = {"plain": None,
            "ray1": RayConfig(workers=1),
            "ray2": RayConfig(workers=2)}
    figures: dict = {"clips": len(rows), "batch_size": args.batch_size, "cores": cpu_cores()}
    results = {}
    for name, ray_cfg in runs.items():
        project = init_project(work / name)
        import_audio(project, manifest, progress=False)
        decode = replace(project.config.decode, batch_size=args.batch_size, device="cpu")
        backend = functools.partial(transcribe_on_ray, ray_cfg=ray_cfg) if ray_cfg else None
        start = time.perf_counter()
        report = rank(project, decode=decode, progress=False, transcribe=backend)
        wall = time.perf_counter() - start
        figures[f"{name}_audio_seconds_per_second"] = round(report.audio_seconds / wall, 2)
        figures[f"{name}_transcribe_audio_seconds_per_second"] = round(report.audio_seconds_per_second, 2)
        figures[f"{name}_wall_seconds"] = round(wall, 1)
        figures["audio_seconds"] = round(report.audio_seconds, 1)
        results[name] = transcripts(project)
        print(f"{name}: {report.transcribed} clips, {wall:.1f} s, load {loadavg()}", flush=True)
    figures["ray_matches_local"] = same(results["plain"], results["ray1"]) and same(results["plain"], results["ray2"])
    figures["ray1_matches_local"] = same(results["plain"], results["ray1"])
    plain = figures["plain_audio_seconds_per_second"]
    figures["ray_overhead_ratio"] = round(figures["ray1_audio_seconds_per_second"] / plain, 3)
    figures["ray_2workers_ratio"] = round(figures["ray2_audio_seconds_per_second"] / plain, 3)
    figures["loadavg"] = loadavg()
    print_and_write("scale", figures, 42)
    return 0


if __name__ == "__main__":
    sys.exit(main())
