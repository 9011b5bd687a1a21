"""Export of the corrected data: JSONL, NeMo and Hugging Face audiofolder (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
from sqlalchemy import select

from _support import sample_rows

CLIPS = ["s06", "s09", "s13", "s16", "s19", "s23"]


@pytest.fixture
def corrected(tmp_path):
    """A project with 6 clips: 4 corrected (one twice), 1 flagged, 1 untouched."""
    from earmark.ingest import import_audio
    from earmark.store.project import init_project
    from earmark.store.db import Clip, Correction

    manifest = tmp_path / "in.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in sample_rows() if Path(r["audio"]).stem in CLIPS))
    project = init_project(tmp_path / "proj")
    import_audio(project, manifest, progress=False)
    with project.store.session() as s:
        clips = list(s.scalars(select(Clip).order_by(Clip.id)))
        for c in clips[:4]:
            s.add(Correction(clip_id=c.id, text="first try", annotator="a"))
        s.flush()
        for c in clips[:4]:
            s.add(Correction(clip_id=c.id, text=c.reference_text, annotator="b"))  # the newest wins
        s.add(Correction(clip_id=clips[4].id, flag="no speech", annotator="a"))
    return project, {c.id: c.reference_text for c in clips[:4]}


def read_lines(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def test_jsonl_export_holds_the_newest_unflagged_corrections(corrected, tmp_path):
    from earmark.export import export
    from earmark.sources import read_manifest

    project, texts = corrected
    r = export(project, "jsonl", tmp_path / "out")
    rows = read_lines(tmp_path / "out" / "manifest.jsonl")
    assert r.clips == 4 and len(rows) == 4 and r.files == (tmp_path / "out" / "manifest.jsonl",)
    assert {row["clip_id"]: row["text"] for row in rows} == texts
    assert {row["split"] for row in rows} == {"train", "dev"}
    assert all(Path(row["audio"]).is_absolute() and Path(row["audio"]).is_file() for row in rows)
    # earmark's own importer reads it back
    back = read_manifest(tmp_path / "out" / "manifest.jsonl")
    assert [b.text for b in back] == [row["text"] for row in rows]


def test_nemo_export_writes_train_and_dev_manifests(corrected, tmp_path):
    from earmark.export import export

    project, texts = corrected
    r = export(project, "nemo", tmp_path / "nemo")
    train = read_lines(tmp_path / "nemo" / "train_manifest.json")
    dev = read_lines(tmp_path / "nemo" / "dev_manifest.json")
    assert len(train) + len(dev) == 4 and train and dev
    for row in train + dev:
        assert set(row) == {"audio_filepath", "duration", "text"}
        info = sf.info(row["audio_filepath"])
        assert info.samplerate == 16000
        assert row["duration"] == pytest.approx(info.frames / info.samplerate, abs=0.01)
    assert sorted(row["text"] for row in train + dev) == sorted(texts.values())
    assert len(r.files) == 2


def test_hf_export_is_an_audiofolder(corrected, tmp_path):
    from earmark.export import export

    project, texts = corrected
    out = tmp_path / "hf"
    export(project, "jsonl", out)  # an earlier export in the folder is replaced, not merged
    export(project, "hf", out)
    assert sorted(p.name for p in out.iterdir()) == [".earmark-export", "train", "validation"]
    assert (out / ".earmark-export").read_text().strip() == "hf"
    seen = []
    for split in ("train", "validation"):
        meta = read_lines(out / split / "metadata.jsonl")
        for row in meta:
            audio, sr = sf.read(out / split / row["file_name"])
            assert sr == 16000 and len(audio) > 0
            seen.append(row["transcription"])
    assert sorted(seen) == sorted(texts.values())


def test_export_errors_are_actionable(project, tmp_path):
    from earmark.errors import BadConfig, NoCorrections
    from earmark.export import export

    with pytest.raises(NoCorrections, match="earmark review"):
        export(project, "jsonl", tmp_path / "x")
    with pytest.raises(BadConfig, match="jsonl, nemo, hf"):
        export(project, "csv", tmp_path / "x")


def test_export_to_a_folder_that_cannot_be_written_names_it(corrected, tmp_path):
    from earmark.errors import BadConfig
    from earmark.export import export

    (tmp_path / "f").write_text("")  # below a file no folder can be made
    with pytest.raises(BadConfig, match=r"out/x: cannot write there .*--out"):
        export(corrected[0], "jsonl", tmp_path / "f" / "out" / "x")


def test_export_command(corrected, tmp_path, capsys):
    from earmark.cli.main import main

    project, _ = corrected
    assert main(["export", str(project.root), "--format", "nemo", "--out", str(tmp_path / "n")]) == 0
    assert "exported 4 clips" in capsys.readouterr().out


def test_export_refuses_a_folder_holding_other_files(corrected, tmp_path):
    from earmark.errors import BadConfig
    from earmark.export import export

    project, _ = corrected
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "thesis.txt").write_text("months of work")
    with pytest.raises(BadConfig, match=r"userdir: the folder holds files .* choose a new or empty folder"):
        export(project, "jsonl", user)
    assert (user / "thesis.txt").read_text() == "months of work"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left


def test_export_refuses_an_earlier_export_a_person_added_files_to(corrected, tmp_path):
    from earmark.errors import BadConfig
    from earmark.export import export

    project, _ = corrected
    out = tmp_path / "hf"
    export(project, "hf", out)
    (out / "notes.txt").write_text("which clips I doubted")
    (out / "train" / "extra.wav").write_bytes(b"RIFF")
    with pytest.raises(BadConfig, match=r"hf: the folder holds files that no earmark export wrote"):
        export(project, "hf", out)
    (out / "notes.txt").unlink()
    with pytest.raises(BadConfig, match="no earmark export wrote"):  # also inside a split folder
        export(project, "jsonl", out)
    assert (out / "train" / "extra.wav").read_bytes() == b"RIFF"
    (out / "train" / "extra.wav").unlink()
    assert export(project, "jsonl", out).clips == 4  # only the export's own files: replaced


def test_export_refuses_the_project_its_folders_and_the_current_folder(corrected, tmp_path, monkeypatch):
    from earmark.errors import BadConfig
    from earmark.export import export

    project, _ = corrected
    before = sorted(p.relative_to(project.root) for p in project.root.rglob("*"))
    for out, match in [(project.root, "the project folder itself"),
                       (tmp_path, "holds the project"),
                       (project.root / "audio", "inside the project's audio/"),
                       (project.root / "audio" / "new", "inside the project's audio/"),
                       (project.root / "models", "inside the project's models/"),
                       (project.root / "earmark.db", "a file, not a folder")]:
        with pytest.raises(BadConfig, match=match):
            export(project, "jsonl", out)
    empty_cwd = tmp_path / "here"
    empty_cwd.mkdir()
    monkeypatch.chdir(empty_cwd)
    with pytest.raises(BadConfig, match="current folder"):
        export(project, "jsonl", ".")
    assert sorted(p.relative_to(project.root) for p in project.root.rglob("*")) == before


def test_reexport_replaces_an_earlier_export_an_empty_folder_or_an_unmarked_old_one(corrected, tmp_path):
    from earmark.export import export

    project, _ = corrected
    empty = tmp_path / "empty"
    empty.mkdir()
    assert export(project, "nemo", empty).clips == 4
    export(project, "jsonl", empty)  # the same folder again, another format
    assert sorted(p.name for p in empty.iterdir()) == [".earmark-export", "manifest.jsonl"]
    # the default folder, as exports wrote it before the marker existed
    legacy = project.root / "exports" / "jsonl"
    legacy.mkdir(parents=True)
    (legacy / "manifest.jsonl").write_text("{}\n")
    assert export(project, "jsonl").path == legacy.resolve()
    assert len(read_lines(legacy / "manifest.jsonl")) == 4


def test_a_killed_export_leaves_the_earlier_one_whole(corrected, tmp_path, monkeypatch):
    from earmark import export as ex

    project, _ = corrected
    out = tmp_path / "ds"
    ex.export(project, "jsonl", out)
    earlier = (out / "manifest.jsonl").read_text()

    def killed(project, rows, tmp):
        (tmp / "manifest.jsonl").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setitem(ex.WRITERS, "jsonl", killed)
    with pytest.raises(KeyboardInterrupt):
        ex.export(project, "jsonl", out)
    assert (out / "manifest.jsonl").read_text() == earlier
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ds")] == []
    # a kill between setting the earlier export aside and renaming the new one in:
    # the next export puts the earlier one back before it starts
    out.rename(tmp_path / ".ds.old-x1")
    with pytest.raises(KeyboardInterrupt):
        ex.export(project, "jsonl", out)
    assert (out / "manifest.jsonl").read_text() == earlier


def test_export_names_corrected_clips_whose_audio_is_gone(corrected, tmp_path):
    from earmark.errors import UnreadableAudio
    from earmark.export import export
    from earmark.store.db import Clip

    project, _ = corrected
    with project.store.session() as s:
        clip = s.scalars(select(Clip).order_by(Clip.id)).first()
    project.clip_path(clip.audio_path).unlink()
    for fmt in ("jsonl", "hf"):
        with pytest.raises(UnreadableAudio, match=f"1 corrected clip.*clip ids {clip.id};.*import their source"):
            export(project, fmt, tmp_path / fmt)
        assert not (tmp_path / fmt).exists()
