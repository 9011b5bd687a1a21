"""``earmark restore`` copies the schema-2 columns of a correction (its word diff, the
seconds listening and editing, whether the marks were shown) back with its text, from a
file or into a snapshot of either schema."""

from __future__ import annotations

import gc
import sqlite3
from contextlib import closing

from sqlalchemy import select

from earmark.review import workflow as review
from earmark.store import backup
from earmark.store.db import SCHEMA_VERSION, V2_CORRECTION_COLUMNS, Correction
from earmark.store.project import open_project

from _support import damage


def save(project, clip_id: int, text: str, listen: float) -> int:
    return review.save_correction(project, review.open_clip(project, clip_id), text, annotator="ada",
                                  seconds_spent=5.0, work=review.Work(listen_seconds=listen, edit_seconds=1.5,
                                                                      marks_shown=False))


def to_schema_1(db) -> None:
    """Make the file what the release before schema 2 wrote."""
    with closing(sqlite3.connect(db)) as conn, conn:
        for col in V2_CORRECTION_COLUMNS:
            conn.execute(f"ALTER TABLE corrections DROP COLUMN {col}")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")


def restore(project) -> backup.Restored:
    # a connection of the saves above lingers in a reference cycle until collected (an
    # ended process holds none); restore would take it for another process's
    gc.collect()
    return backup.restore(project.root)


def rows(project) -> dict[int, Correction]:
    with project.store.session() as s:
        return {c.clip_id: c for c in s.scalars(select(Correction))}


def test_restore_copies_the_diff_and_the_seconds_of_later_corrections(handmade):
    save(handmade, 1, "hello there world1", listen=2.0)  # the first save takes a snapshot
    save(handmade, 2, "hello world2 again", listen=3.0)
    damage(handmade, "sources")
    assert restore(handmade).salvaged == 1
    got = rows(open_project(handmade.root))[2]
    assert got.text == "hello world2 again" and got.word_diff["inserted"] == 1
    assert (got.listen_seconds, got.edit_seconds, got.marks_shown) == (3.0, 1.5, False)


def test_a_snapshot_of_schema_1_gets_the_columns_and_the_values(handmade):
    save(handmade, 1, "hello there world1", listen=2.0)
    (snap,) = backup.snapshots(handmade.root)
    to_schema_1(snap.path)
    save(handmade, 2, "hello world2 again", listen=3.0)
    damage(handmade, "sources")
    assert restore(handmade).salvaged == 1
    project = open_project(handmade.root)  # opening migrates the snapshot to schema 2
    got = rows(project)
    assert got[1].text == "hello there world1" and got[1].word_diff is None  # the snapshot's own row
    assert got[2].listen_seconds == 3.0 and got[2].word_diff["inserted"] == 1
    with closing(sqlite3.connect(handmade.root / "earmark.db")) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),)


def test_a_replaced_file_of_schema_1_gives_its_corrections_with_the_new_columns_empty(handmade):
    save(handmade, 1, "hello there world1", listen=2.0)
    save(handmade, 2, "hello world2 again", listen=3.0)
    handmade.store.dispose()
    to_schema_1(handmade.root / "earmark.db")
    damage(handmade, "sources")
    assert restore(handmade).salvaged == 1
    got = rows(open_project(handmade.root))[2]
    assert got.text == "hello world2 again" and got.word_diff is None and got.listen_seconds is None
