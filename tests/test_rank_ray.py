"""``earmark rank --ray``: the pool transcribed by a Ray Data actor pool on a local Ray.

The slow tests start a local Ray with 2 CPUs (two actors of one CPU each) on the
shipped samples. They rank with a batch size of 1, so that the pool is cut into several
shards (at the default size the 31 samples are one shard, which one actor would take
alone); the single-process rank they are compared with runs with the same settings.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from _support import REPO, SAMPLES


# --- fast ----------------------------------------------------------------------------

def test_plan_shares_the_cluster_out():
    from earmark.errors import ClusterUnavailable
    from earmark.ranking.distributed import RayConfig, plan

    assert plan({"CPU": 2.0}, RayConfig()) == (1, 2, 0)  # two CPUs an actor, as on one machine
    assert plan({"CPU": 8.0}, RayConfig()) == (4, 2, 0)
    assert plan({"CPU": 2.0}, RayConfig(workers=2)) == (2, 1, 0)  # the CPUs shared out
    assert plan({"CPU": 1.0}, RayConfig()) == (1, 1, 0)
    assert plan({"CPU": 16.0, "GPU": 2.0}, RayConfig()) == (2, 8, 1)  # one actor per GPU
    with pytest.raises(ClusterUnavailable, match="no CPU"):
        plan({}, RayConfig())
    with pytest.raises(ClusterUnavailable, match="asks for 4 CPUs"):
        plan({"CPU": 2.0}, RayConfig(cpus_per_worker=4))


def test_an_unreachable_address_is_one_line(project, capsys):
    import socket

    from earmark.cli.main import main

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    assert main(["rank", str(project.root), "--ray", f"127.0.0.1:{port}", "-q"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the Ray head" in err and "ray start --head" in err
    assert len(err.strip().splitlines()) == 1 and time.monotonic() - start < 30
    assert main(["rank", str(project.root), "--ray", "nonsense", "-q"]) == 2
    assert "not a cluster address" in capsys.readouterr().err


def test_a_missing_ray_names_the_extra(project, monkeypatch, capsys):
    from earmark.cli.main import main

    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    assert main(["rank", str(project.root), "--ray", "-q"]) == 2
    assert "pip install 'earmark[ray]'" in capsys.readouterr().err


# --- slow: the real model on a local Ray -----------------------------------------------

def _imported(root: Path):
    from earmark.ingest import import_audio
    from earmark.store.project import init_project

    project = init_project(root)
    import_audio(project, SAMPLES / "manifest.jsonl", progress=False)
    return project


def _transcripts(project) -> dict[int, tuple]:
    from earmark.store.db import TranscriptRow

    with project.store.session() as s:
        return {t.clip_id: (t.text, t.scores, t.words) for t in s.scalars(select(TranscriptRow))}


@pytest.mark.slow
def test_ray_rank_gives_the_single_process_transcripts_and_scores(tmp_path):
    import functools

    from earmark.ranking.distributed import RayConfig, transcribe_on_ray
    from earmark.ranking.rank import rank

    local, on_ray = _imported(tmp_path / "local"), _imported(tmp_path / "ray")
    decode = replace(local.config.decode, batch_size=1, threads=1, device="cpu")
    rank(local, decode=decode, progress=False)
    report = rank(on_ray, decode=decode, progress=False, transcribe=functools.partial(
        transcribe_on_ray, ray_cfg=RayConfig(local_cpus=2, workers=2)))
    a, b = _transcripts(local), _transcripts(on_ray)
    assert report.transcribed == len(a) == len(b) >= 31 and set(a) == set(b)
    for cid in a:
        assert a[cid][0] == b[cid][0], cid  # the same text, clip by clip
        for name, value in a[cid][1].items():
            if isinstance(value, float):
                assert b[cid][1][name] == pytest.approx(value, rel=1e-3, abs=1e-3), (cid, name)
            else:
                assert b[cid][1][name] == value, (cid, name)
        assert [w["word"] for w in a[cid][2]] == [w["word"] for w in b[cid][2]]
        assert all(abs(x["start"] - y["start"]) <= 0.02 for x, y in zip(a[cid][2], b[cid][2]))
    assert report.queued == len(a) and report.audio_seconds > 100


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], [pid]
    while frontier:
        kids = [p for p, pp in parents.items() if pp in frontier]
        found += kids
        frontier = kids
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.slow
def test_a_killed_actor_loses_no_clip_and_duplicates_none(tmp_path):
    """SIGKILL one actor once the first shards are stored: Ray restarts it and runs its
    shard again; every clip ends with exactly one transcript."""
    from earmark.store.db import Clip, TranscriptRow

    project = _imported(tmp_path / "proj")
    with project.store.session() as s:
        clips = s.scalar(select(func.count(Clip.id)))
    # no packing and one window per batch: shards of 2 clips, 16 of them, so both actors
    # are busy when one is killed
    cmd = [sys.executable, "-m", "earmark.cli", "rank", str(project.root), "--ray", "--ray-workers", "2",
           "--batch-size", "1", "--no-pack", "--threads", "1", "--device", "cpu", "-q"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "RAY_ADDRESS": ""}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    killed, seen = None, set()
    try:
        deadline = time.monotonic() + 600
        while proc.poll() is None and time.monotonic() < deadline:
            actors = [p for p in _descendants(proc.pid) if "ShardTranscriber" in _cmdline(p)]
            seen.update(actors)
            if killed is None and actors:
                with project.store.session() as s:
                    stored = s.scalar(select(func.count(TranscriptRow.id)))
                if 0 < stored < clips - 4:
                    os.kill(actors[0], signal.SIGKILL)
                    killed = actors[0]
            time.sleep(0.2)
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
        time.sleep(2)  # an actor busy when its raylet went may outlive it: end ours
        for pid in seen:
            if "ShardTranscriber" in _cmdline(pid):
                os.kill(pid, signal.SIGKILL)
    assert killed is not None, "the run ended before an actor could be killed"
    assert proc.returncode == 0, out
    with project.store.session() as s:
        per_clip = s.execute(select(TranscriptRow.clip_id, func.count()).group_by(TranscriptRow.clip_id)).all()
    assert len(per_clip) == clips and all(n == 1 for _, n in per_clip)
    assert f"transcribed {clips} clips" in out
