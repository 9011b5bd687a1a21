"""Import audio into a project: a folder (recursively) or a JSONL/CSV manifest.

Each file is decoded to 16 kHz mono, checked, split at silences when longer than 30 s,
and written as FLAC clips under ``PROJECT/audio``; then its rows are inserted in one
transaction. A killed import therefore loses at most the file in progress, and a
re-import skips every file whose content hash is already known (giving it a
manifest's reference text when it has none). Paths are stored absolute."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from tqdm.auto import tqdm

from earmark import audio as au
from earmark.errors import BadConfig, UnreadableAudio
from earmark.sources import ManifestRow, loops, resolve_path, rows_from_source
from earmark.store.db import Clip, Source
from earmark.store.project import Project


@dataclass
class ImportReport:
    """What an import did."""

    files_added: int = 0
    clips_added: int = 0
    duplicates: int = 0  # files whose content is already known (or named twice)
    seconds_added: float = 0.0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    texts_added: int = 0  # known files without a reference text that got the manifest's
    text_conflicts: int = 0  # rows whose text differs from the one kept; see warnings
    speakers_added: int = 0  # known files without a speaker that got the manifest's
    speaker_conflicts: int = 0  # rows whose speaker differs from the one kept; see warnings
    changed: list[str] = field(default_factory=list)  # paths imported before with other content
    warnings: list[str] = field(default_factory=list)  # one line each, naming file (and line)
    restored: int = 0  # stored clips of known files that were gone and were written again


@dataclass
class _Seen:
    """A content hash already in the project or met earlier in this import."""

    ok: bool  # imported (not rejected)
    # "text" and "speaker" -> (value, the manifest line that gave it in this import, or
    # None when it was stored before); a missing key: the file has none yet
    known: dict[str, tuple[str, int | None]] = field(default_factory=dict)


def _path_key(path: Path) -> str:
    # an unreadable file has no content hash; its resolved path keeps its rejection unique
    return "path:" + hashlib.sha256(str(resolve_path(path)).encode("utf-8", "surrogateescape")).hexdigest()[:59]


def _content_key(path: Path) -> str:
    """The file's content hash; its path key when it cannot be read (it is rejected then)."""
    try:
        return au.file_sha256(path) if path.is_file() else _path_key(path)
    except OSError:
        return _path_key(path)


#: the name :func:`_import_one` gives a stored clip: the source's content hash and its index
_STORED_CLIP = re.compile(r"([0-9a-f]{64})_\d{4}\.flac")


def plural_files(n: int) -> str:
    """``1 file``, ``2 files``."""
    return f"{n} file{'' if n == 1 else 's'}"


def _own_clips(project: Project, rows: list[ManifestRow]) -> list[ManifestRow]:
    """The rows naming a file inside the project folder: its own stored clips.

    They were resampled to FLAC when imported, so their bytes differ from the recording's
    and the content hash would take each for a new file: importing them would add every
    clip a second time.
    """
    root = resolve_path(project.root)
    return [r for r in rows if r.audio.is_relative_to(root)]


def import_audio(project: Project, source: Path | str, progress: bool = True) -> ImportReport:
    """Import every file of ``source`` into ``project``.

    A file whose content is already known is not imported again, but a manifest's text
    and speaker are added to it when it has none yet; a different one never replaces
    what is stored (it is counted in ``text_conflicts`` or ``speaker_conflicts`` and
    named in ``warnings``).

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

    Raises
    ------
    FileNotFoundError
        ``source`` does not exist, or is a folder with no audio file.
    BadManifest
        A malformed or empty manifest.
    BadConfig
        ``source`` is inside the project, or is another project's folder.
    """
    source = _outside(project, resolve_path(Path(source)))
    run = _Import(source, *_known_files(project))
    rows = rows_from_source(source, project.config.audio.extensions, problems=run.report.warnings)
    rows = _without_own_clips(project, rows, run)
    for row in tqdm(rows, desc="import", unit="file", disable=not progress):
        _import_row(project, row, run)
    if run.copies:
        run.report.warnings.append(
            f"{source}: {plural_files(run.copies)} named as this project's stored clips "
            "(HASH_NNNN.flac of a file it holds); left out as already imported: import the "
            "original recordings instead")
    if run.fills or run.speakers:
        _fill_known(project, run.fills, run.speakers)
    run.report.texts_added, run.report.speakers_added = len(run.fills), len(run.speakers)
    return run.report


@dataclass
class _Import:
    """What an import knows as it goes through the rows."""

    source: Path
    known: dict[str, _Seen]  # content hash (or path key) -> what is known of that file
    by_path: dict[str, str]  # path of an imported file -> its content hash
    stored: dict[str, list]  # content hash -> its clips (path, offset, duration)
    report: ImportReport = field(default_factory=ImportReport)
    fills: dict[str, str] = field(default_factory=dict)  # content hash -> text for known files without one
    speakers: dict[str, str] = field(default_factory=dict)  # content hash -> speaker for known files without one
    retried: set[str] = field(default_factory=set)  # rejected files tried again in this import
    copies: int = 0  # the project's own stored clips (HASH_NNNN.flac) met outside its folder


def _outside(project: Project, source: Path) -> Path:
    """``source``, unless it lies inside the project (where earmark keeps its own copies)."""
    if source.is_relative_to(resolve_path(project.root)):
        raise BadConfig(f"{source}: inside the project folder {project.root}, where earmark keeps "
                        "its own copies of the clips; keep recordings outside the project: move "
                        "them to another folder (or `earmark init` the project elsewhere) and "
                        "import from there")
    return source


def _without_own_clips(project: Project, rows: list[ManifestRow], run: _Import) -> list[ManifestRow]:
    """``rows`` less those naming the project's own stored clips (counted as duplicates)."""
    own = _own_clips(project, rows)
    if not own:
        return rows
    left_out = {id(r) for r in own}
    run.report.duplicates += len(own)
    run.report.warnings.append(
        f"{run.source}: {len(own)} of its files are clips this project stored itself (in "
        f"{project.audio_dir}); left out, since they are already imported: import the original "
        "recordings instead")
    return [r for r in rows if id(r) not in left_out]


def _known_files(project: Project) -> tuple[dict[str, _Seen], dict[str, str], dict[str, list]]:
    """The files the project has seen: by content hash, by path, and their stored clips."""
    with project.store.session() as s:
        known = {sha: _Seen(status == "ok", _values(text, speaker, None))
                 for sha, status, text, speaker in s.execute(
                     select(Source.sha256, Source.status, Source.reference_text, Source.speaker))}
        by_path = dict(s.execute(select(Source.path, Source.sha256).where(Source.status == "ok")).all())
        stored: dict[str, list] = {}
        for sha, *clip in s.execute(select(Source.sha256, Clip.audio_path, Clip.offset, Clip.duration)
                                    .join(Clip, Clip.source_id == Source.id)):
            stored.setdefault(sha, []).append(clip)
    return known, by_path, stored


def _import_row(project: Project, row: ManifestRow, run: _Import) -> None:
    """Import one row: a new file, a rejected one tried again, or a known one (whose text,
    speaker and missing clips may be filled in)."""
    known, report = run.known, run.report
    stored_as = _STORED_CLIP.fullmatch(row.audio.name)
    if stored_as and stored_as.group(1) in known:
        run.copies += 1
        report.duplicates += 1
        return
    key = _content_key(row.audio)
    if key in known and not known[key].ok and key not in run.retried:
        # rejected before: tried again, since the reason may be gone (a limit raised in
        # earmark.json, a file put back); its old rejection is replaced, not repeated
        run.retried.add(key)
        if _import_one(project, row, key, report, replaces_rejection=True):
            known[key] = _Seen(True, _values(row.text, row.speaker, row.line))
        return
    if key in known:
        report.duplicates += 1
        report.text_conflicts += _merge(known[key], row, "text", key, run.source, run.fills, report)
        report.speaker_conflicts += _merge(known[key], row, "speaker", key, run.source, run.speakers, report)
        _restore_missing(project, row, run.stored.get(key, []), report)
        return
    earlier = run.by_path.get(str(row.audio))
    if earlier is not None and earlier != key and not key.startswith("path:"):
        report.changed.append(str(row.audio))
        report.warnings.append(f"{row.audio}: the content changed since it was imported; the "
                               "new content is added as new clips and the earlier clips stay")
    known[key] = _Seen(True, _values(row.text, row.speaker, row.line))  # marked rejected below if it is
    run.by_path[str(row.audio)] = key
    if not _import_one(project, row, key, report):
        known[key].ok = False


def _restore_missing(project: Project, row: ManifestRow, clips: list, report: ImportReport) -> None:
    """Write again the stored clips of a known file that are gone from the project's audio
    folder, or whose header no longer reads as the FLAC earmark wrote.

    Importing the source file again is the remedy the missing-clip errors give, so it
    must work even though the file's content is known: the clips (``(audio_path, offset,
    duration)``, none for a rejected file) are cut from it at the offsets stored when it
    was first imported.
    """
    missing = [(path, offset, duration) for path, offset, duration in clips
               if not au.clip_is_sound(project.clip_path(path))]
    if not missing or not row.audio.is_file():
        return
    signal = au.load_audio(row.audio, project.config.audio)
    for path, offset, duration in missing:
        au.write_clip(project.clip_path(path), au.slice_audio(signal, au.Segment(offset, duration)))
    report.restored += len(missing)


def _values(text: str | None, speaker: str | None, line: int | None) -> dict[str, tuple[str, int | None]]:
    """A file's known text and speaker, for :class:`_Seen`."""
    return {k: (v, line) for k, v in (("text", text), ("speaker", speaker)) if v}


def _merge(seen: _Seen, row: ManifestRow, name: str, key: str, source: Path,
           fills: dict[str, str], report: ImportReport) -> bool:
    """Give a known file the row's ``name`` ("text" or "speaker") if it has none yet.

    A stored value is never replaced: a different one is named in the report's warnings
    and the return value is True (a conflict). A speaker especially: the dev split of
    fine-tuning holds out whole speakers, and moving a clip to another speaker could
    move it into training.
    """
    new = getattr(row, name)
    if not new or not seen.ok:
        return False
    if name not in seen.known:
        seen.known[name] = (new, row.line)
        fills[key] = new
        return False
    stored, line = seen.known[name]
    if stored.strip() == new.strip():
        return False
    what = "reference text" if name == "text" else name
    if line is not None:
        report.warnings.append(f"{source}:{row.line}: {row.audio} is the same audio as line "
                               f"{line} with a different {name}; kept the {name} of line {line}")
    else:
        report.warnings.append(f"{row.audio}: already imported with a different {what}; "
                               f"kept the stored {stored!r}, not {new!r}")
    return True


def _fill_known(project: Project, texts: dict[str, str], speakers: dict[str, str]) -> None:
    """Store reference texts and speakers for known files.

    A text goes on the file, and on its clip if it was not split (a long file's text
    fits none of its clips); a speaker goes on the file and every one of its clips.
    """
    keys = sorted(set(texts) | set(speakers))
    with project.store.session() as s:
        for i in range(0, len(keys), 500):  # bounded IN lists (SQLite limits bound variables)
            for src in s.scalars(select(Source).where(Source.sha256.in_(keys[i : i + 500]))):
                clips = s.scalars(select(Clip).where(Clip.source_id == src.id)).all()
                if src.sha256 in texts:
                    src.reference_text = texts[src.sha256]
                    if len(clips) == 1 and clips[0].reference_text is None:
                        clips[0].reference_text = src.reference_text
                if src.sha256 in speakers:
                    src.speaker = speakers[src.sha256]
                    for clip in clips:
                        clip.speaker = clip.speaker or src.speaker


def _check_readable(path: Path) -> None:
    """Raise :class:`UnreadableAudio` when the file cannot be opened and read at all.

    A decoder would report a permission or I/O fault as a format it does not know; the
    person needs to hear it is the file's permissions or the disk.
    """
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        fix = ("give your user read permission (chmod +r) or copy it somewhere readable"
               if isinstance(exc, PermissionError) else "copy the file again from its origin")
        raise UnreadableAudio(f"{path}: cannot be read ({exc.strerror or exc}); {fix}") from exc


def _import_one(project: Project, row: ManifestRow, key: str, report: ImportReport, *,
                replaces_rejection: bool = False) -> bool:
    """Import one file; False when it was rejected (and recorded so).

    With ``replaces_rejection`` the file's stored rejection (same content) is removed in
    the same transaction, so that a retry leaves one row: the clips, or the new reason.
    """
    cfg = project.config.audio
    source = Source(path=str(row.audio), sha256=key, status="ok",
                    reference_text=row.text, speaker=row.speaker)
    clips: list[Clip] = []
    try:
        if "\x00" in str(row.audio):  # no file system allows it; os calls raise ValueError
            raise UnreadableAudio(f"{row.audio}: the path holds a NUL byte, which no file name can; "
                                  "fix the path" + (f" on line {row.line} of the manifest" if row.line else ""))
        if loops(row.audio):
            raise UnreadableAudio(f"{row.audio}: a symbolic link that leads back to itself (a loop); "
                                  "point it at the recording or remove it")
        if row.audio.is_dir():
            raise UnreadableAudio(f"{row.audio}: a folder, not an audio file; list its files in the "
                                  "manifest, or import the folder itself")
        if row.audio.is_symlink() and not row.audio.exists():
            raise UnreadableAudio(f"{row.audio}: a link to {os.readlink(row.audio)}, which does not "
                                  "exist; put the recording back or remove the link")
        if row.audio.exists() and not row.audio.is_file():
            # a pipe would block the decoder forever; a device is not a recording
            raise UnreadableAudio(f"{row.audio}: not a regular file (a pipe, socket or device); "
                                  "copy the recording into a file and import that")
        if not row.audio.is_file():
            raise UnreadableAudio(f"{row.audio}: file not found; check the path in the manifest")
        _check_readable(row.audio)
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
    try:
        with project.store.session() as s:
            if replaces_rejection:
                s.execute(delete(Source).where(Source.sha256 == key, Source.status == "rejected"))
            if clips:  # the file at this path now imports: an earlier rejection of it is out of date
                s.execute(delete(Source).where(Source.path == source.path, Source.status == "rejected"))
            s.add(source)
            s.flush()
            for clip in clips:
                clip.source_id = source.id
                s.add(clip)
    except IntegrityError:  # another import of this project stored the same content meanwhile
        report.duplicates += 1
        if not clips:
            report.rejected.pop()
        return bool(clips)
    if clips:
        report.files_added += 1
        report.clips_added += len(clips)
        report.seconds_added += sum(c.duration for c in clips)
    return bool(clips)
