"""The ``init`` and ``import`` commands: create a project, add audio to it."""

from __future__ import annotations

import argparse
from pathlib import Path

from earmark.cli.common import PROJECT_HELP, add_command, open_for_writing, plural, shown
from earmark.config import DecodeConfig, ProjectConfig


def cmd_init(args: argparse.Namespace) -> int:
    from earmark.models.loading import normalize_spec
    from earmark.store.project import init_project

    cfg = ProjectConfig(database_url=args.db_url or "", decode=DecodeConfig(model=normalize_spec(args.model)))
    project = init_project(args.project, cfg)
    from earmark.store.project import database_file

    db = database_file(project.root, project.config)
    where = (f"SQLite file {db}" if not args.db_url else
             f"SQLite file {db.resolve()}" + (" (a relative path is taken from the project folder)"
                                              if not Path(db_path_given(args.db_url)).is_absolute() else "")
             if db is not None else args.db_url.split(':')[0])
    print(f"created project {project.root} (model {args.model}, database: {where})")
    print(f"next: earmark import {args.project} AUDIO_FOLDER_OR_MANIFEST")
    return 0


def db_path_given(url: str) -> str:
    """The file path written in a SQLite URL (after ``sqlite:///``)."""
    from sqlalchemy.engine import make_url

    return make_url(url).database or ""


def cmd_import(args: argparse.Namespace) -> int:
    from earmark.ingest import import_audio

    project = open_for_writing(args.project, "import")
    report = import_audio(project, Path(args.source), progress=not args.quiet)
    print(f"imported {plural(report.files_added, 'file')} as {plural(report.clips_added, 'clip')} "
          f"({report.seconds_added / 60:.1f} min); {report.duplicates} already known; "
          f"{len(report.rejected)} rejected")
    for path, reason in report.rejected:
        print(f"  rejected {shown(path)}: {shown(reason.removeprefix(path + ': '))}")
    if report.texts_added or report.text_conflicts or report.changed:
        print(f"reference texts added to {plural(report.texts_added, 'known file')}; "
              f"{plural(report.text_conflicts, 'conflicting text')} not taken (the stored one is kept); "
              f"{plural(len(report.changed), 'changed file')} imported as new clips")
    if report.speakers_added or report.speaker_conflicts:
        print(f"speakers added to {plural(report.speakers_added, 'known file')}; "
              f"{plural(report.speaker_conflicts, 'conflicting speaker')} not taken (the stored one is kept)")
    if report.restored:
        print(f"restored {plural(report.restored, 'stored clip')} of known files that were missing or damaged in "
              "the project's audio folder")
    for warning in report.warnings:
        print(f"  warning: {shown(warning)}")
    if report.clips_added:
        print(f"next: earmark rank {args.project}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``init`` and ``import``."""
    s = add_command(sub, "init", cmd_init, help="create a project folder",
                    description="Create a project: a folder with its config (earmark.json), its "
                                "database and, later, its clips and model versions.",
                    epilog="examples:\n  earmark init myproj\n  earmark init myproj --model base.en\n"
                           "  earmark init myproj --db-url postgresql+psycopg://me@dbhost/earmark")
    s.add_argument("project", help="folder to create")
    s.add_argument("--model", default="tiny.en",
                   help="Whisper model: %(default)s (default), base, another Whisper name, or a checkpoint path")
    s.add_argument("--db-url", help="SQLAlchemy URL (e.g. postgresql+psycopg://...); default SQLite in the folder")

    s = add_command(sub, "import", cmd_import, help="add audio: a folder or a JSONL/CSV manifest",
                    description="Import audio. A folder is searched recursively for wav, flac, ogg "
                                "and mp3; a manifest (JSONL or CSV) has an 'audio' column and optional "
                                "'text' (reference) and 'speaker'. Files over 30 s are split at "
                                "silences. Unreadable, empty or silent files are recorded as rejected. "
                                "Importing again adds only new files (the same bytes under another "
                                "name count as known), tries the rejected ones again (after a limit "
                                "in earmark.json was raised, say) and writes back stored clips "
                                "that went missing or were damaged.",
                    epilog="examples:\n  earmark import myproj recordings/\n"
                           "  earmark import myproj clips.jsonl     # {\"audio\": \"a.wav\", \"text\": ..., \"speaker\": ...}\n"
                           "  earmark import myproj clips.csv       # header: audio,text,speaker")
    s.add_argument("project", help=PROJECT_HELP)
    s.add_argument("source", help="folder, manifest (.jsonl/.csv), or one audio file")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
