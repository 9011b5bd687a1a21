"""The store, a project and the review leases on a real PostgreSQL server.

A throwaway server is started once per session from the Debian packages
(``make pg-deps`` installs them): ``initdb`` into a temp folder, a free loopback port, a
unix socket in the temp folder, ``fsync`` off. As root the server runs as the
``postgres`` user (PostgreSQL refuses to run as root). Every test gets a fresh database
on that server. The tests skip, saying why, only when no PostgreSQL binaries exist.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from _support import SAMPLES
from earmark.errors import PoolExhausted, SchemaTooNew
from earmark.store.db import (SCHEMA_VERSION, Clip, Correction, Lease, Meta, ModelVersion,
                           QueueEntry, Round, Source, Store, TranscriptRow, migrate, schema_version,
                           utcnow)

DB_NAME = "earmark_test"


def _bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin with initdb and pg_ctl, else the PATH's."""
    def version(d: str) -> tuple[int, ...]:
        name = Path(d).parent.name
        return tuple(int(x) for x in name.split(".") if x.isdigit())

    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if (Path(d) / "initdb").is_file() and (Path(d) / "pg_ctl").is_file():
            return Path(d)
    found = shutil.which("pg_ctl")
    if found and (Path(found).parent / "initdb").is_file():
        return Path(found).parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    """A PostgreSQL cluster in a temp folder, run by ``postgres`` when we are root."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.as_root = os.geteuid() == 0
        if self.as_root and shutil.which("runuser") is None:
            pytest.fail("running as root, but runuser (util-linux) is missing: PostgreSQL "
                        "must be started as the postgres user")
        # /tmp, not pytest's tmp_path: that is private to root, and the socket path must
        # stay under ~100 bytes
        self.top = Path(tempfile.mkdtemp(prefix="earmark-pg-",
                                         dir="/tmp" if self.as_root else None))
        self.data, self.sock = self.top / "data", self.top / "sock"
        self.log = self.top / "server.log"
        self.sock.mkdir()
        if self.as_root:
            try:
                shutil.chown(self.top, "postgres", "postgres")
                shutil.chown(self.sock, "postgres", "postgres")
            except LookupError:
                shutil.rmtree(self.top, ignore_errors=True)
                pytest.fail("running as root, but there is no postgres user to run the server "
                            "(the Debian package creates it: apt-get install postgresql)")
        self.port = 0

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        for var in ("PGHOST", "PGPORT", "PGDATA", "PGUSER", "PGDATABASE", "PGPASSWORD"):
            env.pop(var, None)
        proc = subprocess.run(cmd, cwd=self.top, env=env, capture_output=True, text=True,
                              timeout=120)
        if check and proc.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            pytest.fail(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n"
                        f"{proc.stderr}\n{log}")
        return proc

    def start(self) -> None:
        self.run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                 "-E", "UTF8", "--no-locale", "--no-sync")
        for attempt in range(5):  # another process may take the free port first
            self.port = _free_port()
            opts = (f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
            proc = self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts,
                            "-w", "-t", "60", "start", check=attempt == 4)
            if proc.returncode == 0:
                return

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            proc = self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60",
                            "stop", check=False)
            if proc.returncode != 0:
                self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop",
                         check=False)
        shutil.rmtree(self.top, ignore_errors=True)

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, dbname: str) -> str:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        return self.url(dbname)


@pytest.fixture(scope="session")
def pg_server():
    """A running throwaway server with an empty ``earmark_test`` database."""
    bindir = _bin_dir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (no /usr/lib/postgresql/*/bin/initdb and no "
                    "pg_ctl on PATH); `make pg-deps` installs Debian's postgresql as root")
    server = _Server(bindir)
    try:
        server.start()
        server.create_database(DB_NAME)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_url(pg_server) -> str:
    """``postgresql+psycopg://postgres@127.0.0.1:PORT/earmark_test``."""
    return pg_server.url(DB_NAME)


_db_numbers = itertools.count(1)


@pytest.fixture
def fresh_url(pg_server) -> str:
    """The URL of a new, empty database on the session's server (one per test)."""
    return pg_server.create_database(f"{DB_NAME}_{next(_db_numbers)}")


@pytest.fixture
def store(fresh_url):
    s = Store(fresh_url)
    yield s
    s.dispose()


def _clips(store: Store, n: int) -> list[int]:
    """``n`` clips of ``n`` sources written directly (no audio needed)."""
    with store.session() as s:
        ids = []
        for i in range(n):
            src = Source(path=f"/audio/c{i}.wav", sha256=f"{i:064x}", status="ok", duration=2.0)
            s.add(src)
            s.flush()
            clip = Clip(source_id=src.id, offset=0.0, duration=2.0 + i / 10,
                        audio_path=f"audio/c{i}.flac")
            s.add(clip)
            s.flush()
            ids.append(clip.id)
        return ids


def _queue(store: Store, clip_ids: list[int]) -> None:
    """A transcript and a queue row for every clip, queued in the order given (no model)."""
    mv = store.active_model() or store.ensure_model_version("tiny.en")
    with store.session() as s:
        for rank, cid in enumerate(clip_ids, start=1):
            score = float(len(clip_ids) + 1 - rank)
            s.add(TranscriptRow(clip_id=cid, model_version_id=mv.id, text=f" hello world{cid}",
                             tokens=[{"id": 1, "text": " hello", "p": 0.9, "entropy": 0.1}],
                             words=[{"word": " hello", "start": 0.1, "end": 0.5, "p": 0.9},
                                    {"word": f" world{cid}", "start": 0.5, "end": 1.0, "p": 0.2}],
                             avg_logprob=-0.5, no_speech_prob=0.01, compression_ratio=1.0,
                             scores={"errors_per_second": score}))
            s.add(QueueEntry(clip_id=cid, rank=rank, score=score, strategy="errors-per-second",
                             model_version_id=mv.id))


# --- the store ---------------------------------------------------------------------------

def test_server_fixture_gives_the_documented_url(pg_url):
    assert pg_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    assert pg_url.endswith("/earmark_test")
    s = Store(pg_url)
    try:
        assert s.engine.dialect.name == "postgresql"
        assert schema_version(s.engine) == SCHEMA_VERSION
    finally:
        s.dispose()


def test_new_database_is_migrated_and_reopens(fresh_url):
    first = Store(fresh_url)
    assert first.engine.dialect.name == "postgresql"
    assert schema_version(first.engine) == SCHEMA_VERSION
    mv = first.ensure_model_version("tiny.en")
    assert mv.active
    first.dispose()

    again = Store(fresh_url)  # migrate on an up-to-date database is a no-op
    try:
        assert schema_version(again.engine) == SCHEMA_VERSION
        assert migrate(again.engine) == SCHEMA_VERSION
        assert again.active_model().spec == "tiny.en"
        with again.session() as s:
            assert s.scalar(select(func.count()).select_from(Meta)) == 1
            assert s.scalar(select(func.count()).select_from(ModelVersion)) == 1
    finally:
        again.dispose()


def test_newer_schema_is_refused(store, fresh_url):
    with store.session() as s:
        s.get(Meta, "schema_version").value = str(SCHEMA_VERSION + 1)
    with pytest.raises(SchemaTooNew, match="upgrade earmark"):
        Store(fresh_url)


def test_model_versions_and_set_active(store):
    base = store.ensure_model_version("tiny.en")
    assert store.ensure_model_version("tiny.en").id == base.id  # found, not duplicated
    tuned = store.ensure_model_version("/models/r1/model.pt", name="round-1")
    assert not tuned.active and store.active_model().id == base.id

    store.set_active(tuned.id)
    assert store.active_model().name == "round-1"
    store.set_active(base.id)
    with store.session() as s:
        active = s.scalars(select(ModelVersion.name).where(ModelVersion.active.is_(True))).all()
    assert active == ["tiny.en"]

    # a version is named after its spec by default, and a checkpoint path can be long
    long_spec = "/home/someone/projects/" + "deep/" * 40 + "model.pt"
    assert store.ensure_model_version(long_spec).name == long_spec

    with store.session() as s:  # JSON columns round-trip
        mv = s.get(ModelVersion, tuned.id)
        mv.record = {"dev_wer_before": 0.25, "dev_wer_after": 0.125, "clips": [3, 1, 2],
                     "parent": {"name": "tiny.en"}, "text": "naïve “quotes”"}
    with store.session() as s:
        rec = s.get(ModelVersion, tuned.id).record
    assert rec == {"dev_wer_before": 0.25, "dev_wer_after": 0.125, "clips": [3, 1, 2],
                   "parent": {"name": "tiny.en"}, "text": "naïve “quotes”"}


def test_corrections_are_append_only_and_latest_wins(store):
    a, b = _clips(store, 2)
    with store.session() as s:
        s.add(Correction(clip_id=a, text="first", annotator="ann"))
        s.add(Correction(clip_id=b, text="other clip", annotator="ann"))
    with store.session() as s:
        s.add(Correction(clip_id=a, text="second", annotator="bob"))
    assert [(c.clip_id, c.text) for c in store.latest_corrections()] == [(b, "other clip"),
                                                                          (a, "second")]
    with store.session() as s:
        history = s.scalars(select(Correction.text).where(Correction.clip_id == a)
                            .order_by(Correction.id)).all()
        created = s.scalars(select(Correction.created_at)).first()
    assert history == ["first", "second"]
    assert created.tzinfo is not None  # timestamptz comes back aware

    with store.session() as s:
        s.add(Correction(clip_id=a, flag="no speech", annotator="ann"))
    assert [c.clip_id for c in store.latest_corrections()] == [b]
    flagged = store.latest_corrections(include_flagged=True)
    assert [(c.clip_id, c.flag) for c in flagged] == [(b, None), (a, "no speech")]


def test_a_failed_transaction_leaves_nothing(store):
    (a,) = _clips(store, 1)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with store.session() as s:
            s.add(Correction(clip_id=a, text="never saved", annotator="ann"))
            s.flush()  # sent to the server, then rolled back
            raise Boom

    with pytest.raises(IntegrityError):  # a duplicate content hash undoes the whole transaction
        with store.session() as s:
            s.add(Source(path="/audio/new.wav", sha256="f" * 64, status="ok"))
            s.add(Source(path="/audio/dup.wav", sha256=f"{0:064x}", status="ok"))

    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Correction)) == 0
        assert s.scalars(select(Source.path)).all() == ["/audio/c0.wav"]
    # the pool's connection is usable after the rollbacks
    with store.session() as s:
        s.add(Correction(clip_id=a, text="saved", annotator="ann"))
    assert [c.text for c in store.latest_corrections()] == ["saved"]


# --- a project -----------------------------------------------------------------------------

def _manifest(folder: Path, names: tuple[str, ...]) -> Path:
    import json

    rows = [json.loads(line) for line in (SAMPLES / "manifest.jsonl").read_text().splitlines()
            if line.strip()]
    chosen = [{**r, "audio": str(SAMPLES / r["audio"])} for r in rows
              if Path(r["audio"]).stem in names]
    assert len(chosen) == len(names)
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in chosen))
    return path


def test_project_on_postgres_imports_and_reports(tmp_path, fresh_url):
    from earmark.config import ProjectConfig
    from earmark.ingest import import_audio
    from earmark.store.project import init_project, open_project
    from earmark.review.reports import status

    project = init_project(tmp_path / "proj", ProjectConfig(database_url=fresh_url))
    try:
        assert not (tmp_path / "proj" / "earmark.db").exists()
        report = import_audio(project, _manifest(tmp_path, ("s01", "s06", "s09")), progress=False)
        assert (report.files_added, report.clips_added) == (3, 3)
        again = import_audio(project, _manifest(tmp_path, ("s01", "s06", "s09")), progress=False)
        assert (again.files_added, again.duplicates) == (0, 3)  # idempotent by content hash

        st = status(project)
        assert (st.clips, st.files, st.transcribed, st.corrected, st.queued) == (3, 3, 0, 0, 0)
        assert st.active_model == project.config.decode.model
        assert 0 < st.clip_minutes < 3 * 30 / 60
    finally:
        project.store.dispose()

    reopened = open_project(tmp_path / "proj")  # the URL is in earmark.json
    try:
        assert reopened.store.engine.dialect.name == "postgresql"
        with reopened.store.session() as s:
            refs = s.scalars(select(Clip.reference_text).order_by(Clip.id)).all()
            paths = s.scalars(select(Clip.audio_path)).all()
        assert len(refs) == 3 and all(refs)
        assert all((reopened.root / p).is_file() for p in paths)
        assert status(reopened).clips == 3
    finally:
        reopened.store.dispose()


def test_cli_init_with_db_url(tmp_path, fresh_url, capsys):
    from earmark.cli.main import main
    from earmark.store.project import open_project

    assert main(["init", str(tmp_path / "proj"), "--db-url", fresh_url]) == 0
    project = open_project(tmp_path / "proj")
    try:
        assert project.config.database_url == fresh_url
        assert project.store.active_model() is not None
    finally:
        project.store.dispose()


# --- review leases ------------------------------------------------------------------------

@pytest.fixture
def pg_project_ids(tmp_path, fresh_url):
    """A project on PostgreSQL and its six clips, queued in id order (no audio, no model)."""
    from earmark.config import ProjectConfig
    from earmark.store.project import init_project

    project = init_project(tmp_path / "proj", ProjectConfig(database_url=fresh_url))
    ids = _clips(project.store, 6)
    _queue(project.store, ids)
    yield project, ids
    project.store.dispose()


def test_two_annotators_never_get_the_same_clip(pg_project_ids):
    from earmark.review.workflow import holder_id, next_clip, release, renew, save_correction

    project, ids = pg_project_ids
    ada, bob = holder_id("ada", "s1"), holder_id("bob", "s2")
    a = next_clip(project, ada)
    b = next_clip(project, bob)
    assert (a.clip_id, b.clip_id) == (ids[0], ids[1])  # queue order, the held one skipped
    assert a.hypothesis == f"hello world{ids[0]}" and a.rank == 1
    assert next_clip(project, ada).clip_id == ids[0]  # asking again keeps one's own clip
    assert renew(project, a.clip_id, ada) is True
    assert renew(project, a.clip_id, bob) is False  # bob cannot take ada's unexpired lease

    release(project, a.clip_id, ada)
    assert next_clip(project, bob).clip_id == ids[0]  # released: first in the queue again
    with project.store.session() as s:  # bob's other lease went with it
        assert s.scalars(select(Lease.clip_id).where(Lease.annotator == bob)).all() == [ids[0]]

    item = next_clip(project, ada)
    assert item.clip_id == ids[1]
    save_correction(project, item, "hello world", annotator="ada", seconds_spent=3.0, holder=ada)
    with project.store.session() as s:
        assert s.scalar(select(func.count()).select_from(Lease)
                        .where(Lease.clip_id == ids[1])) == 0
    assert next_clip(project, ada).clip_id == ids[2]  # corrected clips leave the queue


def test_an_expired_lease_returns_the_clip(pg_project_ids):
    from earmark.review.workflow import holder_id, next_clip

    project, ids = pg_project_ids
    ada, bob = holder_id("ada", "s1"), holder_id("bob", "s2")
    assert next_clip(project, ada).clip_id == ids[0]
    with project.store.session() as s:
        s.execute(update(Lease).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert next_clip(project, bob).clip_id == ids[0]
    with project.store.session() as s:
        assert s.scalar(select(Lease.annotator).where(Lease.clip_id == ids[0])) == bob


def test_a_save_over_a_newer_correction_waits_for_a_choice_and_a_new_tab_gets_its_clip(pg_project_ids):
    from dataclasses import replace

    from earmark.errors import CorrectedMeanwhile
    from earmark.review.workflow import holder_id, next_clip, save_correction

    project, ids = pg_project_ids
    ada, bob = holder_id("ada", "s1"), holder_id("bob", "s2")
    a = next_clip(project, ada)
    with project.store.session() as s:  # ada's hold runs out; bob takes the clip and saves
        s.execute(update(Lease).values(expires_at=utcnow() - timedelta(seconds=1)))
    b = next_clip(project, bob)
    assert b.clip_id == a.clip_id
    save_correction(project, b, "bob's careful text", annotator="bob", seconds_spent=1.0, holder=bob)
    with pytest.raises(CorrectedMeanwhile, match="bob") as refused:
        save_correction(project, a, "ada's text", annotator="ada", seconds_spent=1.0)
    save_correction(project, replace(a, seen_correction_id=refused.value.newest_id), "ada's text",
                    annotator="ada", seconds_spent=1.0)  # replaced on purpose
    with project.store.session() as s:
        texts = s.scalars(select(Correction.text).where(Correction.clip_id == a.clip_id)
                          .order_by(Correction.id)).all()
    assert texts == ["bob's careful text", "ada's text"]  # both kept, the chosen one newest

    mine = next_clip(project, holder_id("cy", "tab1"))
    assert next_clip(project, holder_id("cy", "tab2")).clip_id == mine.clip_id  # a reload's new session


def test_all_clips_held_gives_pool_exhausted(pg_project_ids):
    from earmark.review.workflow import holder_id, next_clip

    project, ids = pg_project_ids
    got = {next_clip(project, holder_id(f"a{i}", "s")).clip_id for i in range(len(ids))}
    assert got == set(ids)
    with pytest.raises(PoolExhausted, match="open in other annotators"):
        next_clip(project, holder_id("late", "s"))


def test_concurrent_annotators_each_clip_once(tmp_path, fresh_url):
    """Eight sessions in threads race through 40 clips: no clip is held by two, none is
    corrected twice, none is missed (the conditional upsert decides on the server)."""
    from earmark.config import ProjectConfig
    from earmark.store.project import init_project, open_project
    from earmark.review.workflow import holder_id, next_clip, save_correction

    project = init_project(tmp_path / "proj", ProjectConfig(database_url=fresh_url))
    ids = _clips(project.store, 40)
    _queue(project.store, ids)
    project.store.dispose()

    n = 8
    start = threading.Barrier(n)
    done: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def annotate(name: str) -> None:
        mine = open_project(tmp_path / "proj")  # its own engine, as a second app process has
        holder = holder_id(name, "tab")
        got: list[int] = []
        try:
            start.wait()
            while True:
                try:
                    item = next_clip(mine, holder)
                except PoolExhausted:
                    break
                with mine.store.session() as s:  # nobody else holds it right now
                    holders = s.scalars(select(Lease.annotator)
                                        .where(Lease.clip_id == item.clip_id)).all()
                assert holders == [holder]
                got.append(item.clip_id)
                save_correction(mine, item, f"text {item.clip_id}", annotator=name,
                                seconds_spent=1.0, holder=holder)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            done[name] = got
            mine.store.dispose()

    threads = [threading.Thread(target=annotate, args=(f"ann{i}",)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert all(not t.is_alive() for t in threads)

    handed = [c for got in done.values() for c in got]
    assert sorted(handed) == sorted(ids)  # each clip handed out exactly once
    check = Store(fresh_url)
    try:
        with check.session() as s:
            per_clip = s.execute(select(Correction.clip_id, func.count())
                                 .group_by(Correction.clip_id)).all()
            rounds = s.scalar(select(func.count()).select_from(Round))
        assert sorted(c for c, _ in per_clip) == sorted(ids)
        assert all(k == 1 for _, k in per_clip)
        assert rounds == 1  # concurrent first saves opened one round, not several
    finally:
        check.dispose()



def test_a_round_opened_between_two_reads_is_joined(tmp_path, fresh_url):
    """Save B pauses after its first read of the rounds table while save A opens the
    round and commits; B must then join that round, not open a second one."""
    from sqlalchemy import event

    from earmark.config import ProjectConfig
    from earmark.store.project import init_project, open_project
    from earmark.review.workflow import holder_id, next_clip, save_correction

    project = init_project(tmp_path / "proj", ProjectConfig(database_url=fresh_url))
    _queue(project.store, _clips(project.store, 2))
    other = open_project(tmp_path / "proj")  # a second app process
    try:
        ha, hb = holder_id("ada", "1"), holder_id("bob", "2")
        item_a, item_b = next_clip(project, ha), next_clip(other, hb)
        paused, resume = threading.Event(), threading.Event()

        def pause_once(conn, cursor, statement, *args):
            if "FROM rounds" in statement and not paused.is_set():
                paused.set()
                resume.wait(30)

        event.listen(other.store.engine, "after_cursor_execute", pause_once)
        errors: list[BaseException] = []

        def save_b():
            try:
                save_correction(other, item_b, "bob's text", annotator="bob",
                                seconds_spent=1.0, holder=hb)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        thread = threading.Thread(target=save_b)
        thread.start()
        try:
            assert paused.wait(30)
            save_correction(project, item_a, "ada's text", annotator="ada",
                            seconds_spent=1.0, holder=ha)
        finally:
            resume.set()
            thread.join(30)
        assert not errors, errors
        with project.store.session() as s:
            rows = s.execute(select(Round.number, func.count(Correction.id))
                             .join(Correction, Correction.round_id == Round.id)
                             .group_by(Round.number).order_by(Round.number)).all()
        assert rows == [(1, 2)]
    finally:
        other.store.dispose()
        project.store.dispose()
