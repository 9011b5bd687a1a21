"""The project database: SQLAlchemy 2 ORM, SQLite (WAL) by default, PostgreSQL by URL.

The database is the source of truth. Every write happens in a transaction
(:meth:`Store.session`), corrections are append-only, and a ``meta`` row holds the
schema version so that :func:`migrate` can bring an older database up to date.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint,
    create_engine, event, func, inspect, select,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from earmark.errors import BadConfig, CorruptDatabase, SchemaTooNew

SCHEMA_VERSION = 2

#: what to do about a damaged database when nothing better is known (a project says more)
DEFAULT_RECOVERY = ("restore it from a backup of your own, or start the project again: move "
                    "its folder aside, then `earmark init` a new one and `earmark import` the "
                    "recordings")

# the damage checks live in earmark.store.damage; imported here too, where they were first
from earmark.store.damage import (_SQLITE_BUSY, _SQLITE_LOCKED, _UNDECODABLE, damage_error,  # noqa: F401
                                  damage_found, is_damage, quick_check, undecodable_text)


def utcnow() -> datetime:
    """Timezone-aware now; stored as UTC."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Meta(Base):
    """Key/value facts about the database itself (``schema_version``)."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Source(Base):
    """An imported file, accepted or rejected; its content hash makes import idempotent."""

    __tablename__ = "sources"
    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16))  # "ok" | "rejected"
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    duration: Mapped[float | None] = mapped_column(Float, default=None)
    reference_text: Mapped[str | None] = mapped_column(Text, default=None)
    speaker: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Clip(Base):
    """At most 30 s of audio: a whole short file, or a span of a long one."""

    __tablename__ = "clips"
    __table_args__ = (UniqueConstraint("source_id", "offset"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"), index=True)
    offset: Mapped[float] = mapped_column(Float)  # seconds into the source file
    duration: Mapped[float] = mapped_column(Float)  # seconds
    audio_path: Mapped[str] = mapped_column(Text)  # 16 kHz FLAC, relative to the project
    # the reference transcript from a manifest: for evaluation, never shown as a correction
    reference_text: Mapped[str | None] = mapped_column(Text, default=None)
    speaker: Mapped[str | None] = mapped_column(String(128), default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelVersion(Base):
    """A model the project has used: the base model or a fine-tuned checkpoint."""

    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    # Text like spec: a version is named after its spec (a checkpoint path) by default, and
    # PostgreSQL, unlike SQLite, enforces a VARCHAR length
    name: Mapped[str] = mapped_column(Text, unique=True)
    spec: Mapped[str] = mapped_column(Text)  # what models.load_model takes
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(32), default="ready")  # ready|training|rejected
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    record: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # dev WER, corrections...
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TranscriptRow(Base):
    """One model version's output for one clip, with its per-token and per-word data."""

    __tablename__ = "transcripts"
    __table_args__ = (UniqueConstraint("clip_id", "model_version_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), index=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    tokens: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # [{id, text, p, entropy}]
    words: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # [{word, start, end, p}]
    avg_logprob: Mapped[float] = mapped_column(Float)
    no_speech_prob: Mapped[float] = mapped_column(Float)
    compression_ratio: Mapped[float] = mapped_column(Float)
    scores: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class QueueEntry(Base):
    """The ranked review queue of the latest ``rank`` run (rank 1 is reviewed first)."""

    __tablename__ = "queue"
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, index=True)
    score: Mapped[float] = mapped_column(Float)
    strategy: Mapped[str] = mapped_column(String(64))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))


class Correction(Base):
    """What a person typed for a clip (or a flag). Append-only: rows are never updated."""

    __tablename__ = "corrections"
    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), index=True)
    text: Mapped[str | None] = mapped_column(Text, default=None)  # None for a flag
    flag: Mapped[str | None] = mapped_column(String(64), default=None)  # e.g. "no speech"
    note: Mapped[str | None] = mapped_column(Text, default=None)
    annotator: Mapped[str] = mapped_column(String(128))
    seconds_spent: Mapped[float] = mapped_column(Float, default=0.0)
    transcript_id: Mapped[int | None] = mapped_column(ForeignKey("transcripts.id"), default=None)
    hypothesis: Mapped[str | None] = mapped_column(Text, default=None)  # what they started from
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    # schema 2: what the correction teaches. The word-level diff against the model's
    # hypothesis (see earmark.review.worddiff), the seconds the audio played and the
    # seconds between the first and the last edit, and whether the low-confidence
    # words were marked; None for rows saved before (or without the editor)
    word_diff: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    listen_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    edit_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    marks_shown: Mapped[bool | None] = mapped_column(Boolean, default=None)


class Lease(Base):
    """A clip held by one annotator until ``expires_at``, so two never get the same clip."""

    __tablename__ = "leases"
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), primary_key=True)
    annotator: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Round(Base):
    """One turn of the loop: a labeling budget, then fine-tuning and re-ranking."""

    __tablename__ = "rounds"
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    budget_minutes: Mapped[float] = mapped_column(Float)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), default=None)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


def waiting_for_review() -> Any:
    """Condition on :class:`QueueEntry`: nobody has corrected or flagged the clip yet.

    The queue is rebuilt only by ``rank``, so between two ranks it still lists the clips
    reviewed since; everything that shows the queue to a person filters them out with this.
    """
    return QueueEntry.clip_id.not_in(select(Correction.clip_id))


def _create_v1(conn: Any) -> None:
    Base.metadata.create_all(conn)


#: the columns schema 2 adds to ``corrections``, with their SQL types (a restore copies them too)
V2_CORRECTION_COLUMNS = {"word_diff": "JSON", "listen_seconds": "FLOAT",
                          "edit_seconds": "FLOAT", "marks_shown": "BOOLEAN"}


def _add_v2(conn: Any) -> None:
    # a database created by this release already has them (create_all makes the
    # current tables); an older one gets them added, empty for its earlier rows
    have = {c["name"] for c in inspect(conn).get_columns("corrections")}
    for name, kind in V2_CORRECTION_COLUMNS.items():
        if name not in have:
            conn.exec_driver_sql(f"ALTER TABLE corrections ADD COLUMN {name} {kind}")


# schema version reached -> step that reaches it from the version before. A new
# release appends a step (ALTER TABLE...), and old databases are walked forward.
MIGRATIONS: dict[int, Callable[[Any], None]] = {1: _create_v1, 2: _add_v2}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the review app read while rank writes; busy_timeout makes two writers
    # wait for each other instead of failing with "database is locked".
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def schema_version(engine: Engine) -> int:
    """The schema version stored in the database (0 for an empty database)."""
    if not inspect(engine).has_table("meta"):
        return 0
    with engine.connect() as conn:
        value = conn.execute(select(Meta.value).where(Meta.key == "schema_version")).scalar()
    return int(value) if value is not None else 0


def migrate(engine: Engine) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`, one step per version, each in a transaction."""
    current = schema_version(engine)
    if current > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"{engine.url}: schema version {current} was written by a newer earmark "
            f"(this one reads up to {SCHEMA_VERSION}); upgrade earmark"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        with engine.begin() as conn:
            MIGRATIONS[version](conn)
            conn.execute(Meta.__table__.delete().where(Meta.key == "schema_version"))
            conn.execute(Meta.__table__.insert().values(key="schema_version", value=str(version)))
    return SCHEMA_VERSION


class Store:
    """A connection to one project database.

    Parameters
    ----------
    url
        SQLAlchemy URL, e.g. ``sqlite:///path/earmark.db`` or ``postgresql+psycopg://...``.
    recovery
        Called when the file turns out damaged, on opening or in any later query; returns
        what the person should do (a project names its newest snapshot).

    Raises
    ------
    CorruptDatabase
        On opening, and from any :meth:`session`, when the file is damaged.
    """

    def __init__(self, url: str, recovery: Callable[[], str] = lambda: DEFAULT_RECOVERY):
        self.url = url
        self._recovery = recovery
        # a damaged JSON value (tokens, words, records) is damage like a bad page
        kwargs: dict[str, Any] = {"json_deserializer": self._json_value}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        try:
            self.engine = create_engine(url, **kwargs)
        except (ArgumentError, ImportError) as exc:
            raise BadConfig(f"database URL {_shown(url)}: {exc}. Use sqlite:///PATH, or "
                            "postgresql+psycopg://USER@HOST/DB with psycopg installed (pip install "
                            "'earmark[postgres]', or pip install 'psycopg[binary]')") from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            migrate(self.engine)
        except (DatabaseError, OperationalError) as exc:
            if self.engine.dialect.name != "sqlite" and isinstance(exc, OperationalError):
                raise CorruptDatabase(  # most often a server that is down or a wrong URL
                    f"{_shown(url)}: cannot reach the project database ({exc.orig}); check that the "
                    "server is running and the URL (database_url in earmark.json) is right") from exc
            raise CorruptDatabase(f"{_shown(url)}: cannot open the project database ({exc.orig}); "
                                  f"{recovery()}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _damaged(self, what: Any) -> CorruptDatabase:
        return damage_error(_shown(self.url), what, self._recovery())

    def _json_value(self, text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError as exc:
            raise self._damaged(f"a stored JSON value cannot be read: {exc}") from exc

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on any exception."""
        try:
            with self._sessions() as s, s.begin():
                yield s
        except DatabaseError as exc:
            if is_damage(exc):
                raise self._damaged(damage_found(exc)) from exc
            # a damaged page can also read as a missing row (a foreign key "fails"), so
            # any other fault of a SQLite file is checked before it is reported as is
            problem = self._check_after(exc)
            if problem:
                raise self._damaged(f"{exc.orig}; SQLite's check: {problem}") from exc
            raise

    def _check_after(self, exc: DatabaseError) -> str:
        code = getattr(exc.orig, "sqlite_errorcode", None)
        if self.engine.dialect.name != "sqlite" or code is None or code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return ""  # a lock is not damage, and checking would wait on it
        raw = self.engine.raw_connection()
        try:
            return quick_check(raw.driver_connection)
        except Exception as check_failed:  # noqa: BLE001 - a check that cannot run says enough
            return str(check_failed)
        finally:
            raw.close()

    def check(self) -> None:
        """Run SQLite's quick check of the file's structure; raise if it finds damage.

        Commands that only read (status, queue, export) would otherwise print counts from
        a file whose damaged pages they happened not to touch, without a word. The check
        reads each page once (well under a second for a large project); a database
        server checks itself.

        Raises
        ------
        CorruptDatabase
            The check found damage; the message says what, and what to do.
        """
        if self.engine.dialect.name != "sqlite":
            return
        import sqlite3

        raw = self.engine.raw_connection()
        try:
            rows = [r[0] for r in raw.driver_connection.execute("PRAGMA quick_check(2)").fetchall()]
        except sqlite3.DatabaseError as exc:  # a file past checking is damaged too
            raise self._damaged(damage_found(exc)) from exc
        finally:
            raw.close()
        if rows != ["ok"]:
            lines = [line for row in rows for line in row.splitlines()
                     if not line.startswith("*** in database")]
            raise self._damaged("; ".join(lines) or "SQLite's check failed")

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    # --- small queries shared by the CLI, the app and the loop -------------------

    def active_model(self) -> ModelVersion | None:
        """The model version that ranks and is shown in the app, if any."""
        with self.session() as s:
            return s.scalars(select(ModelVersion).where(ModelVersion.active.is_(True))).first()

    def unfinished_runs(self) -> list[ModelVersion]:
        """Fine-tuning runs killed or stopped before the end (status ``training``), oldest first."""
        with self.session() as s:
            return list(s.scalars(select(ModelVersion).where(ModelVersion.status == "training")
                                  .order_by(ModelVersion.id)))

    def ensure_model_version(self, spec: str, name: str | None = None) -> ModelVersion:
        """Return the version for ``spec``, creating it (active when none is) if new."""
        with self.session() as s:
            mv = s.scalars(select(ModelVersion).where(ModelVersion.spec == spec)).first()
            if mv is None:
                has_active = s.scalar(select(func.count()).where(ModelVersion.active.is_(True)))
                mv = ModelVersion(name=name or spec, spec=spec, active=not has_active)
                s.add(mv)
                s.flush()
            return mv

    def set_active(self, model_version_id: int) -> None:
        """Make one version active and every other inactive, atomically."""
        with self.session() as s:
            s.execute(ModelVersion.__table__.update().values(active=False))
            s.execute(ModelVersion.__table__.update()
                      .where(ModelVersion.id == model_version_id).values(active=True))

    def latest_corrections(self, include_flagged: bool = False) -> list[Correction]:
        """The newest correction of every corrected clip (history stays in the table)."""
        with self.session() as s:
            newest = (select(Correction.clip_id, func.max(Correction.id).label("id"))
                      .group_by(Correction.clip_id).subquery())
            rows = s.scalars(select(Correction).join(newest, Correction.id == newest.c.id)
                             .order_by(Correction.id)).all()
        return [r for r in rows if include_flagged or r.flag is None]


def _shown(url: str) -> str:
    """The URL as messages print it: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def sqlite_url(path: Any) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{path}"


def dumps(obj: Any) -> str:
    """JSON for records; kept here so every record is written the same way."""
    return json.dumps(obj, sort_keys=True, default=str)
