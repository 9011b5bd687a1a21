"""A project: a folder holding ``earmark.json`` (its config), the database and the clips."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from .config import ProjectConfig, from_dict, to_json
from .errors import BadConfig, CorruptDatabase, EarmarkError, ProjectExists, ProjectNotFound
from .store import Store, sqlite_url

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


def _database_url(root: Path, config: ProjectConfig) -> str:
    return config.database_url or sqlite_url(root / DB_FILE)


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
    root = Path(root)
    if (root / CONFIG_FILE).exists():
        raise ProjectExists(f"{root}: already an earmark project; use it, or choose another folder")
    from .models import check_spec

    check_spec(config.decode.model)  # a typo fails here, not at the first `rank`
    if root.exists() and not root.is_dir():
        raise ProjectExists(f"{root}: is a file, not a folder; choose a new folder name for the project")
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(exist_ok=True)
    try:
        store = Store(_database_url(root, config))
    except EarmarkError:
        if created:  # a bad database URL leaves no half-made project behind
            shutil.rmtree(root, ignore_errors=True)
        raise
    (root / CONFIG_FILE).write_text(to_json(config) + "\n")
    store.ensure_model_version(config.decode.model)
    return Project(root=root, config=config, store=store)


def open_project(root: Path | str) -> Project:
    """Open an existing project (migrating its database if it is older).

    Raises
    ------
    ProjectNotFound
        No ``earmark.json`` in ``root``.
    CorruptDatabase
        The database cannot be read, or its file is gone or empty.
    BadConfig
        ``earmark.json`` names an unknown queue strategy.
    """
    root = Path(root)
    cfg_file = root / CONFIG_FILE
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
    from .selection import STRATEGIES

    if config.selection.strategy not in STRATEGIES:
        raise BadConfig(f"{cfg_file}: selection.strategy {config.selection.strategy!r} is not one of "
                        f"{', '.join(sorted(STRATEGIES))}; fix it there")
    if not config.database_url:
        _check_database_file(root / DB_FILE)
    return Project(root=root, config=config, store=Store(_database_url(root, config)))


def _check_database_file(db: Path) -> None:
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
        f"be read (the audio in {db.parent / 'audio'} is untouched). Restore {db.name} from a "
        f"backup, or start a new project with `earmark init` and import the audio again")
