"""Ranking end to end with tiny.en: the queue finds the errors, and a killed run resumes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from sqlalchemy import func, select

from _support import REPO, SAMPLES, wer
from earmark.review.reports import mark_words, queue, status
from earmark.store.db import QueueEntry, TranscriptRow

pytestmark = pytest.mark.slow


def test_queue_puts_the_clips_with_most_errors_first(ranked_project):
    rows = queue(ranked_project, top=100)
    st = status(ranked_project)
    assert len(rows) == st.clips == st.transcribed == st.queued > 20
    with ranked_project.store.session() as s:
        refs = dict(s.execute(select(TranscriptRow.clip_id, TranscriptRow.text)).all())
    from earmark.store.db import Clip

    with ranked_project.store.session() as s:
        ref_text = dict(s.execute(select(Clip.id, Clip.reference_text)).all())
    errs = [wer(ref_text[r.clip_id], refs[r.clip_id]) for r in rows if ref_text[r.clip_id]]
    third = len(errs) // 3
    assert np.mean(errs[:third]) > np.mean(errs[-third:]) + 0.2
    scores = [r.score for r in rows]
    assert scores == sorted(scores, reverse=True)


def test_queue_marks_low_confidence_words(ranked_project):
    top = queue(ranked_project, top=1)[0]
    marked = mark_words(top.words, 0.5)
    assert "[" in marked
    assert mark_words([{"word": " sure", "p": 0.9}, {"word": " maybe", "p": 0.1}], 0.5) == "sure [maybe]"


def test_rank_again_transcribes_nothing_new(ranked_project):
    from earmark.ranking.rank import rank

    report = rank(ranked_project, progress=False)
    assert report.transcribed == 0 and report.queued == status(ranked_project).clips


def test_strategy_choice_reorders_the_queue(ranked_project):
    from earmark.config import SelectionConfig
    from earmark.ranking.rank import build_queue

    mv = ranked_project.store.active_model()
    try:
        build_queue(ranked_project, mv.id, SelectionConfig(strategy="random", seed=1))
        rnd = [r.clip_id for r in queue(ranked_project, 100)]
        build_queue(ranked_project, mv.id, SelectionConfig(strategy="longest-first"))
        longest = queue(ranked_project, 100)
        assert rnd != [r.clip_id for r in longest]
        assert longest[0].duration == max(r.duration for r in longest)
        # an order with no score of its own still shows the model's doubt, not zeros
        assert any(r.score > 0 for r in longest)
        build_queue(ranked_project, mv.id, SelectionConfig())
        by_clip = {r.clip_id: r.score for r in queue(ranked_project, 100)}
        assert all(abs(r.score - by_clip[r.clip_id]) < 1e-9 for r in longest)
    finally:
        build_queue(ranked_project, mv.id, ranked_project.config.selection)


def test_rank_stores_embeddings_so_the_diverse_strategy_spreads_the_queue(ranked_project):
    """Without the encoder states rank stored, diverse-errors-per-second would be plain
    errors-per-second: the k-center spread needs an embedding for every shortlisted clip."""
    from earmark.config import SelectionConfig
    from earmark.ranking.rank import build_queue, pack_embedding, pool_candidates, unpack_embedding

    mv = ranked_project.store.active_model()
    assert all(c.embedding is None for c in pool_candidates(ranked_project, mv.id))  # not unless asked
    pool = pool_candidates(ranked_project, mv.id, embeddings=True)
    assert all(c.embedding is not None and len(c.embedding) == 384 for c in pool)  # tiny's state
    assert len({c.embedding for c in pool}) == len(pool)  # each clip its own, packed or not
    first = np.asarray(pool[0].embedding)
    assert np.allclose(unpack_embedding(pack_embedding(first)), first, rtol=1e-3, atol=1e-3)
    assert unpack_embedding(None) is None and unpack_embedding("not base64!") is None
    try:
        build_queue(ranked_project, mv.id, SelectionConfig(strategy="errors-per-second"))
        plain = [r.clip_id for r in queue(ranked_project, 100)]
        build_queue(ranked_project, mv.id, SelectionConfig(strategy="diverse-errors-per-second"))
        spread = [r.clip_id for r in queue(ranked_project, 100)]
        assert spread[0] == plain[0] and sorted(spread) == sorted(plain)
        assert spread != plain
    finally:
        build_queue(ranked_project, mv.id, ranked_project.config.selection)


def _earmark(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "earmark.cli.main", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=600, **kw)


def test_killed_rank_resumes_without_losing_or_repeating_work(tmp_path):
    proj = tmp_path / "p"
    assert _earmark("init", str(proj)).returncode == 0
    assert _earmark("import", str(proj), str(SAMPLES / "audio"), "-q").returncode == 0
    # one clip per window and batch: every two clips are committed on their own
    cmd = [sys.executable, "-m", "earmark.cli.main", "rank", str(proj), "--no-pack", "--batch-size", "1", "-q"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    from earmark.store.project import open_project

    project = open_project(proj)
    deadline = time.time() + 300
    done = 0
    while time.time() < deadline and proc.poll() is None:
        with project.store.session() as s:
            done = s.scalar(select(func.count()).select_from(TranscriptRow))
        if done >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with project.store.session() as s:
        kept = dict(s.execute(select(TranscriptRow.clip_id, TranscriptRow.id)).all())
        total = s.scalar(select(func.count()).select_from(
            __import__("earmark.store.db", fromlist=["Clip"]).Clip))
    assert 2 <= len(kept) < total, "the run should have been killed part way"

    out = _earmark("rank", str(proj), "-q")
    assert out.returncode == 0, out.stderr
    assert f"transcribed {total - len(kept)} clips" in out.stdout
    with project.store.session() as s:
        after = dict(s.execute(select(TranscriptRow.clip_id, TranscriptRow.id)).all())
        assert s.scalar(select(func.count()).select_from(QueueEntry)) == total
    assert len(after) == total
    assert all(after[c] == i for c, i in kept.items())  # earlier work kept, not redone


def test_cli_help_and_errors(tmp_path):
    out = _earmark("--help")
    assert out.returncode == 0
    for cmd in ("init", "import", "rank", "queue", "status"):
        assert cmd in out.stdout
        assert _earmark(cmd, "--help").returncode == 0
    missing = _earmark("status", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "no earmark project here" in missing.stderr and "Traceback" not in missing.stderr
    bad = _earmark("rank", str(tmp_path / "nope"), "--strategy", "clever")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_cli_queue_and_status_output(ranked_project):
    out = _earmark("queue", str(ranked_project.root), "--top", "3", "--plain")
    assert out.returncode == 0
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("rank") and len(lines) == 4
    st = _earmark("status", str(ranked_project.root))
    assert "active model tiny.en" in st.stdout and "transcribed" in st.stdout


def test_rank_with_a_limit_transcribes_a_prefix_then_the_rest(tmp_path):
    from earmark.ingest import import_audio
    from earmark.store.project import init_project
    from earmark.ranking.rank import rank

    import torch

    project = init_project(tmp_path / "p")
    import_audio(project, SAMPLES / "manifest.jsonl", progress=False)
    total = status(project).clips
    threads = torch.get_num_threads()
    first = rank(project, progress=False, limit=5)
    assert first.transcribed == 5 and first.queued == 5 and first.windows >= 1
    # ranking picks its own thread count; what runs next in the process (a fine-tune,
    # say) must get the count back, not train on one core
    assert torch.get_num_threads() == threads
    rest = rank(project, progress=False)
    assert rest.transcribed == total - 5 and rest.queued == total
    assert rest.retried <= rest.transcribed and rest.audio_seconds_per_second > 0


def test_demo_runs_the_loop_on_the_shipped_samples(tmp_path):
    out = _earmark("demo", str(tmp_path / "d"), "--no-app", "--top", "5")
    assert out.returncode == 0, out.stderr
    assert "imported 31 files as 32 clips" in out.stdout
    assert "queue: 32 clips ordered by errors-per-second" in out.stdout
    assert "next: earmark review" in out.stdout
    # each step shows the command that repeats it by hand, arguments included
    assert f"$ earmark import {tmp_path / 'd'} " in out.stdout and "earmark/samples/manifest.jsonl" in out.stdout
    assert f"$ earmark queue {tmp_path / 'd'} --top 5" in out.stdout
    again = _earmark("demo", str(tmp_path / "d"), "--no-app")
    assert again.returncode == 2 and "--fresh" in again.stderr


def test_rank_commits_in_chunks_bounded_by_clips_and_by_audio():
    from earmark.ranking.rank import _chunks

    short = [(i, "a", 3.0) for i in range(10)]
    assert [len(p) for p in _chunks(short, 4, 1000.0)] == [4, 4, 2]
    long = [(i, "a", 25.0) for i in range(10)]  # a split long file: the seconds bound decides
    assert [len(p) for p in _chunks(long, 256, 60.0)] == [2, 2, 2, 2, 2]
    assert [len(p) for p in _chunks([(0, "a", 90.0), (1, "a", 5.0)], 256, 60.0)] == [1, 1]
    assert [c for p in _chunks(long, 3, 60.0) for c, _, _ in p] == list(range(10))


def test_a_damaged_stored_clip_is_left_out_and_named_while_the_rest_is_ranked(tmp_path, capsys):
    from earmark.cli.main import main
    from earmark.errors import UnreadableAudio
    from earmark.ingest import import_audio
    from earmark.store.project import init_project
    from earmark.ranking.rank import rank
    from earmark.store.db import Clip

    project = init_project(tmp_path / "p")
    for name in ("s01", "s02", "s03"):
        import_audio(project, SAMPLES / "audio" / f"{name}.wav", progress=False)
    with project.store.session() as s:
        clips = [(c.id, project.clip_path(c.audio_path)) for c in s.scalars(select(Clip).order_by(Clip.id))]
    clips[1][1].write_bytes(b"junk")
    assert main(["rank", str(project.root), "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert "transcribed 2 clips" in out and "queue: 2 clips" in out
    assert "1 stored clip could not be read" in err and f"clip {clips[1][0]}: " in err
    assert sorted(r.clip_id for r in queue(project)) == [clips[0][0], clips[2][0]]
    assert main(["rank", str(project.root), "--quiet"]) == 2  # the one left pending: named, as an error
    assert f"{clips[1][1].name}: stored clip is unreadable" in capsys.readouterr().err
    assert main(["import", str(project.root), str(SAMPLES / "audio" / "s02.wav"), "--quiet"]) == 0
    assert "restored 1 stored clip" in capsys.readouterr().out  # the remedy the message gives
    again = rank(project, progress=False)
    assert (again.transcribed, again.unreadable, again.queued) == (1, (), 3)
    gone = init_project(tmp_path / "gone")  # a pool none of whose audio can be read
    import_audio(gone, SAMPLES / "audio" / "s04.wav", progress=False)
    for path in (gone.root / "audio").rglob("*.flac"):
        path.unlink()
    with pytest.raises(UnreadableAudio, match="stored clip is missing"):
        rank(gone, progress=False)
