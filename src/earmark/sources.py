"""What an import reads: a folder (searched recursively), a JSONL or CSV manifest, or one
audio file, as rows of files with what the manifest says about each (its reference
text and speaker). Malformed manifests are refused naming the file and line.
"""

from __future__ import annotations

import codecs
import csv
import errno
import io
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from earmark import audio as au
from earmark.errors import BadConfig, BadManifest
from earmark.store.project import CONFIG_FILE


@dataclass(frozen=True)
class ManifestRow:
    """One file to import, with what the manifest says about it."""

    audio: Path  # absolute, so the project works from any folder
    text: str | None = None
    speaker: str | None = None
    line: int | None = None  # the manifest line (None for a folder import)


def resolve_path(path: Path) -> Path:
    """``path`` made absolute with its links followed, as far as they can be.

    ``Path.resolve`` raises on a link that loops (RuntimeError) and on a name holding a
    NUL byte (ValueError); such a path is kept absolute as written instead, so that the
    file is rejected with its reason rather than stopping the import.
    """
    try:
        return path.resolve()
    except (RuntimeError, ValueError, OSError):
        return Path(os.path.abspath(path))


def loops(path: Path) -> bool:
    """True when ``path`` is a symbolic link that leads back to itself."""
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    except ValueError:  # a NUL byte: not a link of any kind
        return False
    return False


def _manifest_text(path: Path) -> str:
    """The manifest's text, decoded as UTF-8 (a byte-order mark, as Excel writes, is dropped)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise BadManifest(f"{path}: no such manifest; check the path (a JSONL or CSV file "
                          "with an 'audio' column)") from exc
    except OSError as exc:  # a folder, or no permission
        raise BadManifest(f"{path}: cannot read the manifest ({exc.strerror or exc}); give a "
                          "JSONL or CSV file") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # utf-8-sig counts positions after the mark it dropped
        start = exc.start + (3 if data.startswith(codecs.BOM_UTF8) else 0)
        line = data[:start].count(b"\n") + 1
        raise BadManifest(f"{path}:{line}: not UTF-8 text (byte 0x{data[start]:02x}); save the "
                          "manifest as UTF-8 (in Excel: 'CSV UTF-8')") from exc


def _csv_rows(path: Path, text: str) -> list[tuple[int, dict]]:
    # strict: a quote left open would otherwise swallow every later row into one field
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, dict]] = []
    try:
        if not reader.fieldnames or "audio" not in reader.fieldnames:
            raise BadManifest(f"{path}: the CSV header has no 'audio' column "
                              f"(columns: {reader.fieldnames}); add one")
        for row in reader:
            # line_num is the last physical line read: a quoted field may span several
            if None in row:  # more fields than the header: an unquoted comma in a text
                raise BadManifest(f"{path}:{reader.line_num}: {len(reader.fieldnames) + len(row[None])} "
                                  f"fields where the header has {len(reader.fieldnames)}; put a text "
                                  'holding commas in double quotes ("like, this")')
            rows.append((reader.line_num, row))
        return rows
    except csv.Error as exc:  # named by the line its row starts on: an open quote runs to the end
        start = (rows[-1][0] if rows else 1) + 1
        raise BadManifest(f"{path}:{start}: not valid CSV ({exc}) in the row starting on this line; "
                          "fix its quotes") from exc


def _jsonl_rows(path: Path, text: str) -> list[tuple[int, dict]]:
    rows = []
    # split on newlines only: JSON strings may hold other line separators (U+2028)
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadManifest(f"{path}:{n}: not valid JSON ({exc.msg}); fix that line") from exc
        if not isinstance(row, dict):
            raise BadManifest(f"{path}:{n}: expected a JSON object per line")
        rows.append((n, row))
    return rows


def manifest_records(path: Path | str) -> list[tuple[int, dict]]:
    """Every row of a JSONL or CSV manifest as it is written, with its line number.

    Raises
    ------
    BadManifest
        Missing or unreadable, not UTF-8, or an unparseable line (file and line named).
    """
    path = Path(path)
    text = _manifest_text(path)
    return _csv_rows(path, text) if path.suffix.lower() == ".csv" else _jsonl_rows(path, text)


def read_manifest(path: Path) -> list[ManifestRow]:
    """Read a JSONL or CSV manifest with an ``audio`` column and optional ``text``, ``speaker``.

    Relative audio paths are taken from the manifest's folder; every path is returned
    absolute. The file must be UTF-8 (with or without a byte-order mark).

    Raises
    ------
    BadManifest
        Missing or unreadable, not UTF-8, an unparseable line, or a row without
        ``audio``; the message gives file and line (a CSV's header is line 1).
    """
    path = Path(path)
    base = resolve_path(path).parent
    out = []
    for n, row in manifest_records(path):
        audio = _field(path, n, row, "audio", int)
        if audio is None:
            raise BadManifest(f"{path}:{n}: no 'audio' path; every row needs the audio file's path")
        out.append(ManifestRow(
            audio=resolve_path(base / audio),  # an absolute path stays as it is
            text=_field(path, n, row, "text"),
            speaker=_field(path, n, row, "speaker", int),
            line=n,
        ))
    return out


def _field(path: Path, line: int, row: dict, name: str, *also: type) -> str | None:
    """A manifest field as text, None when absent or blank.

    Raises
    ------
    BadManifest
        The value is neither a string nor one of ``also`` (a list, say, which would be
        stored as its Python spelling).
    """
    value = row.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, *also)):
        allowed = " or ".join(["a string", *("a whole number" for t in also if t is int)])
        raise BadManifest(f"{path}:{line}: '{name}' is {json.dumps(value)[:60]}, not {allowed}; "
                          "fix that line")
    text = str(value)
    return text if text.strip() else None


def rows_from_source(source: Path, extensions: tuple[str, ...],
                     problems: list[str] | None = None) -> list[ManifestRow]:
    """Files to import from a folder, a manifest, or a single audio file.

    ``problems``, when given, receives a line for each folder that could not be searched
    (see :func:`earmark.audio.find_audio`).

    Raises
    ------
    FileNotFoundError
        ``source`` does not exist, or is a folder holding no file with ``extensions``.
    BadManifest
        A malformed or empty manifest.
    """
    source = resolve_path(Path(source))
    if loops(source):
        raise BadManifest(f"{source}: a symbolic link that leads back to itself (a loop); point it "
                          "at the recordings, or give their folder or manifest instead")
    if source.is_dir():
        if (source / CONFIG_FILE).is_file():
            raise BadConfig(f"{source}: an earmark project folder, not recordings; import the "
                            "recordings it was made from, or its data with `earmark export "
                            f"{source}` and then the exported manifest.jsonl")
        found = au.find_audio(source, extensions, skip_marker=CONFIG_FILE, problems=problems)
        if not found:
            raise FileNotFoundError(_no_audio(source, extensions))
        return [ManifestRow(p) for p in found]
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    if source.suffix.lower() in (".jsonl", ".json", ".csv"):
        rows = read_manifest(source)
        if not rows:
            raise BadManifest(f"{source}: the manifest lists no audio; add one row per file "
                              "with an 'audio' path (and 'text', 'speaker' if known)")
        return rows
    if source.suffix.lower() not in extensions:  # as a folder's files are chosen
        raise BadManifest(f"{source}: neither an audio file ({', '.join(extensions)}) nor a manifest "
                          "(.jsonl, .csv); give one of those, or, if it is audio in another "
                          "format, add its ending to audio.extensions in the project's earmark.json")
    return [ManifestRow(source)]


def _no_audio(folder: Path, extensions: tuple[str, ...]) -> str:
    """Why a folder gave nothing to import, and what to do: the file types it does hold."""
    searched = f"{folder}: no audio files with the extensions {', '.join(extensions)} (searched recursively)"
    others = Counter(p.suffix.lower() or "(no extension)" for p in folder.rglob("*") if p.is_file())
    if not others:
        return f"{searched}; the folder is empty; give the folder that holds the recordings"
    common = sorted(others.items(), key=lambda e: (-e[1], e[0]))[:5]
    return (f"{searched}; it holds {sum(others.values())} other files ("
            + ", ".join(f"{n} {ext}" for ext, n in common) + "); convert them to WAV or FLAC, or "
            "add their extension to \"audio\": {\"extensions\": [...]} in the project's earmark.json "
            "if libsndfile reads it (AIFF, for one)")
