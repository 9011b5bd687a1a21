"""Issue #23: nothing lost, no traceback. One test per fault found by trying to break earmark.

Fast tests use hand-made projects; the few that need transcripts use the real tiny.en
model and are marked ``slow``.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from earmark.store import backup

from earmark.review import workflow as review
from earmark.cli.main import main
from earmark.errors import BadConfig, CorruptDatabase, RunInProgress
from earmark.ingest import import_audio
from earmark.store.project import init_project, open_project
from earmark.review.reports import status
from earmark.store.db import Correction

from _support import SAMPLES, damage, write_manifest
from hostile import run_cli, tone, wav_bytes

REPO = Path(__file__).resolve().parent.parent


# --- 2. data lost or hidden while reporting success ----------------------------------------

@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://", "sqlite:///file::memory:?cache=shared"])
def test_an_in_memory_database_is_refused_at_init(tmp_path, url):
    r = run_cli(["init", str(tmp_path / "p"), "--db-url", url])
    assert r.clear_error, r
    assert "in memory" in r.err and "nothing imported or corrected would be kept" in r.err
    assert not (tmp_path / "p" / "earmark.json").exists()


def test_a_relative_sqlite_path_is_taken_from_the_project_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run_cli(["init", "proj", "--db-url", "sqlite:///rel.db"])
    assert r.code == 0, r
    assert f"SQLite file {tmp_path / 'proj' / 'rel.db'}" in r.out and "taken from the project folder" in r.out
    assert (tmp_path / "proj" / "rel.db").is_file() and not (tmp_path / "rel.db").exists()
    project = open_project("proj")
    import_audio(project, write_manifest(tmp_path / "m", ("s06",)), progress=False)
    project.store.dispose()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    r = run_cli(["status", "../proj"])
    assert r.code == 0 and "clips        1 " in r.out, r
    assert list(elsewhere.iterdir()) == []  # no empty database made beside this folder


def test_a_sqlite_file_named_in_the_config_that_is_gone_is_not_silently_recreated(tmp_path):
    init_project(tmp_path / "p", _cfg(f"sqlite:///{tmp_path / 'db' / 'x.db'}", tmp_path)).store.dispose()
    (tmp_path / "db" / "x.db").unlink()
    with pytest.raises(CorruptDatabase, match="is missing"):
        open_project(tmp_path / "p")
    assert not (tmp_path / "db" / "x.db").exists()


def _cfg(url: str, tmp_path: Path):
    from earmark.config import ProjectConfig

    (tmp_path / "db").mkdir(exist_ok=True)
    return ProjectConfig(database_url=url)


def test_restore_reads_every_correction_of_a_file_whose_whole_header_is_overwritten(handmade, capsys):
    """600 corrections saved after the snapshot, then the first 100 bytes overwritten."""
    snap = backup.take(handmade, "rank")
    assert snap is not None
    rng = random.Random(0)
    with handmade.store.session() as s:
        s.add_all(Correction(clip_id=1 + i % 3, text=f"text number {i}", annotator="ada")
                  for i in range(600))
    handmade.store.dispose()
    db = handmade.root / "earmark.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(db, "r+b") as f:
        f.write(bytes(rng.randrange(256) for _ in range(100)))

    assert main(["restore", str(handmade.root)]) == 0
    assert "copied back: 600" in capsys.readouterr().out
    project = open_project(handmade.root)
    with project.store.session() as s:
        texts = sorted(s.scalars(Correction.__table__.select().with_only_columns(Correction.text)))
    assert texts == sorted(f"text number {i}" for i in range(600))


def test_a_mended_header_counts_the_pages_of_the_damaged_file():
    good = bytearray(100)
    good[:16] = b"SQLite format 3\x00"
    good[16:18] = (4096).to_bytes(2, "big")
    good[28:32] = (3).to_bytes(4, "big")  # the snapshot had 3 pages
    good[32:36] = (2).to_bytes(4, "big")  # and a free page
    head = backup.mended_header(bytes(good), 10 * 4096, wal=True)
    assert head[:16] == good[:16] and head[18:20] == b"\x02\x02"
    assert int.from_bytes(head[28:32], "big") == 10 and head[32:40] == bytes(8)
    assert head[92:96] != head[24:28]  # SQLite then counts the file's pages itself


# --- 3. tracebacks instead of a clear line --------------------------------------------------

def test_a_symlink_loop_given_as_the_source_is_one_clear_line(project, tmp_path):
    os.symlink("loop.wav", tmp_path / "loop.wav")
    r = run_cli(["import", str(project.root), str(tmp_path / "loop.wav")])
    assert r.clear_error, r
    assert "leads back to itself" in r.err


def test_symlink_loops_in_a_folder_and_a_manifest_are_rejected_and_the_import_goes_on(project, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "good.wav").write_bytes(wav_bytes(tone()))
    os.symlink("loop.wav", src / "loop.wav")
    os.symlink("b.wav", src / "a.wav")
    os.symlink("a.wav", src / "b.wav")
    report = import_audio(project, src, progress=False)
    assert report.files_added == 1
    assert sorted(Path(p).name for p, _ in report.rejected) == ["a.wav", "b.wav", "loop.wav"]
    assert all("leads back to itself" in why for _, why in report.rejected)

    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio": str(src / "loop.wav")}) + "\n")
    again = import_audio(project, manifest, progress=False)
    assert [Path(p).name for p, _ in again.rejected] == ["loop.wav"]


def test_a_file_that_cannot_be_read_is_rejected_with_the_reason(project, tmp_path):
    """Root reads any file whatever its mode: /proc/self/mem gives an I/O error to all."""
    src = tmp_path / "src"
    src.mkdir()
    os.symlink("/proc/self/mem", src / "mem.wav")
    (src / "good.wav").write_bytes(wav_bytes(tone()))
    report = import_audio(project, src, progress=False)
    assert report.files_added == 1
    ((path, why),) = report.rejected
    assert "cannot be read (Input/output error)" in why


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file of mode 000; "
                    "test_a_file_that_cannot_be_read_is_rejected_with_the_reason covers the path")
def test_a_file_without_read_permission_is_rejected_with_the_reason(project, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "locked.wav").write_bytes(wav_bytes(tone()))
    (src / "locked.wav").chmod(0)
    report = import_audio(project, src, progress=False)
    ((path, why),) = report.rejected
    assert "Permission denied" in why and "chmod +r" in why


def test_a_wav_whose_header_says_rate_zero_is_rejected(project, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "zero.wav").write_bytes(wav_bytes(tone(), header_rate=0))
    report = import_audio(project, src, progress=False)
    ((path, why),) = report.rejected
    assert "sample rate of 0 Hz" in why


def test_a_manifest_path_holding_a_nul_byte_is_rejected_with_its_line(project, tmp_path):
    good = tmp_path / "good.wav"
    good.write_bytes(wav_bytes(tone()))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio": "bad\x00name.wav"}) + "\n" + json.dumps({"audio": str(good)}) + "\n")
    report = import_audio(project, manifest, progress=False)
    assert report.files_added == 1
    ((path, why),) = report.rejected
    assert "NUL byte" in why and "line 1" in why


def test_simulate_out_naming_a_file_is_one_clear_line(tmp_path):
    (tmp_path / "taken").write_text("a file\n")
    r = run_cli(["simulate", "--manifest", str(SAMPLES / "manifest.jsonl"), "--out", str(tmp_path / "taken"),
                 "--strategies", "random,errors-per-second"])
    assert r.clear_error, r
    assert "a file, not a folder" in r.err


# --- 4. work done twice -----------------------------------------------------------------------

def test_a_second_rank_on_the_project_is_refused_while_the_first_runs(handmade):
    from earmark.ranking.rank import ranking_alone

    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, fcntl, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
         "f.write('4242'); f.flush(); print('held', flush=True); time.sleep(60)",
         str(handmade.root / ".rank.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunInProgress, match="another `earmark rank`.*process 4242"):
            with ranking_alone(handmade):
                pass
        r = run_cli(["rank", str(handmade.root)])
        assert r.clear_error and "is ranking this project right now" in r.err, r
    finally:
        holder.kill()  # a killed holder leaves no lock behind
        holder.wait()
    with ranking_alone(handmade):
        pass


# --- 5. smaller ones ------------------------------------------------------------------------

def test_simulate_workers_are_capped_at_the_cores_with_a_note(capsys):
    from earmark.cli.main import build_parser
    from earmark.models.device import cpu_cores

    args = build_parser().parse_args(["simulate", "--manifest", "m.jsonl", "--workers", "1000"])
    assert args.workers == cpu_cores()
    assert f"--workers 1000 is more than this machine's {cpu_cores()} CPU cores" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["", "random,,entropy", " , ", "random,"])
def test_an_empty_strategy_name_is_refused(value):
    r = run_cli(["simulate", "--manifest", "m.jsonl", "--strategies", value])
    assert r.clear_error, r
    assert "empty strategy name" in r.err


def test_review_on_every_address_warns_that_the_app_has_no_login(handmade, monkeypatch):
    from earmark.cli import review as review_cli

    ran = []  # the app is not started: its command line is kept, and it "ends" at once
    monkeypatch.setattr(subprocess, "Popen", lambda cmd, env: ran.append(cmd) or cmd)
    monkeypatch.setattr(review_cli, "run_until_stopped", lambda child: 0)
    r = run_cli(["review", str(handmade.root), "--host", "0.0.0.0", "--port", "8599"])
    assert r.code == 0 and ran, r
    assert "has no login" in r.err and "reverse proxy with authentication" in r.err
    quiet = run_cli(["review", str(handmade.root), "--port", "8599"])
    assert quiet.code == 0 and "no login" not in quiet.err


def test_a_folder_named_like_audio_is_named_in_the_report(project, tmp_path):
    src = tmp_path / "src"
    (src / "take1.wav").mkdir(parents=True)
    (src / "good.wav").write_bytes(wav_bytes(tone()))
    report = import_audio(project, src, progress=False)
    assert any("take1.wav: a folder named like an audio file" in w for w in report.warnings)


def test_a_folder_that_cannot_be_listed_is_named_in_the_report(tmp_path, monkeypatch):
    """Root lists any folder, so the walk's error is raised as the OS would raise it."""
    from earmark import audio as au

    src = tmp_path / "src"
    (src / "closed").mkdir(parents=True)
    (src / "good.wav").write_bytes(wav_bytes(tone()))
    real = os.scandir

    def scandir(path="."):
        if Path(path).name == "closed":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    problems: list[str] = []
    found = au.find_audio(src, (".wav",), problems=problems)
    assert [p.name for p in found] == ["good.wav"]
    assert problems and "closed: cannot list this folder (Permission denied)" in problems[0]


def test_a_text_file_named_mp3_is_said_to_be_no_audio(project, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "notes.mp3").write_text("shopping list: milk, eggs\n" * 3)
    report = import_audio(project, src, progress=False)
    ((path, why),) = report.rejected
    assert "not decodable audio" in why and "holds text" in why
    assert "does not exist" not in why and "not a regular file" not in why


def test_the_projects_own_clips_are_not_imported_again(project, tmp_path):
    import shutil

    first = import_audio(project, write_manifest(tmp_path / "m", ("s06", "s09")), progress=False)
    assert first.clips_added == 2
    copied = tmp_path / "copy_of_audio"
    shutil.copytree(project.audio_dir, copied)
    again = import_audio(project, copied, progress=False)
    assert again.files_added == 0 and again.duplicates == 2
    assert any("stored clips" in w for w in again.warnings)
    manifest = tmp_path / "own.jsonl"
    manifest.write_text("".join(json.dumps({"audio": str(p)}) + "\n" for p in project.audio_dir.rglob("*.flac")))
    third = import_audio(project, manifest, progress=False)
    assert third.files_added == 0 and any("clips this project stored itself" in w for w in third.warnings)
    assert status(project).clips == 2


@pytest.mark.parametrize("command", [["status"], ["queue"], ["export", "--out", "{tmp}/exp"]])
def test_read_commands_refuse_a_database_with_a_damaged_middle(handmade, tmp_path, command):
    backup.take(handmade, "rank")
    damage(handmade, "transcripts")
    argv = [command[0], str(handmade.root), *[a.format(tmp=tmp_path) for a in command[1:]]]
    r = run_cli(argv)
    assert r.clear_error, r
    assert "the project database is damaged" in r.err and "earmark restore" in r.err


def test_app_error_messages_show_file_names_as_typed():
    from streamlit.testing.v1 import AppTest

    def page():
        import earmark_ui as ui
        from earmark.errors import UnreadableAudio

        with ui.shown_errors():
            raise UnreadableAudio("/data/[click me](http://evil.example)*x*.wav: cannot decode")

    app_dir = REPO / "src" / "earmark" / "app"
    sys.path.insert(0, str(app_dir))
    try:
        at = AppTest.from_function(page).run()
    finally:
        sys.path.remove(str(app_dir))
    (error,) = at.error
    # escaped brackets and stars: Markdown makes neither a link nor italics of them
    assert "\\[click me\\](http" in error.value and "\\*x\\*" in error.value


def test_a_training_state_file_cannot_run_code(tmp_path):
    import torch

    from earmark.train.state_file import load_state_file

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"format": 2, "x": Payload()}))
    with pytest.raises(pickle.UnpicklingError):
        load_state_file(evil)
    assert not marker.exists()

    # what save_state writes (tensors, RNG states of torch, Python and numpy) still loads
    good = tmp_path / "state.pt"
    torch.save({"torch_rng": torch.get_rng_state(), "python_rng": random.getstate(),
                "numpy_rng": np.random.get_state(), "state": {"step": 3, "history": [{"loss": 0.5}]}}, good)
    payload = load_state_file(good)
    np.random.set_state(payload["numpy_rng"])
    random.setstate(payload["python_rng"])
    assert payload["state"]["step"] == 3


@pytest.mark.slow
def test_rank_progress_ends_at_its_total_without_a_tqdm_warning(tmp_path):
    """Small unpacked batches make many chunks, whose rounded seconds overshot the total."""
    from tqdm import TqdmWarning

    from earmark.config import DecodeConfig
    from earmark.ranking.rank import rank

    project = init_project(tmp_path / "p")
    import_audio(project, SAMPLES / "manifest.jsonl", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TqdmWarning)
        report = rank(project, decode=DecodeConfig(batch_size=2, pack=False), progress=True)
    assert report.transcribed == status(project).clips
