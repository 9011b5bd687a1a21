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
    from earmark.project import init_project
    from earmark.store import Clip, Correction

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
    from earmark.ingest import read_manifest

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
    out.mkdir()
    (out / "stale.txt").write_text("from an older export")  # replaced, not merged
    export(project, "hf", out)
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in out.iterdir()) == ["train", "validation"]
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


def test_export_command(corrected, tmp_path, capsys):
    from earmark.cli import main

    project, _ = corrected
    assert main(["export", str(project.root), "--format", "nemo", "--out", str(tmp_path / "n")]) == 0
    assert "exported 4 clips" in capsys.readouterr().out
