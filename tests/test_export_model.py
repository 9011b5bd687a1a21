"""export-model: a version as a transformers folder and as a CTranslate2 model.

The slow tests export the base model and a LoRA fine-tuned version both ways, load them
in transformers and faster-whisper, and compare their transcripts and word times with
earmark's own decoding of the same version on shipped clips. earmark decodes each clip
alone there (``pack=False``): the exported engines decode clip by clip, and packing
several clips into one window changes what Whisper writes (on these synthetic drug
names by far more than the conversion does), so it would hide what the comparison is for.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from _support import sample_rows, wer


@pytest.fixture(scope="module", autouse=True)
def offline():
    """Everything must build and load without the network (the hub's offline switches)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


# the plain sentence of each voice (the drug names of the other clips leave tiny.en
# between two readings, where a rounding difference may pick either)
CLIPS = ("s06", "s09", "s13", "s16", "s19", "s23", "s26", "s30")


# --- fast ----------------------------------------------------------------------------

def test_a_folder_that_is_not_empty_is_refused(tmp_path):
    from earmark.errors import BadConfig
    from earmark.models.export import check_out

    check_out(tmp_path / "new")
    check_out(tmp_path)  # empty
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(BadConfig, match="not empty"):
        check_out(tmp_path)


def test_cli_names_the_known_versions_for_an_unknown_one(project, tmp_path, capsys):
    from earmark.cli.main import main

    code = main(["export-model", str(project.root), "--model", "ft-404", "--format", "ct2",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "ft-404" in err and "tiny.en" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_cli_refuses_a_full_folder_and_a_quantized_hf_export(project, tmp_path, capsys):
    from earmark.cli.main import main

    full = tmp_path / "full"
    full.mkdir()
    (full / "a.txt").write_text("x")
    assert main(["export-model", str(project.root), "--format", "hf", "--out", str(full)]) == 2
    assert "not empty" in capsys.readouterr().err and (full / "a.txt").read_text() == "x"


def test_a_missing_library_names_the_extra(project, tmp_path, monkeypatch):
    from earmark.errors import MissingExtra
    from earmark.models.export import export_model

    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # as if not installed
    with pytest.raises(MissingExtra, match=r"earmark\[export\]"):
        export_model(project, None, "ct2", tmp_path / "out")


# --- slow: the real model -------------------------------------------------------------

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The base model and a LoRA fine-tuned version, each exported as hf and ct2."""
    from test_finetune import SMALL, make_project

    from earmark.models.export import export_model
    from earmark.train.finetune import finetune

    root = tmp_path_factory.mktemp("export")
    project = make_project(root / "proj")
    ft = finetune(project, replace(SMALL, mode="lora", max_steps=2, lr=1e-3), progress=False)
    out = {}
    for version in ("tiny.en", ft.version):
        for fmt in ("hf", "ct2"):
            out[version, fmt] = export_model(project, version, fmt, root / f"{version}-{fmt}")
    return project, ft.version, out


def _earmark(project, version: str, audios):
    from earmark.config import DecodeConfig
    from earmark.decode.decoder import Decoder
    from earmark.models.versions import load_version, lookup_version

    model = load_version(project, lookup_version(project, version), "cpu")
    return model, Decoder(model, replace(DecodeConfig(device="cpu"), pack=False)).transcribe(audios)


def _corpus_wer(reference: list[str], hypothesis: list[str]) -> float:
    return wer(" ".join(reference), " ".join(hypothesis))


@pytest.mark.slow
@pytest.mark.parametrize("which", ["base", "finetuned"])
def test_exports_transcribe_as_earmark_does(exported, which):
    from earmark import audio as au
    from earmark.models.loading import alignment_heads_of
    from earmark.models.served import faster_whisper_texts, transformers_texts

    project, ft_name, out = exported
    version = "tiny.en" if which == "base" else ft_name
    audios = [au.read_clip(r["audio"]) for r in sample_rows() if Path(r["audio"]).stem in CLIPS]
    model, ours = _earmark(project, version, audios)
    heads = alignment_heads_of(model)

    ct2_dir, hf_dir = out[version, "ct2"].out, out[version, "hf"].out
    assert json.loads((ct2_dir / "config.json").read_text())["alignment_heads"] == heads
    assert json.loads((hf_dir / "generation_config.json").read_text())["alignment_heads"] == heads
    assert (hf_dir / "tokenizer.json").is_file() and (ct2_dir / "tokenizer.json").is_file()

    fw = faster_whisper_texts(ct2_dir, audios)
    hf = transformers_texts(hf_dir, audios)
    texts = [t.text for t in ours]
    assert all(t.strip() for t in texts)  # a real comparison, not of empty strings
    assert _corpus_wer(texts, [t.text for t in fw]) <= 0.02
    assert _corpus_wer(texts, [t.text for t in hf]) <= 0.02
    diffs = [abs(a.start - b[1]) for t, f in zip(ours, fw)
             if [w.word.strip() for w in t.words] == [w[0].strip() for w in f.words]
             for a, b in zip(t.words, f.words)]
    assert len(diffs) >= 10  # most clips' words line up one to one
    assert sum(diffs) / len(diffs) <= 0.2
