"""Snapshots of the project database, damage found in any query, and restoring a snapshot.

The damage here is real: bytes of one table's pages are overwritten in the SQLite file,
as a failing disk or a copy taken mid-write leaves them.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from dataclasses import replace

import pytest

from earmark.store import backup

from earmark.review import workflow as review
from earmark.cli.main import main
from earmark.config import BackupConfig
from earmark.errors import CorruptDatabase, EarmarkError
from earmark.store.project import open_project
from earmark.review.reports import status

from _support import damage


def save(project, clip_id: int, text: str) -> int:
    return review.save_correction(project, review.open_clip(project, clip_id), text,
                                  annotator="ada", seconds_spent=2.0)


def test_a_snapshot_is_checked_kept_and_not_repeated_while_nothing_changes(handmade):
    first = backup.take(handmade, "rank")
    assert first is not None and first.reason == "rank" and first.path.parent == handmade.root / "backups"
    held = backup.contents(first.path)
    assert (held.readable, held.clips, held.corrected) == (True, 3, 0)
    assert backup.take(handmade, "rank") is None  # the same bytes: nothing new to keep
    killed = first.path.with_name(".taking-killed.db")  # left by a process killed mid-copy
    killed.write_bytes(b"half a copy")
    os.utime(killed, (0, 0))
    save(handmade, 1, "first text")
    second = backup.take(handmade, "finetune")
    assert second is not None and backup.contents(second.path).corrected == 1
    assert [s.name for s in backup.snapshots(handmade.root)] == [second.name, first.name]
    assert not killed.exists()
    # only the newest `keep` stay
    kept_two = replace(handmade, config=replace(handmade.config, backup=BackupConfig(keep=1)))
    save(handmade, 2, "second text")
    third = backup.take(kept_two, "round")
    assert [s.name for s in backup.snapshots(handmade.root)] == [third.name]


def test_saving_in_the_review_app_takes_a_snapshot_when_one_is_due(handmade):
    save(handmade, 1, "first text")
    taken = backup.snapshots(handmade.root)
    assert [s.reason for s in taken] == ["review"]  # none existed: due at once
    assert backup.contents(taken[0].path).corrected == 1  # taken after the save
    save(handmade, 2, "second text")
    assert backup.snapshots(handmade.root) == taken  # the next is due in review_minutes
    every_save = replace(handmade, config=replace(handmade.config, backup=BackupConfig(review_minutes=0)))
    save(every_save, 3, "third text")
    assert backup.contents(backup.snapshots(handmade.root)[0].path).corrected == 3


def test_a_damaged_page_met_by_any_query_names_the_snapshot_to_restore(handmade):
    taken = backup.take(handmade, "rank")
    damage(handmade, "clips")
    project = open_project(handmade.root)  # the schema pages are sound, so it opens
    with pytest.raises(CorruptDatabase, match=rf"damaged .*earmark restore {project.root}.*{taken.name}"):
        status(project)


def test_a_damaged_stored_json_value_is_a_corrupt_database_error(handmade):
    backup.take(handmade, "rank")
    with sqlite3.connect(handmade.root / "earmark.db") as conn:
        conn.execute("UPDATE transcripts SET words = '[{\"word\": \x01' WHERE clip_id = 1")
    with pytest.raises(CorruptDatabase, match="a stored JSON value cannot be read.*earmark restore"):
        review.open_clip(handmade, 1)


def test_a_stored_text_that_is_not_utf8_is_damage_and_no_snapshot_copies_it(handmade, capsys):
    """SQLite's own check passes a changed byte inside a text; every read of that row
    then fails in Python's sqlite3, so earmark looks at the bytes itself."""
    save(handmade, 1, "before the damage")
    (good,) = backup.snapshots(handmade.root)
    handmade.store.dispose()
    with closing(sqlite3.connect(handmade.root / "earmark.db")) as conn, conn:
        conn.execute("UPDATE clips SET speaker = CAST(X'ff616461' AS TEXT) WHERE id = 2")
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    project = open_project(handmade.root)
    with pytest.raises(CorruptDatabase, match=r"a stored speaker is not UTF-8 text.*earmark restore"):
        review.open_clip(project, 2)
    with pytest.raises(CorruptDatabase, match="row 2 of table clips holds a speaker that is not UTF-8"):
        backup.take(project, "rank")
    assert backup.snapshots(handmade.root) == [good]  # the damage was not kept as the newest
    project.store.dispose()
    assert main(["restore", str(handmade.root)]) == 0  # no --force: it is seen as damaged
    assert f"restored {good.name}" in capsys.readouterr().out
    assert status(open_project(handmade.root)).corrected == 1


def test_a_command_that_writes_stops_on_a_damaged_database_and_keeps_the_good_snapshot(handmade, capsys):
    assert main(["backup", str(handmade.root)]) == 0
    assert "took snapshot earmark-" in capsys.readouterr().out
    good = backup.snapshots(handmade.root)
    damage(handmade, "clips")
    assert main(["rank", str(handmade.root)]) == 2
    err = capsys.readouterr().err
    assert "the project database is damaged" in err and "nothing was changed" in err
    assert f"earmark restore {handmade.root}" in err
    assert backup.snapshots(handmade.root) == good  # the damaged copy was not kept


def test_restore_puts_the_newest_snapshot_back_and_copies_later_corrections_over(handmade, capsys):
    save(handmade, 1, "before the snapshot")  # the first save takes a snapshot
    (snap,) = backup.snapshots(handmade.root)
    later = save(handmade, 2, "typed after the snapshot")  # the next is not due yet
    save(handmade, 3, "typed last")
    damage(handmade, "sources")  # corrections' own pages are intact
    app = open_project(handmade.root)  # as the review app would still hold it
    with pytest.raises(CorruptDatabase):
        status(app)
    with pytest.raises(EarmarkError, match="another process has the database open .*stop it first"):
        backup.restore(handmade.root)
    app.store.dispose()

    assert main(["restore", str(handmade.root)]) == 0
    out = capsys.readouterr().out
    assert f"restored {snap.name}" in out and "copied back: 2" in out
    project = open_project(handmade.root)
    texts = {c.clip_id: c.text for c in project.store.latest_corrections()}
    assert texts == {1: "before the snapshot", 2: "typed after the snapshot", 3: "typed last"}
    assert max(c.id for c in project.store.latest_corrections()) > later  # ids kept as saved
    assert status(project).corrected == 3
    kept = [p for p in (handmade.root / "backups").glob("replaced-*/earmark.db")]
    assert len(kept) == 1 and not backup.contents(kept[0]).readable  # the damaged file, untouched


def test_restore_refuses_a_sound_database_unless_forced_and_keeps_what_it_replaces(handmade):
    snap = backup.take(handmade, "rank")
    save(handmade, 1, "kept text")
    handmade.store.dispose()
    with pytest.raises(EarmarkError, match="reads fine .*--force"):
        backup.restore(handmade.root)
    with pytest.raises(EarmarkError, match="no snapshot named 'nope'.*" + snap.name):
        backup.restore(handmade.root, "nope")
    done = backup.restore(handmade.root, snap.name, force=True)
    assert (done.snapshot, done.salvaged, done.unrestored) == (snap, 1, 0)
    assert backup.contents(done.kept / "earmark.db").corrected == 1
    assert [c.text for c in open_project(handmade.root).store.latest_corrections()] == ["kept text"]


def test_an_emptied_database_file_is_restored_from_the_snapshot(handmade):
    snap = backup.take(handmade, "rank")
    handmade.store.dispose()
    for part in ("earmark.db-wal", "earmark.db-shm"):
        (handmade.root / part).unlink(missing_ok=True)
    (handmade.root / "earmark.db").write_bytes(b"")
    with pytest.raises(CorruptDatabase, match=f"is empty .*earmark restore .*{snap.name}"):
        open_project(handmade.root)
    done = backup.restore(handmade.root)
    assert (done.snapshot, done.salvaged, done.salvage_problem) == (snap, 0, "")
    assert status(open_project(handmade.root)).clips == 3


def test_a_clip_unknown_to_the_snapshot_keeps_its_correction_in_a_file(handmade):
    snap = backup.take(handmade, "import")
    with sqlite3.connect(snap.path) as conn:  # as if clip 3 had been imported after it
        conn.execute("DELETE FROM queue WHERE clip_id = 3")
        conn.execute("DELETE FROM transcripts WHERE clip_id = 3")
        conn.execute("DELETE FROM clips WHERE id = 3")
    save(handmade, 3, "text of a newer clip")
    handmade.store.dispose()
    done = backup.restore(handmade.root, force=True)
    assert (done.salvaged, done.unrestored) == (0, 1)
    (entry,) = [json.loads(line) for line in (done.kept / backup.UNRESTORED_FILE).read_text().splitlines()]
    assert entry["text"] == "text of a newer clip" and entry["source_path"].endswith("s17.wav")


def test_backup_lists_the_snapshots_and_restore_without_any_says_how_to_get_one(handmade, capsys):
    handmade.store.dispose()
    with pytest.raises(EarmarkError, match="no snapshot to restore.*`earmark backup`"):
        backup.restore(handmade.root)
    assert main(["status", str(handmade.root)]) == 0
    assert "snapshots    0 in " in capsys.readouterr().out
    assert main(["backup", str(handmade.root)]) == 0
    assert main(["backup", str(handmade.root)]) == 0
    out = capsys.readouterr().out
    assert "unchanged since the newest snapshot" in out
    assert "1 snapshot in" in out and "(before backup, " in out and "3 clips, 0 corrected" in out
    assert main(["status", str(handmade.root)]) == 0
    assert f"snapshots    1 in {handmade.root / 'backups'}, newest before backup at " in capsys.readouterr().out


def test_a_snapshot_that_cannot_be_written_says_so_and_a_save_still_counts(handmade):
    (handmade.root / "backups").write_text("a file where the folder should be")
    with pytest.raises(EarmarkError, match="backups: cannot take a snapshot .*backup.keep to 0"):
        backup.take(handmade, "rank")
    with pytest.raises(EarmarkError, match="^your work was saved, but .*cannot take a snapshot"):
        save(handmade, 1, "typed text")
    assert [c.text for c in handmade.store.latest_corrections()] == ["typed text"]
    off = replace(handmade, config=replace(handmade.config, backup=BackupConfig(keep=0)))
    assert backup.take(off, "rank") is None


def test_a_damaged_snapshot_named_for_restore_is_refused_and_changes_nothing(handmade):
    good = backup.take(handmade, "import")
    save(handmade, 1, "after the first snapshot")
    bad = backup.take(handmade, "rank")
    handmade.store.dispose()
    with open(bad.path, "r+b") as f:  # the snapshot itself damaged, after its check
        f.seek(4096)
        f.write(b"\xff" * 8192)
    before = (handmade.root / "earmark.db").read_bytes()
    for force in (False, True):
        with pytest.raises(CorruptDatabase, match=f"{bad.name}: this snapshot is damaged .*nothing was "
                                                  f"changed. Choose a sound one: {good.name}"):
            backup.restore(handmade.root, bad.name, force=force)
    assert (handmade.root / "earmark.db").read_bytes() == before
    assert not list((handmade.root / "backups").glob("replaced-*"))


def test_with_no_snapshot_a_damaged_database_gets_advice_that_works(handmade):
    handmade.store.dispose()
    for part in ("earmark.db-wal", "earmark.db-shm"):
        (handmade.root / part).unlink(missing_ok=True)
    (handmade.root / "earmark.db").write_bytes(b"")
    with pytest.raises(CorruptDatabase, match="start the project again: move its folder aside, then "
                                              "`earmark init` a new one .*there is no snapshot in"):
        open_project(handmade.root)


def test_a_deleted_database_is_restored_without_an_empty_folder_for_it(handmade, capsys):
    snap = backup.take(handmade, "rank")
    handmade.store.dispose()
    for part in ("earmark.db", "earmark.db-wal", "earmark.db-shm"):
        (handmade.root / part).unlink(missing_ok=True)
    assert main(["restore", str(handmade.root)]) == 0
    out = capsys.readouterr().out
    assert f"restored {snap.name}" in out and "no database file to keep (it was gone)" in out
    assert not list((handmade.root / "backups").glob("replaced-*"))
    assert status(open_project(handmade.root)).clips == 3


def test_a_database_whose_header_alone_is_overwritten_gives_back_its_corrections(handmade, capsys):
    """A few bytes over the file's start make SQLite refuse every page, though all are intact."""
    save(handmade, 1, "before the snapshot")
    save(handmade, 2, "typed after the snapshot")
    save(handmade, 3, "typed last")
    handmade.store.dispose()
    db = handmade.root / "earmark.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(db, "r+b") as f:
        f.write(b"\xff" * 21)  # magic string, page size, format versions
    with pytest.raises(CorruptDatabase):
        status(open_project(handmade.root))

    assert main(["restore", str(handmade.root)]) == 0
    assert "copied back: 2" in capsys.readouterr().out
    project = open_project(handmade.root)
    assert {c.clip_id: c.text for c in project.store.latest_corrections()} == {
        1: "before the snapshot", 2: "typed after the snapshot", 3: "typed last"}
    (kept,) = (handmade.root / "backups").glob("replaced-*")
    assert sorted(p.name for p in kept.iterdir() if p.name.startswith(".mended")) == []
    with open(kept / "earmark.db", "rb") as f:
        assert f.read(21) == b"\xff" * 21  # the file as it was found



def test_a_snapshot_counts_corrected_and_flagged_clips_as_status_does(handmade):
    save(handmade, 1, "a text")
    review.flag(handmade, review.open_clip(handmade, 2), "no speech", annotator="ada", seconds_spent=1.0)
    save(handmade, 3, "typed, then flagged")
    review.flag(handmade, review.open_clip(handmade, 3), "wrong language", annotator="ada", seconds_spent=1.0)
    taken = backup.take(handmade, "backup")
    held = backup.contents(taken.path)
    assert (held.corrected, held.flagged) == (status(handmade).corrected, status(handmade).flagged) == (1, 2)
    assert "3 clips, 1 corrected, 2 flagged" in backup.describe(taken)
