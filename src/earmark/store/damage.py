"""Telling a damaged SQLite database from a locked or busy one, and saying so: what
SQLite's check found, which text cannot be decoded, and the error that names it."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.exc import DatabaseError, OperationalError

from earmark.errors import CorruptDatabase

# SQLite's primary result codes for a lock and for a damaged file; Python's sqlite3
# gives them as ``sqlite_errorcode`` (extended codes keep the primary one in the low byte)
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CORRUPT, _SQLITE_NOTADB = 5, 6, 11, 26


def is_damage(exc: BaseException) -> bool:
    """True when a database error means the SQLite file itself is damaged.

    Locks, full disks and constraint violations are not damage: a retry or a fix of the
    input helps there, and restoring a snapshot would only lose work.
    """
    orig = getattr(exc, "orig", exc)
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return True
    # a changed byte inside a stored text passes SQLite's own check; Python's sqlite3
    # then fails to read the row, and only its message says why
    return _UNDECODABLE in str(orig)


#: how Python's sqlite3 says a stored text is not UTF-8
_UNDECODABLE = "Could not decode to UTF-8"


def damage_found(exc: BaseException) -> str:
    """What a damage error found, in a line: sqlite3 quotes the whole undecodable text,
    which may be long and hold control bytes, so only its column is named then."""
    orig = getattr(exc, "orig", exc)
    text = str(orig)
    if _UNDECODABLE in text:
        column = re.search(r"column '([^']*)'", text)
        return f"a stored {column.group(1) if column else 'text'} is not UTF-8 text"
    return text


def quick_check(conn: Any) -> str:
    """SQLite's quick check on a DB-API connection: "" when the file is sound, else its
    first complaints on one line."""
    rows = [r[0] for r in conn.execute("PRAGMA quick_check(2)").fetchall()]
    if rows == ["ok"]:
        return undecodable_text(conn)
    lines = [line for row in rows for line in row.splitlines() if not line.startswith("*** in database")]
    return "; ".join(lines) or "SQLite's check failed"


def undecodable_text(conn: Any) -> str:
    """"" when every stored text of a SQLite DB-API connection is UTF-8, else where the
    first one that is not lies.

    SQLite's check reads the pages' structure, not the bytes of a text, so a byte
    changed inside a transcript passes it, and every later read of that row fails.
    """
    tables = {t: [r[1] for r in conn.execute(f'PRAGMA table_info("{t}")')]
              for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                       "AND name NOT LIKE 'sqlite_%'").fetchall()}
    before = conn.text_factory
    conn.text_factory = bytes  # read a text's bytes as stored, to find the bad one
    try:
        for table, columns in tables.items():
            # only values stored as text: a blob is bytes by design
            picked = ", ".join(f'CASE WHEN typeof("{c}") = \'text\' THEN "{c}" END' for c in columns)
            for row in conn.execute(f'SELECT rowid, {picked} FROM "{table}"'):
                for column, value in zip(columns, row[1:]):
                    if value is None:
                        continue
                    try:
                        value.decode("utf-8")
                    except UnicodeDecodeError:
                        return f"row {row[0]} of table {table} holds a {column} that is not UTF-8 text"
    finally:
        conn.text_factory = before
    return ""


def damage_error(where: object, what: object, recovery: str) -> CorruptDatabase:
    """The one message for a damaged database: which file, what SQLite found, what to do."""
    return CorruptDatabase(f"{where}: the project database is damaged ({what}); {recovery}")
