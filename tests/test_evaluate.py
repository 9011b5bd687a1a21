"""Evaluation metrics on hand-made inputs (fast), and one real evaluation (slow)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from earmark.evaluate.metrics import (confidence_quality, error_rates, expected_calibration_error,
                              normalize, prob_fewer_errors, relative_reduction, roc_auc,
                              scored_groups, word_error_labels)


def test_normalize_uses_whispers_english_normalizer():
    assert normalize("Kate LOVES China!") == "kate loves china"
    assert normalize("TWO SIX FOUR EIGHT") == normalize("2648.")
    assert normalize("") == ""


def test_a_read_digit_string_is_one_number_however_it_is_written():
    # Whisper's normalizer joins spelled digits but not written ones ("1 0" even becomes
    # "one 0"): without joining, a right transcript scores 1 substitution + 3 insertions
    for written in ("2, 5, 9, 9.", "2 5 9 9", "2599", "Two five nine nine"):
        assert normalize(written) == normalize("TWO FIVE NINE NINE") == "2599"
    assert normalize("1 0 1 0") == normalize("ONE ZERO ONE ZERO") == "1010"
    assert normalize("one 5 9 9") == "1599"
    assert error_rates(["TWO FIVE NINE NINE"], ["2, 5, 9, 9."]).wer == 0.0
    # words stay words: only digits next to digits are joined
    assert normalize("I have 1 cat and one dog") == "i have one cat and one dog"
    assert normalize("room 4 and 5") == "room 4 and 5"


def test_error_rates_pool_errors_over_clips():
    refs = ["the cat sat", "a dog"]
    hyps = ["The cat sad.", "a dog barked"]  # 1 substitution + 1 insertion over 5 words
    r = error_rates(refs, hyps)
    assert r.wer == pytest.approx(2 / 5)
    assert (r.substitutions, r.deletions, r.insertions, r.ref_words) == (1, 0, 1, 5)
    assert 0 < r.cer < 1
    assert r.clip_errors == (1, 1)


def test_clip_errors_count_every_edit_of_each_scored_clip():
    refs = ["red green blue pink", "[noise]", "go home now", "yes"]
    hyps = ["red blue pink gray black", "", "go", "yes"]  # 1 del + 2 ins; skipped; 2 del; none
    r = error_rates(refs, hyps)
    assert r.clip_errors == (3, 2, 0)  # the skipped clip has no entry
    assert sum(r.clip_errors) == r.substitutions + r.deletions + r.insertions


def test_scored_groups_line_up_with_the_clip_errors():
    refs = ["red green blue pink", "[noise]", "go home now", "yes"]
    r = error_rates(refs, ["red blue pink gray black", "", "go", "yes"])
    groups = scored_groups(refs, ["s1", "s2", "s2", "s3"])
    assert groups == ["s1", "s2", "s3"] and len(groups) == len(r.clip_errors)


def test_paired_bootstrap_tells_a_real_difference_from_noise():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 4, size=30)
    assert prob_fewer_errors(base - (base > 0), base) > 0.99  # one error fewer wherever there was one
    assert prob_fewer_errors(base, base - (base > 0)) == 0.0
    assert prob_fewer_errors(base, base) == 0.0  # ties are not "fewer"
    noisy = base.copy()
    noisy[:2] += 1  # two more errors on two clips, fewer on two others
    noisy[2:4] = np.maximum(noisy[2:4] - 1, 0)
    assert 0.05 < prob_fewer_errors(base, noisy) < 0.9
    with pytest.raises(ValueError, match="same clips"):
        prob_fewer_errors([1, 2], [1])


def test_relative_reduction_interval_resamples_whole_speakers():
    # 10 speakers of 5 clips; B halves A's errors for every speaker but one
    a = np.full(50, 4)
    b = np.full(50, 2)
    b[:5] = 4
    speakers = np.repeat(np.arange(10), 5)
    r = relative_reduction(a, b, speakers, rounds=4000)
    assert r.relative == pytest.approx(1 - 110 / 200)
    assert r.groups == 10 and r.level == 0.95
    assert r.low < r.relative < r.high <= 0.5  # no draw of speakers does better than halving
    assert math.isnan(r.reach)
    assert relative_reduction(a, b, speakers, target=0.5).reach > 0.2  # draws without the unhelped one
    assert relative_reduction(a, b, speakers, target=0.51).reach == 0.0
    assert relative_reduction(a, b, speakers, target=0.0).reach == 1.0
    by_clip = relative_reduction(a, b, rounds=4000)
    assert by_clip.groups == 50
    # the clips of the one unhelped speaker are drawn together: a wider interval
    assert (r.high - r.low) > (by_clip.high - by_clip.low)
    same = relative_reduction(a, a, speakers)
    assert (same.relative, same.low, same.high) == (0.0, 0.0, 0.0)
    one = relative_reduction(a, b, ["s1"] * 50, target=0.4)
    assert one.relative == r.relative and one.groups == 1
    assert math.isnan(one.low) and math.isnan(one.high) and one.reach == 1.0
    with pytest.raises(ValueError, match="same clips"):
        relative_reduction([1, 2], [1])
    with pytest.raises(ValueError, match="group labels"):
        relative_reduction([1, 2], [1, 1], ["s1"])
    with pytest.raises(ValueError, match="no word errors"):
        relative_reduction([0, 0], [0, 1])


def test_error_rates_skip_empty_references():
    r = error_rates(["[noise]", "hello world"], ["noise", "hello world"])
    assert r.skipped == 1 and r.wer == 0.0
    assert math.isnan(error_rates([""], ["x"]).wer)
    with pytest.raises(ValueError):
        error_rates(["a"], [])


def test_word_error_labels_mark_substitutions_and_insertions():
    words = [" The", " cat", " sad", " very", " well."]
    assert word_error_labels("the cat sat well", words) == [0, 0, 1, 1, 0]


def test_word_error_labels_follow_the_normalizer_across_words():
    # "two six four eight" normalizes to one token "2648", owned by the last word
    assert word_error_labels("2648", [" Two", " six", " four", " eight."]) == [None, None, None, 0]
    # a punctuation-only word owns no token and is not scored
    assert word_error_labels("yes", [" Yes", " -"]) == [0, None]


def test_word_error_labels_with_empty_reference_make_every_word_an_error():
    assert word_error_labels("", [" hello", " there"]) == [1, 1]


def test_roc_auc():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_expected_calibration_error():
    # 10 words at 0.9 confidence, half right: gap 0.4 in the only bin
    assert expected_calibration_error([0.9] * 10, [1] * 5 + [0] * 5) == pytest.approx(0.4)
    # right where sure, wrong where unsure, each bin matching its accuracy
    assert expected_calibration_error([1.0, 1.0, 0.0, 0.0], [1, 1, 0, 0]) == pytest.approx(0.0)
    assert math.isnan(expected_calibration_error([], []))


def test_confidence_quality_on_a_good_detector():
    refs = ["the cat sat on the mat", "hello world"]
    words = [[(" The", 0.95), (" cat", 0.9), (" sad", 0.2), (" on", 0.9), (" the", 0.97), (" mat.", 0.85)],
             [(" Hello", 0.9), (" word.", 0.3)]]
    q = confidence_quality(refs, words)
    assert q.words == 8
    assert q.error_fraction == pytest.approx(2 / 8)
    assert q.auc == 1.0
    assert 0 <= q.ece < 0.5


@pytest.mark.slow
def test_evaluate_a_manifest_with_the_real_model(tmp_path, project):
    from _support import sample_rows

    from earmark.evaluate.heldout import evaluate

    rows = sample_rows()[:6]
    manifest = tmp_path / "heldout.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = evaluate(project, model="tiny.en", manifest=manifest)
    assert r.clips == 6 and r.model == "tiny.en"
    assert 0.0 < r.wer < 1.0  # tiny.en gets the everyday words and misses drug names
    assert 0.0 <= r.cer <= r.wer
    assert r.confidence.words > 20
    assert 0.0 <= r.confidence.ece <= 1.0
    assert r.decode_seconds > 0
    assert len(r.rates.clip_errors) == 6
    assert sum(r.rates.clip_errors) == r.rates.substitutions + r.rates.deletions + r.rates.insertions


@pytest.mark.slow
def test_a_held_out_recording_longer_than_whispers_window_is_scored_whole(tiny_model):
    """The shipped 48 s dictation: read as one 30 s window, everything after 30 s would
    count as deleted; cut at silences as import cuts it, the end is transcribed too."""
    from pathlib import Path

    from _support import sample_rows

    from earmark.audio import load_audio
    from earmark.evaluate.heldout import evaluate_audio

    row = next(r for r in sample_rows() if "long" in r["audio"])
    audio = load_audio(Path(row["audio"]))
    assert audio.size / 16_000 > 40
    r = evaluate_audio(tiny_model, [audio], [row["text"]])
    assert r.clips == 1
    assert r.rates.deletions < 10  # read as one window: 33 of 97 words deleted
    assert r.wer < 0.4


@pytest.mark.slow
def test_evaluate_command_prints_the_figures_as_json(tmp_path, project, capsys):
    from _support import sample_rows

    from earmark.cli.main import main

    manifest = tmp_path / "heldout.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in sample_rows()[:3]))
    assert main(["evaluate", str(project.root), "--model", "tiny.en", "--manifest", str(manifest),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["clips"] == 3 and 0.0 <= out["wer"] < 1.0 and out["ref_words"] > 10
    assert "clip_errors" not in out  # figures, not a per-clip list without clip names


def test_figures_print_as_strict_json():
    from earmark.cli.train import json_figures

    text = json_figures({"wer": 0.25, "confidence_auc": math.nan, "clips": 3})
    assert "NaN" not in text and json.loads(text) == {"wer": 0.25, "confidence_auc": None, "clips": 3}


def test_evaluate_without_corrections_or_manifest_says_what_to_do(project):
    from earmark.errors import NoCorrections
    from earmark.evaluate.heldout import evaluate

    with pytest.raises(NoCorrections, match="--manifest"):
        evaluate(project)


def _version_rows(project):
    from sqlalchemy import select

    from earmark.store.db import ModelVersion

    with project.store.session() as s:
        return s.execute(select(ModelVersion.name, ModelVersion.spec, ModelVersion.active)
                         .order_by(ModelVersion.id)).all()


def test_evaluate_takes_a_version_a_checkpoint_path_or_a_whisper_name(project, tmp_path, monkeypatch):
    from earmark.evaluate.heldout import model_to_evaluate

    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "good.pt").write_bytes(b"not read here")
    monkeypatch.chdir(tmp_path)
    before = _version_rows(project)
    assert model_to_evaluate(project, "ck/good.pt") == ("ck/good.pt", str(tmp_path / "ck" / "good.pt"), None)
    assert model_to_evaluate(project, "base.en") == ("base.en", "base.en", None)
    name, spec, mv = model_to_evaluate(project, "tiny.en")
    assert (name, spec, mv.name) == ("tiny.en", "tiny.en", "tiny.en")  # the project's version
    assert model_to_evaluate(project, None)[2].name == "tiny.en"  # the active one
    assert _version_rows(project) == before  # looking at a model does not register it


def test_evaluate_an_unknown_model_lists_versions_and_what_else_it_takes(project):
    from earmark.errors import UnknownModelVersion
    from earmark.evaluate.heldout import evaluate

    with pytest.raises(UnknownModelVersion, match="known versions: tiny.en.*checkpoint path or a Whisper name"):
        evaluate(project, model="tiny-ultra", manifest="never-read.jsonl")


def test_evaluate_an_unfinished_run_says_resume_it(project):
    from earmark.errors import UnfinishedModelVersion
    from earmark.evaluate.heldout import evaluate
    from earmark.store.db import ModelVersion

    with project.store.session() as s:
        s.add(ModelVersion(name="ft-003", spec=str(project.root / "models" / "ft-003" / "model.pt"),
                           status="training"))
    with pytest.raises(UnfinishedModelVersion,
                       match=f"unfinished fine-tuning run.*earmark finetune {project.root} --resume"):
        evaluate(project, model="ft-003", manifest="never-read.jsonl")


@pytest.mark.slow
def test_evaluate_a_checkpoint_path_that_is_no_version(tmp_path, project, tiny_model, monkeypatch):
    from _support import sample_rows

    from earmark.evaluate.heldout import evaluate
    from earmark.models.loading import save_checkpoint

    save_checkpoint(tiny_model, tmp_path / "ck" / "good.pt")
    manifest = tmp_path / "heldout.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in sample_rows()[:2]))
    monkeypatch.chdir(tmp_path)
    before = _version_rows(project)
    r = evaluate(project, model="ck/good.pt", manifest=manifest)
    assert r.model == "ck/good.pt" and r.clips == 2 and 0.0 <= r.wer < 1.0
    assert _version_rows(project) == before


@pytest.mark.slow
def test_evaluate_against_a_baseline_gives_the_reduction_over_speakers(tmp_path, project, tiny_model,
                                                                       capsys, monkeypatch):
    import copy

    import torch
    from _support import sample_rows

    from earmark.cli.main import main
    from earmark.evaluate.heldout import compare
    from earmark.models.loading import save_checkpoint

    # a real, worse baseline: tiny.en with noise in its decoder's weights
    worse = copy.deepcopy(tiny_model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in worse.decoder.blocks.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * p.float().std() * 0.6)
    save_checkpoint(worse, tmp_path / "ck" / "worse.pt")
    rows = sample_rows()[:6]
    manifest = tmp_path / "heldout.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.chdir(tmp_path)

    cmp = compare(project, model="tiny.en", against="ck/worse.pt", manifest=manifest)
    assert cmp.by == "speaker" and cmp.reduction.groups == len({r["speaker"] for r in rows})
    assert sum(cmp.baseline.rates.clip_errors) > sum(cmp.candidate.rates.clip_errors)
    assert cmp.reduction.relative == pytest.approx(
        1 - sum(cmp.candidate.rates.clip_errors) / sum(cmp.baseline.rates.clip_errors))
    # six speakers: whether the interval clears 0 depends on the CPU's arithmetic, its order does not
    assert cmp.reduction.low <= cmp.reduction.relative <= cmp.reduction.high <= 1

    assert main(["evaluate", str(project.root), "--model", "tiny.en", "--against", "ck/worse.pt",
                 "--manifest", str(manifest)]) == 0
    text = capsys.readouterr().out
    assert "against ck/worse.pt: WER" in text and "relative WER reduction" in text
    assert "tiny.en is better than ck/worse.pt" in text

    # a model against itself: the same errors on every clip, nothing to tell apart
    assert main(["evaluate", str(project.root), "--model", "tiny.en", "--against", "tiny.en",
                 "--manifest", str(manifest), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["against"] == "tiny.en" and out["against_wer"] == out["wer"]
    assert out["relative_wer_reduction"] == out["relative_wer_reduction_low"] == 0.0
    assert out["interval_by"] == "speaker" and out["interval_groups"] == len({r["speaker"] for r in rows})


def test_a_held_out_manifest_is_checked_row_by_row(tmp_path):
    import warnings

    from earmark.errors import BadManifest, EarmarkWarning, UnreadableAudio
    from _support import sample_rows
    from earmark.evaluate.heldout import manifest_clips

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(BadManifest, match="lists no clips"):
        manifest_clips(empty)
    rows = [r for r in sample_rows() if r.get("text")][:2]
    missing = tmp_path / "missing.jsonl"
    missing.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"audio": "gone.wav", "text": "x"}) + "\n")
    with pytest.raises(UnreadableAudio, match=r"missing.jsonl:2: .*gone.wav: file not found"):
        manifest_clips(missing)
    partial = tmp_path / "partial.jsonl"
    partial.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"audio": rows[1]["audio"]}) + "\n")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        held = manifest_clips(partial)
    assert len(held.audios) == 1
    assert any(issubclass(w.category, EarmarkWarning) and "1 of 2 rows have no 'text'" in str(w.message)
               for w in said)
