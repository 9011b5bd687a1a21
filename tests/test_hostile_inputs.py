"""Property: whatever a folder or manifest holds, ``import`` never raises, names every bad
file with a reason, and imports every good one.

Hypothesis builds folders of hand-made WAV files (odd rates, sample widths and channel
counts, damaged headers, cut-off data), junk, links (to themselves, to nothing, to each
other), files nobody can read, folders named like recordings and names with any
characters, and manifests naming them. Files are a fraction of a second long, so a run
of all examples takes well under a minute.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from hostile import tone, wav_bytes

#: no file name holds "/" or NUL; lone surrogates cannot be encoded
NAME = st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
               min_size=1, max_size=12)


@dataclass(frozen=True)
class Entry:
    """One thing put in the folder: what it is, and whether the import must take it."""

    kind: str
    name: str
    good: bool
    rate: int = 16_000
    width: int = 2
    channels: int = 1
    cut: float = 1.0  # share of the bytes kept


GOOD = st.builds(lambda name, rate, width, channels: Entry("good", name, True, rate, width, channels),
                 NAME, st.sampled_from([8_000, 11_025, 16_000, 22_050, 44_100, 48_000]),
                 st.sampled_from([1, 2, 3, 4]), st.sampled_from([1, 2]))
BAD = st.one_of(
    st.builds(lambda n, r: Entry("bad_rate", n, False, rate=r), NAME, st.sampled_from([0, 2**31 - 1])),
    st.builds(lambda n, c: Entry("cut", n, False, cut=c), NAME, st.floats(0.0, 0.5)),
    st.builds(lambda n: Entry("empty", n, False), NAME),
    st.builds(lambda n: Entry("junk", n, False), NAME),
    st.builds(lambda n: Entry("text", n, False), NAME),
    st.builds(lambda n: Entry("self_link", n, False), NAME),
    st.builds(lambda n: Entry("dangling", n, False), NAME),
    st.builds(lambda n: Entry("io_error", n, False), NAME),
)
OTHER = st.one_of(  # not files to import: each must be left out without stopping the import
    st.builds(lambda n: Entry("folder_named_wav", n, False), NAME),
    st.builds(lambda n: Entry("link_up", n, False), NAME),
)


def write_entry(folder: Path, i: int, e: Entry, ext: str) -> Path | None:
    """Write ``e`` as the ``i``-th entry; returns the path of a file to import (None: no file)."""
    path = folder / f"{i:02d}_{e.name}{ext}"
    if e.kind == "good":
        # a frequency per entry: two good files never hold the same bytes (a duplicate)
        audio = tone(0.5, freq=200.0 + 37 * i, sr=e.rate)
        path.write_bytes(wav_bytes(audio, e.rate, e.width, e.channels))
    elif e.kind == "bad_rate":
        path.write_bytes(wav_bytes(tone(0.5), header_rate=e.rate))
    elif e.kind == "cut":
        data = wav_bytes(tone(0.5))
        path.write_bytes(data[: 44 + int(e.cut * (len(data) - 44))])
    elif e.kind == "empty":
        path.write_bytes(b"")
    elif e.kind == "junk":
        path.write_bytes(bytes(range(256)) * 4)
    elif e.kind == "text":
        path.write_text(f"not audio {e.name}\n" * 5, errors="surrogateescape")
    elif e.kind == "self_link":
        os.symlink(path.name, path)
    elif e.kind == "dangling":
        os.symlink(f"missing/{i}.wav", path)
    elif e.kind == "io_error":  # reading it fails for every user, root too
        os.symlink("/proc/self/mem", path)
    elif e.kind == "folder_named_wav":
        path.mkdir()
        return None
    elif e.kind == "link_up":
        os.symlink("..", folder / f"{i:02d}_{e.name}")
        return None
    return path


def _content(path: Path) -> object:
    """What makes two files the same to the import: their bytes, or, if unreadable, the
    file their path leads to (two links to one unreadable file are one file)."""
    try:
        return path.read_bytes()
    except OSError:
        return os.path.realpath(path)


def check_report(report, files: dict[Path, Entry], clips: int) -> None:
    """Every good file imported, every bad one rejected with a reason, none unaccounted.

    A bad file with the same bytes as one rejected before it (two empty files) counts as
    a duplicate of it, as any known content does.
    """
    rejected = dict(report.rejected)

    def reason(path: Path) -> str | None:
        # a manifest's paths are stored with their links followed
        return rejected.get(str(path), rejected.get(os.path.realpath(path)))

    rejected_content = [_content(p) for p in files if reason(p) is not None]
    copies = 0
    for path, e in files.items():
        if e.good:
            assert reason(path) is None, (e, reason(path))
        elif reason(path) is not None:
            assert reason(path).strip(), e
        else:
            assert _content(path) in rejected_content, (e, sorted(rejected))
            copies += 1
    assert copies <= report.duplicates
    assert report.files_added == sum(e.good for e in files.values())
    assert clips == report.clips_added


# no shrinking: a failing example is reported as found, and a run stays within a minute
@settings(max_examples=35, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(good=st.lists(GOOD, min_size=1, max_size=3), bad=st.lists(BAD, max_size=4),
       other=st.lists(OTHER, max_size=2), ext=st.sampled_from([".wav", ".WAV"]),
       locked=st.booleans(), as_manifest=st.booleans(),
       texts=st.lists(st.text(max_size=20), max_size=8))
def test_import_never_raises_and_accounts_for_every_file(good, bad, other, ext, locked, as_manifest, texts):
    from earmark.ingest import import_audio
    from earmark.store.project import init_project
    from earmark.review.reports import status

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        files: dict[Path, Entry] = {}
        for i, e in enumerate([*good, *bad, *other]):
            path = write_entry(src, i, e, ext)
            if path is not None:
                files[path] = e
        if locked:  # no read permission on one file (root still reads it: then it is good)
            path = next(iter(files))
            path.chmod(0)
        source = src
        if as_manifest:
            source = Path(tmp) / "m.jsonl"
            rows = [{"audio": p.name if i % 2 else str(p), "text": texts[i % len(texts)] if texts else None}
                    for i, p in enumerate(files)]
            source.write_text("".join(json.dumps(r) + "\n" for r in rows))
            # relative paths are taken from the manifest's folder
            source = source.replace(src / "m.jsonl")
        project = init_project(Path(tmp) / "proj")
        try:
            report = import_audio(project, source, progress=False)
            if locked and os.geteuid() != 0:
                files[next(iter(files))] = Entry("locked", "", False)
            check_report(report, files, status(project).clips)
            if not as_manifest:
                said = " ".join(report.warnings)
                for i, e in enumerate(other):
                    if e.kind == "folder_named_wav":
                        assert "a folder named like an audio file" in said
            again = import_audio(project, source, progress=False)  # a rerun hits the same files
            assert again.files_added == 0
        finally:
            project.store.dispose()
