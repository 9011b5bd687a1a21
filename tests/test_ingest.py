"""Importing folders and manifests: rejections recorded, duplicates skipped, long files split."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import select

from _support import SR, tone, write_wav
from earmark.errors import BadManifest
from earmark.ingest import import_audio
from earmark.sources import read_manifest
from earmark.review.reports import status
from earmark.store.db import Clip, Correction, Source


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


def test_a_broken_link_and_a_pipe_among_the_recordings_are_named_not_skipped(project, tmp_path):
    import os

    src = tmp_path / "in"
    write_wav(src / "a.wav", _speechlike(2.0, 1))
    (src / "dead.wav").symlink_to(tmp_path / "moved_away.wav")
    os.mkfifo(src / "pipe.wav")  # opening it to decode would wait forever

    report = import_audio(project, src, progress=False)

    assert report.files_added == 1
    reasons = {p.split("/")[-1]: r for p, r in report.rejected}
    assert set(reasons) == {"dead.wav", "pipe.wav"}
    assert "moved_away.wav, which does not exist" in reasons["dead.wav"]
    assert "not a regular file" in reasons["pipe.wav"]


def test_a_project_among_the_recordings_is_not_imported_as_audio(tmp_path):
    from earmark.errors import BadConfig
    from earmark.store.project import init_project

    rec = tmp_path / "rec"
    write_wav(rec / "a.wav", _speechlike(2.0, 1))
    inner = init_project(rec / "proj")  # the project kept beside the recordings it holds
    assert import_audio(inner, rec, progress=False).clips_added == 1
    write_wav(rec / "b.wav", _speechlike(2.0, 2))
    again = import_audio(inner, rec, progress=False)
    assert (again.clips_added, again.duplicates, again.rejected) == (1, 1, [])  # not its own FLAC clips
    with pytest.raises(BadConfig, match="proj/audio: inside the project folder.*move them"):
        import_audio(inner, rec / "proj" / "audio", progress=False)
    (rec / "notes.tsv").write_text("audio\ttext\na.wav\thello\n")
    with pytest.raises(BadManifest, match=r"notes.tsv: neither an audio file .* nor a manifest \(.jsonl, .csv\)"):
        import_audio(inner, rec / "notes.tsv", progress=False)
    assert status(inner).rejected == []  # refused as a whole, not stored as a rejected recording
    other = init_project(tmp_path / "other")
    with pytest.raises(BadConfig, match="proj: an earmark project folder, not recordings"):
        import_audio(other, rec / "proj", progress=False)


def test_a_rejected_file_mended_in_place_is_no_longer_listed_as_rejected(project, tmp_path):
    from earmark.review.reports import status

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.wav").write_bytes(b"junk")
    assert len(import_audio(project, tmp_path / "in", progress=False).rejected) == 1
    write_wav(tmp_path / "in" / "a.wav", _speechlike(2.0))  # the file is fixed under its name
    assert import_audio(project, tmp_path / "in", progress=False).clips_added == 1
    assert status(project).rejected == []


def test_a_file_another_import_stores_meanwhile_counts_as_known_not_as_a_crash(project, tmp_path, monkeypatch):
    from earmark import audio as au

    write_wav(tmp_path / "in" / "a.wav", _speechlike(2.0, 1))
    write_wav(tmp_path / "in" / "b.wav", _speechlike(2.0, 2))
    real = au.load_audio

    def racing(path, cfg):  # a second `earmark import` of the folder gets to a.wav first
        if path.name == "a.wav":
            with project.store.session() as s:
                s.add(Source(path=str(path), sha256=au.file_sha256(path), status="ok"))
        return real(path, cfg)

    monkeypatch.setattr(au, "load_audio", racing)
    report = import_audio(project, tmp_path / "in", progress=False)
    assert (report.files_added, report.duplicates, report.rejected) == (1, 1, [])
    with project.store.session() as s:
        assert len(s.scalars(select(Source)).all()) == 2


def test_a_file_rejected_by_a_limit_imports_once_the_limit_is_raised(project, tmp_path):
    import json as _json

    from earmark.store.project import open_project
    from earmark.review.reports import status

    write_wav(tmp_path / "in" / "quiet.wav", 0.02 * _speechlike(2.0, 1))  # about -40 dBFS
    cfg_file = project.root / "earmark.json"
    cfg = _json.loads(cfg_file.read_text())
    cfg["audio"]["silence_dbfs"] = -30.0
    cfg_file.write_text(_json.dumps(cfg))
    strict = open_project(project.root)
    [(_, why)] = import_audio(strict, tmp_path / "in", progress=False).rejected
    assert "silent" in why and "audio.silence_dbfs" in why
    cfg["audio"]["silence_dbfs"] = -60.0
    cfg_file.write_text(_json.dumps(cfg))
    lenient = open_project(project.root)
    report = import_audio(lenient, tmp_path / "in", progress=False)
    assert (report.files_added, report.duplicates, report.rejected) == (1, 0, [])
    assert status(lenient).rejected == []


def test_reimport_adds_nothing(project, tmp_path):
    write_wav(tmp_path / "in" / "a.wav", _speechlike(2.0))
    (tmp_path / "in" / "bad.wav").write_bytes(b"junk")
    first = import_audio(project, tmp_path / "in", progress=False)
    # same content under another name is the same clip
    write_wav(tmp_path / "in" / "copy_of_a.wav", _speechlike(2.0))
    again = import_audio(project, tmp_path / "in", progress=False)
    assert first.clips_added == 1
    # the rejected file is tried again (its reason may be gone), and still fails: one row
    assert (again.clips_added, again.duplicates, len(again.rejected)) == (0, 2, 1)
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
    again = import_audio(project, tmp_path / "m.csv", progress=False)
    assert (again.duplicates, len(again.rejected)) == (1, 1)  # the missing file is looked for again


@pytest.mark.parametrize("content,match", [
    ('{"audio": "a.wav"}\n{not json\n', r"m.jsonl:2: not valid JSON"),
    ('{"audio": "a.wav"}\n\n{"text": "no audio"}\n', r"m.jsonl:3: no 'audio' path"),
    ('{"audio": null}\n', r"m.jsonl:1: no 'audio' path"),
    ('{"audio": " "}\n', r"m.jsonl:1: no 'audio' path"),
    ('["a.wav"]\n', r"m.jsonl:1: expected a JSON object"),
    ('{"audio": "a.wav", "speaker": ["x"]}\n', r"""m.jsonl:1: 'speaker' is \["x"\], not a string or a whole number"""),
    ('{"audio": "a.wav", "text": 123}\n', r"m.jsonl:1: 'text' is 123, not a string; fix that line"),
    ('{"audio": true}\n', r"m.jsonl:1: 'audio' is true, not a string"),
])
def test_bad_manifest_names_file_and_line(tmp_path, content, match):
    (tmp_path / "m.jsonl").write_text(content)
    with pytest.raises(BadManifest, match=match):
        read_manifest(tmp_path / "m.jsonl")


def test_a_manifest_takes_whole_numbers_as_speakers_and_paths(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"audio": 5, "speaker": 1034, "text": "Hi, there."}\n')
    [row] = read_manifest(tmp_path / "m.jsonl")
    assert (row.audio.name, row.speaker, row.text) == ("5", "1034", "Hi, there.")


@pytest.mark.parametrize("content,match", [
    ("audio,text\na.wav,one, two, three\n", r"m.csv:2: 4 fields where the header has 2; put a text holding commas in double quotes"),
    ('audio,text\na.wav,"left open\nb.wav,x\n', r"m.csv:2: not valid CSV \(unexpected end of data\)"),
])
def test_a_csv_row_that_would_lose_text_is_refused(tmp_path, content, match):
    (tmp_path / "m.csv").write_text(content)
    with pytest.raises(BadManifest, match=match):
        read_manifest(tmp_path / "m.csv")
    (tmp_path / "ok.csv").write_text('audio,text\na.wav,"one, two, three"\nb.wav,He said "hi"\n')
    assert [r.text for r in read_manifest(tmp_path / "ok.csv")] == ["one, two, three", 'He said "hi"']


def test_a_manifest_row_naming_a_folder_is_rejected_as_a_folder(project, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "m.jsonl").write_text('{"audio": "sub"}\n')
    report = import_audio(project, tmp_path / "m.jsonl", progress=False)
    assert "a folder, not an audio file" in report.rejected[0][1]


def test_a_missing_or_unreadable_manifest_is_named(tmp_path):
    with pytest.raises(BadManifest, match=r"gone.jsonl: no such manifest; check the path"):
        read_manifest(tmp_path / "gone.jsonl")
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(BadManifest, match=r"dir.jsonl: cannot read the manifest"):
        read_manifest(tmp_path / "dir.jsonl")


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


def test_importing_a_known_file_again_writes_its_missing_clips_again(project, tmp_path):
    from earmark.audio import read_clip

    pieces = []
    for i in range(4):  # 4 x 8.7 s: split into two clips
        pieces += [_speechlike(8.0, i), np.zeros(int(0.7 * SR), dtype=np.float32)]
    write_wav(tmp_path / "long.wav", np.concatenate(pieces))
    import_audio(project, tmp_path / "long.wav", progress=False)
    with project.store.session() as s:
        paths = [project.clip_path(p) for p in s.scalars(select(Clip.audio_path).order_by(Clip.offset))]
    before = read_clip(paths[1])
    paths[1].unlink()
    report = import_audio(project, tmp_path / "long.wav", progress=False)
    assert report.restored == 1 and report.duplicates == 1 and report.clips_added == 0
    assert np.array_equal(read_clip(paths[1]), before)
    assert import_audio(project, tmp_path / "long.wav", progress=False).restored == 0
    paths[0].write_bytes(b"junk, as a failing disk leaves it")  # damaged, not gone
    assert import_audio(project, tmp_path / "long.wav", progress=False).restored == 1
    assert read_clip(paths[0]).size > 0


def _rows_file(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_manifest_gives_known_clips_their_missing_reference_texts(project, tmp_path):
    for i in range(3):
        write_wav(tmp_path / "in" / f"{i}.wav", _speechlike(1.5, i))
    assert import_audio(project, tmp_path / "in", progress=False).clips_added == 3
    texts = ["one", "two", "three"]
    m = _rows_file(tmp_path / "m.jsonl", [{"audio": f"in/{i}.wav", "text": t} for i, t in enumerate(texts)])
    report = import_audio(project, m, progress=False)
    assert (report.duplicates, report.texts_added, report.text_conflicts, report.warnings) == (3, 3, 0, [])
    with project.store.session() as s:
        assert [c.reference_text for c in s.scalars(select(Clip).order_by(Clip.id))] == texts
        assert [r.reference_text for r in s.scalars(select(Source).order_by(Source.id))] == texts
    again = import_audio(project, m, progress=False)
    assert (again.texts_added, again.text_conflicts) == (0, 0)


def test_a_manifest_gives_known_clips_their_missing_speakers_and_keeps_stored_ones(project, tmp_path):
    for i in range(3):
        write_wav(tmp_path / "in" / f"{i}.wav", _speechlike(1.5, i))
    first = _rows_file(tmp_path / "m.jsonl", [{"audio": "in/0.wav", "speaker": "ann"},
                                              {"audio": "in/1.wav"}, {"audio": "in/2.wav"}])
    assert import_audio(project, first, progress=False).clips_added == 3
    later = _rows_file(tmp_path / "n.jsonl", [{"audio": "in/0.wav", "speaker": "bob", "text": "zero"},
                                              {"audio": "in/1.wav", "speaker": "bob"},
                                              {"audio": "in/2.wav", "speaker": "cy"}])
    report = import_audio(project, later, progress=False)
    assert (report.speakers_added, report.speaker_conflicts, report.texts_added) == (2, 1, 1)
    assert len(report.warnings) == 1 and "in/0.wav" in report.warnings[0] and "'ann'" in report.warnings[0]
    with project.store.session() as s:
        assert [c.speaker for c in s.scalars(select(Clip).order_by(Clip.id))] == ["ann", "bob", "cy"]
        assert [r.speaker for r in s.scalars(select(Source).order_by(Source.id))] == ["ann", "bob", "cy"]
    again = import_audio(project, later, progress=False)
    assert (again.speakers_added, again.speaker_conflicts) == (0, 1)


def test_import_command_counts_filled_and_refused_texts_and_speakers_in_english(project, tmp_path, capsys):
    from earmark.cli.main import main

    write_wav(tmp_path / "a.wav", _speechlike(1.5, 1))
    write_wav(tmp_path / "b.wav", _speechlike(1.5, 2))
    assert main(["import", str(project.root), str(_rows_file(tmp_path / "m.jsonl", [
        {"audio": "a.wav", "speaker": "ann", "text": "kept"}, {"audio": "b.wav"}])), "-q"]) == 0
    capsys.readouterr()
    assert main(["import", str(project.root), str(_rows_file(tmp_path / "n.jsonl", [
        {"audio": "a.wav", "speaker": "bob", "text": "other"}, {"audio": "b.wav", "speaker": "cy"}])), "-q"]) == 0
    out = capsys.readouterr().out
    assert "reference texts added to 0 known files; 1 conflicting text not taken (the stored one is kept)" in out
    assert "speakers added to 1 known file; 1 conflicting speaker not taken (the stored one is kept)" in out


def test_two_rows_for_one_audio_with_different_speakers_name_the_line(project, tmp_path):
    write_wav(tmp_path / "a.wav", _speechlike(1.5, 1))
    m = _rows_file(tmp_path / "m.jsonl", [{"audio": "a.wav", "speaker": "ann"},
                                          {"audio": "a.wav", "speaker": "bob"}])
    report = import_audio(project, m, progress=False)
    assert (report.clips_added, report.speaker_conflicts) == (1, 1)
    assert report.warnings == [f"{m}:2: {tmp_path / 'a.wav'} is the same audio as line 1 with a different "
                               "speaker; kept the speaker of line 1"]


def test_a_different_text_never_replaces_a_stored_one_and_is_named(project, tmp_path):
    write_wav(tmp_path / "a.wav", _speechlike(1.5, 1))
    import_audio(project, _rows_file(tmp_path / "m.jsonl", [{"audio": "a.wav", "text": "kept"}]), progress=False)
    report = import_audio(project, _rows_file(tmp_path / "n.jsonl", [{"audio": "a.wav", "text": "other"}]),
                          progress=False)
    assert (report.texts_added, report.text_conflicts) == (0, 1)
    assert len(report.warnings) == 1 and str(tmp_path / "a.wav") in report.warnings[0]
    with project.store.session() as s:
        assert s.scalars(select(Clip.reference_text)).one() == "kept"


def test_two_rows_for_one_audio_with_different_texts_name_the_line(project, tmp_path):
    write_wav(tmp_path / "a.wav", _speechlike(1.5, 1))
    m = _rows_file(tmp_path / "m.jsonl", [{"audio": "a.wav", "text": "first"},
                                          {"audio": "a.wav", "text": "first"},
                                          {"audio": "a.wav", "text": "second"}])
    report = import_audio(project, m, progress=False)
    assert (report.clips_added, report.duplicates, report.text_conflicts) == (1, 2, 1)
    assert report.warnings == [f"{m}:3: {tmp_path / 'a.wav'} is the same audio as line 1 with a "
                               "different text; kept the text of line 1"]


def test_a_changed_file_at_a_known_path_is_reported(project, tmp_path):
    path = write_wav(tmp_path / "in" / "a.wav", _speechlike(1.5, 1))
    import_audio(project, tmp_path / "in", progress=False)
    write_wav(path, _speechlike(2.0, 2))
    report = import_audio(project, tmp_path / "in", progress=False)
    assert report.clips_added == 1 and report.changed == [str(path)]
    assert any(str(path) in w and "changed" in w for w in report.warnings)


def test_paths_are_stored_absolute(project, tmp_path, monkeypatch):
    write_wav(tmp_path / "in" / "a.wav", _speechlike(1.5, 1))
    (tmp_path / "in" / "bad.wav").write_bytes(b"junk")
    write_wav(tmp_path / "b.wav", _speechlike(1.5, 2))
    (tmp_path / "m.csv").write_text("audio,text\nb.wav,hello\nmissing.wav,x\n")
    monkeypatch.chdir(tmp_path)
    report = import_audio(project, "in", progress=False)
    report2 = import_audio(project, "m.csv", progress=False)
    assert [p for p, _ in report.rejected + report2.rejected] == [str(tmp_path / "in" / "bad.wav"),
                                                                  str(tmp_path / "missing.wav")]
    with project.store.session() as s:
        paths = s.scalars(select(Source.path).order_by(Source.id)).all()
    assert paths == [str(tmp_path / p) for p in ("in/a.wav", "in/bad.wav", "b.wav", "missing.wav")]


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_a_latin1_manifest_is_refused_with_its_line(tmp_path, bom):
    (tmp_path / "m.csv").write_bytes(bom + "audio,text\na.wav,ok\nb.wav,café\n".encode("latin-1"))
    with pytest.raises(BadManifest, match=r"m.csv:3: not UTF-8 text \(byte 0xe9\).*save the manifest as UTF-8"):
        read_manifest(tmp_path / "m.csv")


@pytest.mark.parametrize("name,content", [
    ("m.csv", "audio,text\na.wav,café\n"),
    ("m.jsonl", json.dumps({"audio": "a.wav", "text": "café"}, ensure_ascii=False) + "\n"),
])
def test_a_manifest_with_a_byte_order_mark_is_read(tmp_path, name, content):
    (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + content.encode())  # as Excel's "CSV UTF-8"
    [row] = read_manifest(tmp_path / name)
    assert (row.audio, row.text) == (tmp_path / "a.wav", "café")


def test_csv_errors_give_the_file_line(tmp_path):
    (tmp_path / "m.csv").write_text('audio,text\na.wav,"two\nlines"\n,no audio\n')
    with pytest.raises(BadManifest, match=r"m.csv:4: no 'audio' path"):
        read_manifest(tmp_path / "m.csv")


def test_nothing_to_import_says_what_was_searched(project, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.m4a").write_bytes(b"x")
    (tmp_path / "in" / "b.aiff").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match=r"no audio files with the extensions \.wav.*\.aiff.*\.m4a"):
        import_audio(project, tmp_path / "in", progress=False)
    (tmp_path / "none").mkdir()
    with pytest.raises(FileNotFoundError, match=r"none: no audio files .* the folder is empty"):
        import_audio(project, tmp_path / "none", progress=False)
    (tmp_path / "m.jsonl").write_text("\n")
    with pytest.raises(BadManifest, match="m.jsonl: the manifest lists no audio"):
        import_audio(project, tmp_path / "m.jsonl", progress=False)


def test_a_file_name_holding_terminal_codes_is_printed_escaped(project, tmp_path, capsys):
    """A name from the disk must not recolour the terminal or split a line of the report."""
    from earmark.cli.main import main

    src = tmp_path / "in"
    src.mkdir()
    (src / "bad\x1b[31mred\nline.wav").write_bytes(b"\x00\x01" * 500)
    write_wav(src / "a.wav", _speechlike(1.5, 1))
    assert main(["import", str(project.root), str(src), "-q"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "bad\\x1b[31mred\\nline.wav: cannot decode" in out
    assert main(["status", str(project.root)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "bad\\x1b[31mred\\nline.wav" in out
