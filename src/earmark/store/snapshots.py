"""The snapshots of a project's SQLite database in ``PROJECT/backups``: listing them,
reading what each holds, and the advice a damaged database's error gives.

Apart from :mod:`earmark.store.backup` (taking and restoring them) so that the project,
which words that advice, needs nothing of the backup machinery.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from earmark.store.db import DEFAULT_RECOVERY, quick_check

BACKUP_DIR = "backups"
SNAPSHOT_PREFIX = "earmark-"
SNAPSHOT_STAMP = "%Y%m%d-%H%M%S"  # UTC; a snapshot's name adds milliseconds, so names sort by time
@dataclass(frozen=True)
class Snapshot:
    """One kept copy of the database."""

    path: Path
    taken_at: datetime  # UTC, to the millisecond
    reason: str  # what it was taken before: import, rank, finetune, round, review, backup

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Contents:
    """What a database file holds, as far as it can be read."""

    problem: str  # why it cannot be used ("" when it passes SQLite's check)
    clips: int = 0
    corrected: int = 0  # clips whose newest saved row is a text (as `earmark status` counts)
    flagged: int = 0  # clips whose newest saved row is a flag
    last_correction_id: int = 0

    @property
    def readable(self) -> bool:
        return not self.problem


def backup_dir(root: Path | str) -> Path:
    """``PROJECT/backups``."""
    return Path(root) / BACKUP_DIR


def snapshots(root: Path | str) -> list[Snapshot]:
    """The project's snapshots, newest first (files of other names in the folder are ignored)."""
    found = []
    for path in backup_dir(root).glob(f"{SNAPSHOT_PREFIX}*.db"):
        stamp, _, rest = path.stem.removeprefix(SNAPSHOT_PREFIX).partition("_")
        try:
            taken = datetime.strptime(stamp, f"{SNAPSHOT_STAMP}.%f").replace(tzinfo=timezone.utc)
        except ValueError:
            continue
        found.append(Snapshot(path=path, taken_at=taken, reason=rest.split(".")[0] or "?"))
    return sorted(found, key=lambda s: (s.taken_at, s.path.name), reverse=True)


def contents(db: Path) -> Contents:
    """Check a database file and count its clips and corrections; never raises."""
    if not db.is_file():
        return Contents(problem="the file is missing")
    if db.stat().st_size == 0:
        return Contents(problem="the file is empty (0 bytes)")
    try:
        with closing(sqlite3.connect(db, timeout=30)) as conn:
            problem = quick_check(conn)
            if problem:
                return Contents(problem=problem)
            clips = conn.execute("SELECT count(*) FROM clips").fetchone()[0]
            corrected, flagged = conn.execute(
                "SELECT coalesce(sum(flag IS NULL), 0), coalesce(sum(flag IS NOT NULL), 0) FROM corrections "
                "WHERE id IN (SELECT max(id) FROM corrections GROUP BY clip_id)").fetchone()
            last = conn.execute("SELECT coalesce(max(id), 0) FROM corrections").fetchone()[0]
    except sqlite3.Error as exc:
        return Contents(problem=str(exc))
    return Contents(problem="", clips=clips, corrected=corrected, flagged=flagged, last_correction_id=last)


def describe(snapshot: Snapshot, held: Contents | None = None) -> str:
    """``earmark-…db (before rank, 2026-12-06 22:30 UTC: 1,250 clips, 148 corrected)``;
    ``held``: its :func:`contents`, when already read."""
    c = held or contents(snapshot.path)
    held = (f"{c.clips:,} clips, {c.corrected:,} corrected"
            + (f", {c.flagged:,} flagged" if c.flagged else "") if c.readable
            else f"damaged: {c.problem}")
    return f"{snapshot.name} (before {snapshot.reason}, {snapshot.taken_at:%Y-%m-%d %H:%M} UTC: {held})"


def advice(root: Path | str) -> str:
    """What to do about a damaged database: restore the newest snapshot, if there is one."""
    root = Path(root)
    good = newest_sound(snapshots(root))
    if good is None:
        return f"{DEFAULT_RECOVERY} (there is no snapshot in {backup_dir(root)})"
    return (f"stop the review app and run `earmark restore {root}`: it puts back the newest "
            f"snapshot, {describe(*good)}, keeps the damaged file, and copies back every "
            "correction saved since that can still be read")


def newest_sound(found: list[Snapshot]) -> tuple[Snapshot, Contents] | None:
    """The newest of ``found`` that passes SQLite's check, with its contents (the older
    ones are not read)."""
    for snap in found:
        held = contents(snap.path)
        if held.readable:
            return snap, held
    return None
