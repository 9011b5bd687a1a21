"""A project: a folder holding ``earmark.json`` (its config), the database and the clips."""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from earmark.config import ProjectConfig, from_dict, to_json, unknown_keys
from earmark.errors import (BadConfig, CorruptDatabase, EarmarkError, EarmarkWarning, ProjectExists,
                            ProjectNotFound)
from earmark.models.loading import check_spec
from earmark.ranking.strategies import STRATEGIES
from earmark.store.db import DEFAULT_RECOVERY, Store, sqlite_url
from earmark.store.snapshots import advice

CONFIG_FILE = "earmark.json"
DB_FILE = "earmark.db"


@dataclass(frozen=True)
class Project:
    """An open project. ``store`` is the database; ``root`` the folder."""

    root: Path
    config: ProjectConfig
    store: Store

    @property
    def audio_dir(self) -> Path:
        """Where imported clips are kept as 16 kHz FLAC."""
        return self.root / "audio"

    def clip_path(self, relative: str) -> Path:
        """Absolute path of a stored clip."""
        return self.root / relative


def _recovery(root: Path, config: ProjectConfig) -> Callable[[], str]:
    """What a person should do about a damaged database (read when the damage is found)."""
    def recovery() -> str:
        return advice(root) if database_file(root, config) else DEFAULT_RECOVERY

    return recovery


def _store(root: Path, config: ProjectConfig) -> Store:
    return Store(database_url(root, config), _recovery(root, config))


def database_url(root: Path | str, config: ProjectConfig) -> str:
    """The URL the project's database is opened with.

    A SQLite file given by a relative path is taken from the project folder, not from the
    folder a command happens to run in: SQLite would otherwise create a new, empty
    database beside every other working folder, and the project would look empty there.
    """
    if not config.database_url:
        return sqlite_url(Path(root) / DB_FILE)
    url = make_url(config.database_url)
    if url.get_backend_name() == "sqlite" and url.database and not _in_memory(config.database_url) \
            and not Path(url.database).is_absolute():
        return url.set(database=str(Path(root).resolve() / url.database)).render_as_string(hide_password=False)
    return config.database_url


def _in_memory(database_url: str) -> bool:
    """True for a SQLite URL of a database held in memory (gone when the command ends)."""
    try:
        url = make_url(database_url)
    except Exception:  # noqa: BLE001 - an unparsable URL is refused by the Store itself
        return False
    return url.get_backend_name() == "sqlite" and (
        url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
        or (url.database or "").startswith("file::memory:"))


def init_project(root: Path | str, config: ProjectConfig = ProjectConfig()) -> Project:
    """Create a project folder with its config and an empty, migrated database.

    Raises
    ------
    ProjectExists
        ``root`` already holds a project, or is a file.
    ModelWeightsNotFound
        The config's model is neither a checkpoint file nor a Whisper name.
    BadConfig
        The database URL cannot be used.
    """
    if not str(root).strip():
        raise BadConfig("the project folder name is empty; give the folder to create, "
                        "e.g. `earmark init myproj`")
    root = Path(root)
    if (root / CONFIG_FILE).exists():
        raise ProjectExists(f"{root}: already an earmark project; use it, or choose another folder")

    check_spec(config.decode.model)  # a typo fails here, not at the first `rank`
    if config.database_url and _in_memory(config.database_url):
        # each command would get a new, empty database: an import would report files it
        # stored nowhere
        raise BadConfig(f"database URL {config.database_url}: a SQLite database in memory lasts "
                        "only while one command runs, so nothing imported or corrected would be "
                        "kept; leave out --db-url (a file in the project folder) or give "
                        "sqlite:///PATH/TO/FILE.db")
    if root.exists() and not root.is_dir():
        raise ProjectExists(f"{root}: is a file, not a folder; choose a new folder name for the project")
    created = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / "audio").mkdir(exist_ok=True)
    except OSError as exc:
        raise BadConfig(f"{root}: cannot create the project folder ({exc.strerror or exc}); "
                        "choose a folder you can write to") from exc
    try:
        store = _store(root, config)
    except EarmarkError:
        if created:  # a bad database URL leaves no half-made project behind
            shutil.rmtree(root, ignore_errors=True)
        raise
    (root / CONFIG_FILE).write_text(to_json(config) + "\n")
    store.ensure_model_version(config.decode.model)
    return Project(root=root, config=config, store=store)


def load_config(root: Path | str) -> ProjectConfig:
    """Read and check ``root/earmark.json`` without opening the database.

    Raises
    ------
    ProjectNotFound
        No ``earmark.json`` in ``root``, or not a valid one.
    BadConfig
        ``earmark.json`` names an unknown queue strategy, or holds a value that cannot
        work (a clip length of 0, say).
    """
    root = Path(root)
    cfg_file = root / CONFIG_FILE
    if root.exists() and not root.is_dir():
        raise ProjectNotFound(f"{root}: a file, not a project folder; give the folder "
                              "`earmark init` created")
    if not cfg_file.is_file():
        raise ProjectNotFound(f"{root}: no earmark project here (no {CONFIG_FILE}); "
                              f"create one with `earmark init {root}`")
    try:
        data = json.loads(cfg_file.read_text())
        if not isinstance(data, dict):
            raise TypeError("it holds no JSON object")
        config = from_dict(ProjectConfig, data)
    except (json.JSONDecodeError, TypeError) as exc:
        raise ProjectNotFound(f"{cfg_file}: not a valid project config ({exc}); fix or restore it") from exc

    if config.selection.strategy not in STRATEGIES:
        raise BadConfig(f"{cfg_file}: selection.strategy {config.selection.strategy!r} is not one of "
                        f"{', '.join(sorted(STRATEGIES))}; fix it there")
    problems = config.problems()
    if problems:
        raise BadConfig(f"{cfg_file}: {'; '.join(problems)}; fix it there")
    unknown = unknown_keys(ProjectConfig, data)
    if unknown:  # a misspelt key would otherwise leave its setting at the default unsaid
        warnings.warn(f"{cfg_file}: {', '.join(unknown)} {'is not a setting' if len(unknown) == 1 else 'are not settings'} "
                      "of this earmark and ignored; check the spelling (`earmark init` writes "
                      "every setting with its default)", EarmarkWarning, stacklevel=2)
    return config


def database_file(root: Path | str, config: ProjectConfig) -> Path | None:
    """The project's SQLite file, or None when its database is on a server."""
    if not config.database_url:
        return Path(root) / DB_FILE
    url = make_url(database_url(root, config))
    return Path(url.database) if url.get_backend_name() == "sqlite" and url.database else None


def open_project(root: Path | str) -> Project:
    """Open an existing project (migrating its database if it is older).

    Raises
    ------
    ProjectNotFound
        No ``earmark.json`` in ``root``.
    CorruptDatabase
        The database cannot be read, or its file is gone or empty; raised later by any
        query that meets a damaged page. The message names the snapshot to restore.
    BadConfig
        ``earmark.json`` names an unknown queue strategy.
    """
    root = Path(root)
    config = load_config(root)
    if config.database_url and _in_memory(config.database_url):
        raise BadConfig(f"{root / CONFIG_FILE}: database_url {config.database_url} is a database in "
                        "memory, which keeps nothing between commands; set database_url to \"\" "
                        "(a file in the project folder) or sqlite:///PATH/TO/FILE.db")
    db = database_file(root, config)
    if db is not None:  # a file named in database_url too: SQLite would create an empty one
        _check_database_file(db, _recovery(root, config))
    return Project(root=root, config=config, store=_store(root, config))


def _check_database_file(db: Path, recovery: Callable[[], str]) -> None:
    """Refuse a project whose SQLite file is gone or emptied.

    SQLite would quietly create a new, empty database there, and the project would look
    like it had no clips while its audio is still on disk. ``init`` always writes the
    tables, so a real project's file is never empty; a WAL file with content is a
    database SQLite can still recover.
    """
    wal = db.with_name(db.name + "-wal")
    if wal.is_file() and wal.stat().st_size > 0:
        return
    if not db.is_file():
        why = "is missing"
    elif db.stat().st_size == 0:
        why = "is empty (0 bytes)"
    else:
        return
    raise CorruptDatabase(
        f"{db}: the project's database {why}, so its clips, transcripts and corrections cannot "
        f"be read (the audio in {db.parent / 'audio'} is untouched); {recovery()}")
