"""Importing folders and manifests: rejections recorded, duplicates skipped, long files split."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import select

from _support import SR, tone, write_wav
from earmark.errors import BadManifest
from earmark.ingest import import_audio, read_manifest
from earmark.store import Clip, Correction, Source


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (tone(seconds, freq=180 + 40 * seed) + 0.01 * rng.standard_normal(int(seconds * SR))).astype(np.float32)


def test_folder_import_is_recursive_and_records_every_bad_file(project, tmp_path):
    src = tmp_path / "in"
    write_wav(src / "good" / "a.wav", _speechlike(2.0, 1))
    write_wav(src / "b.flac", _speechlike(3.0, 2))
    (src / "garbage.wav").write_bytes(b"\x00\x01" * 500)
    write_wav(src / "silent.wav", np.zeros(2 * SR, dtype=np.float32))
    write_wav(src / "empty.wav", np.zeros(0, dtype=np.float32))
    nan = _speechlike(1.0, 3)
    nan[5] = np.inf
    write_wav(src / "inf.wav", nan, subtype="FLOAT")

    report = import_audio(project, src, progress=False)

    assert (report.files_added, report.clips_added) == (2, 2)
    reasons = {p.split("/")[-1]: r for p, r in report.rejected}
    assert set(reasons) == {"garbage.wav", "silent.wav", "empty.wav", "inf.wav"}
    assert "cannot decode" in reasons["garbage.wav"]
    assert "silent" in reasons["silent.wav"]
    assert "empty" in reasons["empty.wav"]
    assert "NaN or infinite" in reasons["inf.wav"]
    with project.store.session() as s:
        stored = {r.path.split("/")[-1]: r.reason for r in s.scalars(select(Source).where(Source.status == "rejected"))}
    assert stored.keys() == reasons.keys()


def test_reimport_adds_nothing(project, tmp_path):
    write_wav(tmp_path / "in" / "a.wav", _speechlike(2.0))
    (tmp_path / "in" / "bad.wav").write_bytes(b"junk")
    first = import_audio(project, tmp_path / "in", progress=False)
    # same content under another name is the same clip
    write_wav(tmp_path / "in" / "copy_of_a.wav", _speechlike(2.0))
    again = import_audio(project, tmp_path / "in", progress=False)
    assert first.clips_added == 1
    assert (again.clips_added, again.duplicates, len(again.rejected)) == (0, 3, 0)
    with project.store.session() as s:
        assert len(s.scalars(select(Clip)).all()) == 1
        assert len(s.scalars(select(Source)).all()) == 2


def test_manifest_keeps_text_as_reference_not_correction(project, tmp_path):
    write_wav(tmp_path / "x.wav", _speechlike(2.0, 4))
    write_wav(tmp_path / "y.wav", _speechlike(2.5, 5))
    (tmp_path / "m.jsonl").write_text(
        json.dumps({"audio": "x.wav", "text": "hello there", "speaker": "s1"}) + "\n\n"
        + json.dumps({"audio": str(tmp_path / "y.wav")}) + "\n")
    import_audio(project, tmp_path / "m.jsonl", progress=False)
    with project.store.session() as s:
        clips = s.scalars(select(Clip).order_by(Clip.id)).all()
        assert [(c.reference_text, c.speaker) for c in clips] == [("hello there", "s1"), (None, None)]
        assert s.scalars(select(Correction)).all() == []


def test_csv_manifest_and_missing_file(project, tmp_path):
    write_wav(tmp_path / "x.wav", _speechlike(2.0, 6))
    (tmp_path / "m.csv").write_text("audio,text,speaker\nx.wav,some words,7\nnope.wav,,\n")
    report = import_audio(project, tmp_path / "m.csv", progress=False)
    assert report.clips_added == 1
    assert len(report.rejected) == 1 and "not found" in report.rejected[0][1]
    assert import_audio(project, tmp_path / "m.csv", progress=False).duplicates == 2


@pytest.mark.parametrize("content,match", [
    ('{"audio": "a.wav"}\n{not json\n', r"m.jsonl:2: not valid JSON"),
    ('{"text": "no audio"}\n', r"row 1 has no 'audio'"),
    ('["a.wav"]\n', r"m.jsonl:1: expected a JSON object"),
])
def test_bad_manifest_names_file_and_line(tmp_path, content, match):
    (tmp_path / "m.jsonl").write_text(content)
    with pytest.raises(BadManifest, match=match):
        read_manifest(tmp_path / "m.jsonl")


def test_csv_without_audio_column(tmp_path):
    (tmp_path / "m.csv").write_text("path,text\na.wav,x\n")
    with pytest.raises(BadManifest, match="no 'audio' column"):
        read_manifest(tmp_path / "m.csv")


def test_long_file_is_split_into_clips_that_remember_their_parent(project, tmp_path):
    pieces = []
    for i in range(8):  # 8 x (8 s sound + 0.7 s pause) = 69.6 s
        pieces += [_speechlike(8.0, i), np.zeros(int(0.7 * SR), dtype=np.float32)]
    write_wav(tmp_path / "long.wav", np.concatenate(pieces))
    report = import_audio(project, tmp_path / "long.wav", progress=False)
    assert report.clips_added >= 3
    with project.store.session() as s:
        clips = s.scalars(select(Clip).order_by(Clip.offset)).all()
        src = s.scalars(select(Source)).one()
    assert all(c.duration <= 30.0 for c in clips)
    assert {c.source_id for c in clips} == {src.id}
    assert clips[0].offset == 0.0 and clips[1].offset > 20.0
    assert sum(c.duration for c in clips) == pytest.approx(src.duration, abs=0.05)
    for c in clips:  # each stored clip is 16 kHz audio of the recorded length
        from earmark.audio import read_clip
        assert read_clip(project.clip_path(c.audio_path)).size == pytest.approx(c.duration * SR, abs=2)
