"""Snapshots of a project's SQLite database, and putting one back.

The corrections in the database are hours of people's work and exist nowhere else.
Before every command that writes much (``import``, ``rank``, ``finetune``, ``round``), at
the start of ``review`` and every few minutes while annotators save, a copy is taken with
SQLite's online backup, which reads one consistent state while others go on writing.
The copy is checked before it is kept, so a damaged file is found before a command adds
to it and never pushes a good snapshot out. The newest few are kept in
``PROJECT/backups``; an unchanged database adds none.

:func:`restore` puts a snapshot back. The file it replaces is kept, and the corrections
saved after the snapshot are copied over from it wherever they can still be read, so a
damaged database loses at most what its damaged pages held.

A project on a database server (PostgreSQL) is backed up with the server's own tools;
every function here leaves such a project alone.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import uuid
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from earmark.errors import BadConfig, CorruptDatabase, EarmarkError
from earmark.store.db import V2_CORRECTION_COLUMNS, damage_error, damage_found, is_damage, quick_check
from earmark.store.project import Project, database_file, load_config
from earmark.store.snapshots import (SNAPSHOT_PREFIX, SNAPSHOT_STAMP, Contents, Snapshot, advice, backup_dir,
                                     contents, describe, newest_sound, snapshots)

#: where a replaced database is kept, and what could not be copied back from it
UNRESTORED_FILE = "unrestored_corrections.jsonl"
_CORRECTION_COLUMNS = ("id", "clip_id", "text", "flag", "note", "annotator", "seconds_spent",
                       "transcript_id", "hypothesis", "round_id", "created_at", *V2_CORRECTION_COLUMNS)


@dataclass(frozen=True)
class Restored:
    """What :func:`restore` did."""

    snapshot: Snapshot
    held: Contents  # what the snapshot held
    kept: Path  # the folder that now holds the replaced database file(s); absent when it was gone
    salvaged: int  # corrections saved after the snapshot, copied back from the replaced file
    unrestored: int  # corrections of clips the snapshot does not know (written to a JSONL file)
    salvage_problem: str  # why the replaced file could not be read to the end ("" if it could)


def _unique_path(folder: Path, reason: str, now: datetime) -> Path:
    base = f"{SNAPSHOT_PREFIX}{now:{SNAPSHOT_STAMP}}.{now.microsecond // 1000:03d}_{reason}"
    path, n = folder / f"{base}.db", 1
    while path.exists():  # two snapshots in one millisecond (two annotators saving at once)
        n += 1
        path = folder / f"{base}.{n}.db"
    return path


def _same_bytes(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            chunk = fa.read(1 << 20)
            if chunk != fb.read(1 << 20):
                return False
            if not chunk:
                return True


def _remove_stale(folder: Path, hours: float = 1.0) -> None:
    """Delete the half-written copies of a process killed while it took a snapshot (old
    enough that no running one is still writing them)."""
    cutoff = datetime.now(timezone.utc).timestamp() - hours * 3600
    for part in folder.glob(".taking-*.db*"):
        if part.stat().st_mtime < cutoff:
            part.unlink(missing_ok=True)


def take(project: Project, reason: str) -> Snapshot | None:
    """Copy the database into ``PROJECT/backups`` and drop the oldest beyond ``backup.keep``.

    Returns
    -------
    Snapshot or None
        None when there is nothing to do: a database server, ``keep`` 0, or a database
        unchanged since the newest snapshot.

    Raises
    ------
    CorruptDatabase
        The database fails SQLite's check. Nothing is kept then, so every good snapshot
        stays; the message says how to restore one.
    EarmarkError
        The copy cannot be written (a full disk, a read-only folder).
    """
    keep = project.config.backup.keep
    db = database_file(project.root, project.config)
    if db is None or keep <= 0 or not db.is_file():
        return None
    folder = backup_dir(project.root)
    tmp = folder / f".taking-{uuid.uuid4().hex}.db"

    def damaged(problem: object) -> CorruptDatabase:
        return damage_error(db, problem, f"nothing was changed; {advice(project.root)}")

    try:
        folder.mkdir(exist_ok=True)
        _remove_stale(folder)
        with closing(sqlite3.connect(db, timeout=30)) as src, closing(sqlite3.connect(tmp)) as dst:
            src.backup(dst)
            # a snapshot in rollback-journal mode opens without -wal/-shm files beside it
            dst.execute("PRAGMA journal_mode=DELETE")
            problem = quick_check(dst)
        if problem:
            raise damaged(problem)
        newest = snapshots(project.root)
        if newest and _same_bytes(newest[0].path, tmp):
            return None
        now = datetime.now(timezone.utc)
        path = _unique_path(folder, reason, now)
        os.replace(tmp, path)
    except (sqlite3.Error, OSError) as exc:
        if is_damage(exc):
            raise damaged(damage_found(exc)) from exc
        raise EarmarkError(f"{folder}: cannot take a snapshot of {db} ({exc}); free some disk space "
                           "if it is full, or set backup.keep to 0 in earmark.json to take "
                           "none") from exc
    finally:
        if folder.is_dir():
            tmp.unlink(missing_ok=True)
    for old in snapshots(project.root)[keep:]:
        old.path.unlink(missing_ok=True)
    return Snapshot(path=path, taken_at=now.replace(microsecond=now.microsecond // 1000 * 1000),
                    reason=reason)


def take_if_due(project: Project, reason: str) -> Snapshot | None:
    """:func:`take`, when the newest snapshot is older than ``backup.review_minutes``."""
    newest = snapshots(project.root)
    due = datetime.now(timezone.utc) - timedelta(minutes=project.config.backup.review_minutes)
    if newest and newest[0].taken_at > due:
        return None
    return take(project, reason)


def _choose(root: Path, name: str | None) -> tuple[Snapshot, Contents]:
    found = snapshots(root)
    if not found:
        raise EarmarkError(f"{backup_dir(root)}: no snapshot to restore; earmark takes one before "
                           "import, rank, finetune, round and review, and `earmark backup` takes one now")
    if name is not None:
        for s in found:
            if name in (s.name, s.path.stem):
                held = contents(s.path)
                if not held.readable:  # putting it back would leave the project broken again
                    sound = [x.name for x in found if x is not s and contents(x.path).readable]
                    raise CorruptDatabase(
                        f"{s.path}: this snapshot is damaged ({held.problem}); nothing was changed. "
                        + (f"Choose a sound one: {', '.join(sound)}" if sound else
                           "No other snapshot is sound; restore from a backup of your own"))
                return s, held
        raise EarmarkError(f"{backup_dir(root)}: no snapshot named {name!r}; the snapshots are: "
                           + ", ".join(s.name for s in found))
    good = newest_sound(found)
    if good is not None:
        return good
    raise CorruptDatabase(f"{backup_dir(root)}: every snapshot is damaged; restore the database "
                          "from a backup of your own")


def _read_newer(db: Path, after_id: int, clips: set[int], *,
                read_only: bool = True) -> tuple[list[tuple], dict[int, tuple], str]:
    """Corrections with an id above ``after_id`` in ``db``, as far as it reads.

    Returns the rows, the source path and offset of the clips among them that are not in
    ``clips``, and why the read stopped early ("" if it did not).
    """
    col = {c: i for i, c in enumerate(_CORRECTION_COLUMNS)}
    rows: list[tuple] = []
    places: dict[int, tuple] = {}
    uri = f"file:{db}?mode=ro" if read_only else f"file:{db}"
    try:
        with closing(sqlite3.connect(uri, uri=True, timeout=30)) as conn:
            # a file of an older schema lacks the newer columns: they are read as empty
            have = _columns(conn)
            picked = ", ".join(c if c in have else f"NULL AS {c}" for c in _CORRECTION_COLUMNS)
            cursor = conn.execute(f"SELECT {picked} FROM corrections WHERE id > ? ORDER BY id", (after_id,))
            for row in cursor:  # row by row: a damaged page ends the read, not what came before
                rows.append(row)
            lacking = sorted({r[col["clip_id"]] for r in rows} - clips)
            try:
                places = {r[0]: r[1:] for r in conn.execute(
                    "SELECT c.id, s.path, c.offset FROM clips c JOIN sources s ON s.id = c.source_id "
                    f"WHERE c.id IN ({', '.join('?' * len(lacking))})", lacking)} if lacking else {}
            except sqlite3.Error:
                pass  # the unrestored rows are written without their source path then
    except sqlite3.Error as exc:
        return rows, places, str(exc)
    return rows, places, ""


_SQLITE_MAGIC = b"SQLite format 3\x00"
_HEADER_SIZE = 100


def mended_header(good: bytes, file_size: int, wal: bool) -> bytes:
    """A whole 100-byte SQLite header for a file whose own header is overwritten.

    Parameters
    ----------
    good
        The header of a sound copy of the same database (a snapshot): it gives the page
        size, the text encoding and the schema format, which never change.
    file_size
        Bytes of the damaged file: its page count is computed from it.
    wal
        Read the file as a WAL database (its newest pages may be only in the -wal file).

    Notes
    -----
    Every field that describes the file's state rather than its format is made neutral:
    the page count is the file's size over the page size (and its "valid for" counter is
    made to disagree, so SQLite counts the pages of the file itself), the free-page list is
    emptied (a stale one would send a read after pages it does not own). That is enough
    to read every intact page.
    """
    head = bytearray(good[:_HEADER_SIZE])
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size  # 1 stands for 65536
    if wal:
        head[18:20] = b"\x02\x02"
    head[28:32] = (file_size // page_size).to_bytes(4, "big")
    head[32:40] = bytes(8)  # no free pages: the list of the snapshot's file is not this file's
    change = int.from_bytes(head[24:28], "big")
    head[92:96] = ((change + 1) & 0xFFFFFFFF).to_bytes(4, "big")  # the page count is not trusted
    return bytes(head)


def _read_with_mended_header(damaged: Path, snapshot: Path, after_id: int, clips: set[int],
                             kept: Path) -> tuple[list[tuple], dict[int, tuple], str] | None:
    """Read a file whose header alone is overwritten, from a copy given a mended header.

    Bytes written over the start of the file (up to its whole 100-byte header) make
    SQLite refuse all of it ("file is not a database") though every page is intact; the
    snapshot of the same database gives the fields that never change, and the rest is
    rebuilt by :func:`mended_header`. The copy is removed afterwards: ``kept`` keeps the
    file as it was found. None when the header is not what stops the read.
    """
    with damaged.open("rb") as f:
        head = f.read(_HEADER_SIZE)
    with snapshot.open("rb") as f:
        good = f.read(_HEADER_SIZE)
    if len(good) < _HEADER_SIZE or good[:16] != _SQLITE_MAGIC:
        return None
    if head == good:
        return None
    wal = damaged.with_name(damaged.name + "-wal")
    copy = kept / f".mended-{damaged.name}"
    try:
        shutil.copyfile(damaged, copy)
        if wal.is_file():
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        with copy.open("r+b") as f:
            f.write(mended_header(good, damaged.stat().st_size, wal.is_file()))
        return _read_newer(copy, after_id, clips, read_only=False)
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            copy.with_name(copy.name + suffix).unlink(missing_ok=True)


def _columns(conn: sqlite3.Connection) -> set[str]:
    return {row[1] for row in conn.execute("PRAGMA table_info(corrections)")}


def _salvage(damaged: Path, restored: Path, after_id: int, kept: Path,
             snapshot: Path) -> tuple[int, int, str]:
    """Copy the corrections newer than the snapshot from the replaced file into the restored one.

    Corrections are append-only, so every row with a higher id was saved after the
    snapshot. Rows of clips the snapshot does not know go to a JSONL file in ``kept``
    with their audio's source path, so that nobody's text is lost.
    """
    with closing(sqlite3.connect(restored, timeout=30)) as conn:
        clips, transcripts, rounds = ({r[0] for r in conn.execute(f"SELECT id FROM {table}")}
                                      for table in ("clips", "transcripts", "rounds"))
    col = {c: i for i, c in enumerate(_CORRECTION_COLUMNS)}
    rows, places, problem = _read_newer(damaged, after_id, clips)
    if problem and not rows:
        mended = _read_with_mended_header(damaged, snapshot, after_id, clips, kept)
        if mended is not None and (mended[0] or not mended[2]):
            rows, places, problem = mended
    known = [r for r in rows if r[col["clip_id"]] in clips]
    unknown = [r for r in rows if r[col["clip_id"]] not in clips]
    with closing(sqlite3.connect(restored, timeout=30)) as conn, conn:
        # a snapshot of an older schema gets the newer columns now (its next opening
        # migrates it and finds them there), so the rows keep all they hold
        have = _columns(conn)
        for name, kind in V2_CORRECTION_COLUMNS.items():
            if name not in have:
                conn.execute(f"ALTER TABLE corrections ADD COLUMN {name} {kind}")
        for r in known:
            r = list(r)  # links to rows the snapshot lacks are dropped, the text is kept
            if r[col["transcript_id"]] not in transcripts:
                r[col["transcript_id"]] = None
            if r[col["round_id"]] not in rounds:
                r[col["round_id"]] = None
            conn.execute(f"INSERT INTO corrections ({', '.join(_CORRECTION_COLUMNS)}) "
                         f"VALUES ({', '.join('?' * len(r))})", r)
    if unknown:
        with (kept / UNRESTORED_FILE).open("w") as out:
            for r in unknown:
                entry = dict(zip(_CORRECTION_COLUMNS, r))
                source, offset = places.get(entry["clip_id"], (None, None))
                entry.update(source_path=source, offset=offset)
                out.write(json.dumps(entry) + "\n")
    return len(known), len(unknown), problem


def _in_use(db: Path) -> bool:
    """True when another connection has the database open (the review app, a command).

    Every connection to a WAL database holds a shared lock for as long as it is open, so
    an exclusive lock is refused while any other is open, even an idle one. A file too
    damaged to lock is in use by nobody who could still write to it.
    """
    if not db.is_file() or db.stat().st_size == 0:
        return False
    try:
        with closing(sqlite3.connect(db, timeout=1)) as conn:
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            conn.execute("BEGIN EXCLUSIVE")
            conn.rollback()
    except sqlite3.DatabaseError as exc:
        return not is_damage(exc)
    return False


def restore(root: Path | str, name: str | None = None, *, force: bool = False) -> Restored:
    """Put a snapshot back in place of the project's database.

    Parameters
    ----------
    root
        The project folder; its database may be damaged, empty or gone.
    name
        The snapshot's file name; None: the newest that passes SQLite's check.
    force
        Restore over a database that reads fine (which sets its clips and transcripts
        back to the snapshot's; its corrections are still copied over).

    Raises
    ------
    EarmarkError
        No snapshot, an unknown name, a sound database without ``force``, or a database
        another process still has open (its writes would go to the replaced file).
    BadConfig
        The project's database is on a server.
    """
    root = Path(root)
    db = database_file(root, load_config(root))
    if db is None:
        raise BadConfig(f"{root}: the project's database is on a server; restore it with the "
                        "server's own tools (pg_restore), earmark keeps no snapshots of it")
    snap, held = _choose(root, name)
    current = contents(db)
    if current.readable and not force:
        raise EarmarkError(
            f"{db}: the database reads fine ({current.clips:,} clips, {current.corrected:,} "
            f"corrected); restoring {describe(snap, held)} would set clips, transcripts and the queue "
            "back to then. Pass --force to do it anyway (the current file is kept)")
    if _in_use(db):
        raise EarmarkError(f"{db}: another process has the database open (the review app, or "
                           "an earmark command); stop it first, since what it writes now would "
                           "go to the replaced file, then run the restore again")
    kept = backup_dir(root) / f"replaced-{datetime.now(timezone.utc):{SNAPSHOT_STAMP}}-{uuid.uuid4().hex[:6]}"
    kept.mkdir(parents=True)
    for suffix in ("", "-wal", "-shm"):  # the -wal file may hold the newest corrections
        part = db.with_name(db.name + suffix)
        if part.exists():
            shutil.move(part, kept / part.name)
    tmp = db.with_name(f".{db.name}.restoring")
    shutil.copyfile(snap.path, tmp)
    os.replace(tmp, db)
    if not any(kept.iterdir()):  # the file was gone: nothing to keep
        kept.rmdir()
    salvaged, unrestored, problem = 0, 0, ""
    replaced = kept / db.name
    if replaced.is_file() and replaced.stat().st_size > 0:  # an emptied file holds nothing
        salvaged, unrestored, problem = _salvage(replaced, db, held.last_correction_id, kept,
                                                 snap.path)
    return Restored(snapshot=snap, held=held, kept=kept, salvaged=salvaged, unrestored=unrestored,
                    salvage_problem=problem)
