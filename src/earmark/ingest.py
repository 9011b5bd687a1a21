"""Import audio into a project: a folder (recursively) or a JSONL/CSV manifest.

Each file is decoded to 16 kHz mono, checked, split at silences when longer than 30 s,
and written as FLAC clips under ``PROJECT/audio``; then its rows are inserted in one
transaction. A killed import therefore loses at most the file in progress, and a
re-import skips every file whose content hash is already known.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from tqdm.auto import tqdm

from . import audio as au
from .errors import BadManifest, UnreadableAudio
from .project import Project
from .store import Clip, Source


@dataclass(frozen=True)
class ManifestRow:
    """One file to import, with what the manifest says about it."""

    audio: Path
    text: str | None = None
    speaker: str | None = None


@dataclass
class ImportReport:
    """What an import did."""

    files_added: int = 0
    clips_added: int = 0
    duplicates: int = 0
    seconds_added: float = 0.0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def read_manifest(path: Path) -> list[ManifestRow]:
    """Read a JSONL or CSV manifest with an ``audio`` column and optional ``text``, ``speaker``.

    Relative audio paths are taken from the manifest's folder.

    Raises
    ------
    BadManifest
        Unparseable line, or a row without ``audio``; the message gives file and line.
    """
    base = path.parent
    rows: list[dict] = []
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "audio" not in reader.fieldnames:
                raise BadManifest(f"{path}: the CSV header has no 'audio' column "
                                  f"(columns: {reader.fieldnames}); add one")
            rows = list(reader)
    else:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise BadManifest(f"{path}:{n}: not valid JSON ({exc.msg}); fix that line") from exc
                if not isinstance(row, dict):
                    raise BadManifest(f"{path}:{n}: expected a JSON object per line")
                rows.append(row)
    out = []
    for n, row in enumerate(rows, 1):
        if not row.get("audio"):
            raise BadManifest(f"{path}: row {n} has no 'audio' field; every row needs the audio path")
        audio = Path(row["audio"])
        out.append(ManifestRow(
            audio=audio if audio.is_absolute() else base / audio,
            text=(row.get("text") or None),
            speaker=(str(row["speaker"]) if row.get("speaker") not in (None, "") else None),
        ))
    return out


def rows_from_source(source: Path, extensions: tuple[str, ...]) -> list[ManifestRow]:
    """Files to import from a folder, a manifest, or a single audio file."""
    if source.is_dir():
        return [ManifestRow(p) for p in au.find_audio(source, extensions)]
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    if source.suffix.lower() in (".jsonl", ".json", ".csv"):
        return read_manifest(source)
    return [ManifestRow(source)]


def _path_key(path: Path) -> str:
    # an unreadable file has no content hash; its resolved path keeps its rejection unique
    return "path:" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:59]


def import_audio(project: Project, source: Path | str, progress: bool = True) -> ImportReport:
    """Import every file of ``source`` into ``project``.

    Parameters
    ----------
    project
        An open project.
    source
        A folder (searched recursively for the configured extensions), a JSONL/CSV
        manifest, or one audio file.
    progress
        Show a tqdm progress bar.

    Returns
    -------
    ImportReport
        Counts, and every rejected file with its reason. Rejections are also stored.
    """
    cfg = project.config.audio
    rows = rows_from_source(Path(source), cfg.extensions)
    report = ImportReport()
    with project.store.session() as s:
        known = set(s.scalars(select(Source.sha256)))
    for row in tqdm(rows, desc="import", unit="file", disable=not progress):
        key = au.file_sha256(row.audio) if row.audio.is_file() else _path_key(row.audio)
        if key in known:
            report.duplicates += 1
            continue
        known.add(key)
        _import_one(project, row, key, report)
    return report


def _import_one(project: Project, row: ManifestRow, key: str, report: ImportReport) -> None:
    cfg = project.config.audio
    source = Source(path=str(row.audio), sha256=key, status="ok",
                    reference_text=row.text, speaker=row.speaker)
    clips: list[Clip] = []
    try:
        if not row.audio.is_file():
            raise UnreadableAudio(f"{row.audio}: file not found; check the path in the manifest")
        signal = au.load_audio(row.audio, cfg)
        segments = au.split_points(signal, cfg)
        if not segments:
            raise UnreadableAudio(f"{row.audio}: no segment with sound after splitting")
        source.duration = signal.size / au.SAMPLE_RATE
        whole = len(segments) == 1
        for i, seg in enumerate(segments):
            rel = f"audio/{key[:2]}/{key}_{i:04d}.flac"
            au.write_clip(project.clip_path(rel), au.slice_audio(signal, seg))
            clips.append(Clip(offset=seg.offset, duration=seg.duration, audio_path=rel,
                              speaker=row.speaker,
                              # a split file's reference cannot be cut to its clips
                              reference_text=row.text if whole else None))
    except UnreadableAudio as exc:
        source.status, source.reason = "rejected", str(exc)
        report.rejected.append((str(row.audio), str(exc)))
        clips = []
    with project.store.session() as s:
        s.add(source)
        s.flush()
        for clip in clips:
            clip.source_id = source.id
            s.add(clip)
    if clips:
        report.files_added += 1
        report.clips_added += len(clips)
        report.seconds_added += sum(c.duration for c in clips)
