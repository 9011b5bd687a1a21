"""The measured choice of engine and arithmetic (``quantize``/``engine`` "auto")."""

from __future__ import annotations

import json
import os

import pytest

from earmark.config import DecodeConfig
from earmark.decode import autotune
from earmark.decode.autotune import Candidate, cache_key, candidates, choose, pick, spread
from earmark.models.ct2_folder import weights_key


def test_pick_keeps_the_fastest_within_the_margin():
    options = [Candidate("torch", "none"), Candidate("torch", "int8"), Candidate("ct2", "int8")]
    measured = {"torch-float32": {"speed": 40.0, "wer": 0.30},
                "torch-int8": {"speed": 45.0, "wer": 0.305},
                "ct2-int8": {"speed": 90.0, "wer": 0.35}}
    best, why = pick(options, measured, 0.01)
    assert best.name == "torch-int8"  # ct2 is faster but 5 points worse
    assert "ct2-int8 90.0x" in why and "torch-float32" in why
    best, _ = pick(options, measured, 0.06)
    assert best.name == "ct2-int8"
    best, _ = pick(options, {**measured, "torch-int8": {"speed": 45.0, "wer": 0.32}}, 0.01)
    assert best.name == "torch-float32"


def test_pick_times_on_the_pool_where_it_was_measured():
    options = [Candidate("torch", "none"), Candidate("torch", "int8"), Candidate("ct2", "int8")]
    measured = {"torch-float32": {"speed": 9.0, "wer": 0.30, "pool_speed": 25.0},
                "torch-int8": {"speed": 12.0, "wer": 0.35},  # out on WER: never timed on the pool
                "ct2-int8": {"speed": 18.0, "wer": 0.30, "pool_speed": 19.0}}
    best, why = pick(options, measured, 0.01)
    assert best.name == "torch-float32"  # the check set's short probe would say ct2-int8
    assert "on the pool's audio: torch-float32 25.0x, ct2-int8 19.0x" in why
    del measured["ct2-int8"]["pool_speed"]  # not every candidate timed: the check set decides
    assert pick(options, measured, 0.01)[0].name == "ct2-int8"


def test_the_reference_stays_unless_another_is_clearly_faster():
    options = [Candidate("torch", "none"), Candidate("ct2", "int8")]
    close = {"torch-float32": {"speed": 10.0, "wer": 0.49, "pool_speed": 20.5},
             "ct2-int8": {"speed": 18.8, "wer": 0.48, "pool_speed": 23.4}}  # 1.14x: noise
    best, why = pick(options, close, 0.01, speed_margin=1.25)
    assert best.name == "torch-float32" and "under 1.25x its speed" in why
    clear = {**close, "ct2-int8": {"speed": 18.8, "wer": 0.48, "pool_speed": 30.0}}
    best, why = pick(options, clear, 0.01, speed_margin=1.25)
    assert best.name == "ct2-int8" and "1.25x its speed" in why
    assert pick(options, close, 0.01, speed_margin=1.0)[0].name == "ct2-int8"
    assert DecodeConfig().auto_speed_margin > 1
    assert any("auto_speed_margin" in p for p in DecodeConfig(auto_speed_margin=0.9).problems())


def test_spread_takes_clips_from_the_whole_pool():
    durations = [2.0] * 100
    picked = spread(durations, 40.0)
    assert sum(durations[i] for i in picked) >= 40.0 and len(picked) <= 25
    assert picked[0] == 0 and picked[-1] >= 90  # the last speakers too, not the first 20 clips
    assert picked == sorted(set(picked))
    assert spread(durations, 500.0) == list(range(100))  # a short pool: all of it
    uneven = [0.5] * 50 + [10.0] * 5
    assert sum(uneven[i] for i in spread(uneven, 30.0)) >= 30.0
    assert spread([], 10.0) == []


def test_explicit_settings_leave_nothing_to_measure():
    assert candidates(DecodeConfig(engine="torch", quantize="none"), "cpu") == [Candidate("torch", "none")]
    assert candidates(DecodeConfig(engine="ct2", ct2_compute_type="int8"), "cpu") == [Candidate("ct2", "int8")]
    assert candidates(DecodeConfig(), "cuda") == [Candidate("torch", "none")]
    names = {c.name for c in candidates(DecodeConfig(), "cpu")}
    assert {"torch-float32", "torch-int8", "ct2-int8", "ct2-float32"} <= names


def test_cache_key_changes_with_the_model(tmp_path):
    ckpt = tmp_path / "ft.pt"
    ckpt.write_bytes(b"x" * 10)
    cfg, options = DecodeConfig(), candidates(DecodeConfig(), "cpu")
    first = cache_key(cfg, str(ckpt), 2, options)
    assert first != cache_key(cfg, "tiny.en", 2, options)
    assert first != cache_key(cfg, str(ckpt), 1, options)  # threads are part of the machine
    ckpt.write_bytes(b"y" * 11)  # a new checkpoint at the same path
    os.utime(ckpt, ns=(1, 1))
    assert weights_key(str(ckpt)) != first.split("model ")[1].split()[1]
    assert cache_key(cfg, str(ckpt), 2, options) != first


@pytest.mark.slow
def test_the_choice_is_measured_once_then_reused(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(autotune, "CHECK_CLIPS", 3)  # a short probe: the rule, not the figures
    cache = tmp_path / "autotune.json"
    cfg = DecodeConfig(engine="torch", quantize="auto")
    first = choose(tiny_model, "tiny.en", cfg, threads=1, cache=cache)
    assert not first.cached
    assert {"torch-float32", "torch-int8"} <= set(first.measured)
    assert all(m["speed"] > 0 and 0 <= m["wer"] <= 1.5 for m in first.measured.values())
    assert first.name in first.measured and first.name in first.reason
    assert first.measured[first.name]["wer"] <= first.measured["torch-float32"]["wer"] + cfg.auto_wer_margin
    stored = json.loads(cache.read_text())
    assert len(stored) == 1 and next(iter(stored.values()))["engine"] == "torch"

    def no_probe(*args, **kwargs):
        raise AssertionError("the probe ran again")

    monkeypatch.setattr(autotune, "probe", no_probe)
    again = choose(tiny_model, "tiny.en", cfg, threads=1, cache=cache)
    assert again.cached and (again.engine, again.quantize) == (first.engine, first.quantize)
    assert again.measured == first.measured
    # an explicit setting needs no probe at all
    fixed = choose(tiny_model, "tiny.en", DecodeConfig(engine="torch", quantize="int8"), threads=1, cache=cache)
    assert (fixed.engine, fixed.quantize, fixed.cached) == ("torch", "int8", False)
    # another model (a checkpoint file) is measured anew
    ckpt = tmp_path / "other.pt"
    ckpt.write_bytes(b"0")
    with pytest.raises(AssertionError, match="probe ran again"):
        choose(tiny_model, str(ckpt), cfg, threads=1, cache=cache)


@pytest.mark.slow
def test_rank_verbose_says_what_it_chose_and_why(tmp_path, monkeypatch, capsys):
    from _support import SAMPLES

    from earmark.cli.main import main
    from earmark.ingest import import_audio
    from earmark.store.project import init_project

    monkeypatch.setattr(autotune, "CHECK_CLIPS", 3)
    monkeypatch.setenv("EARMARK_AUTOTUNE_CACHE", str(tmp_path / "autotune.json"))
    project = init_project(tmp_path / "p")
    import_audio(project, SAMPLES / "audio" / "s01.wav", progress=False)
    assert main(["rank", str(project.root), "--engine", "torch", "-q", "-v", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("decoding: "))
    assert "torch-float32" in line and "torch-int8" in line and "x WER" in line  # the measured speeds
    assert "(cached choice)" not in line


@pytest.mark.slow
def test_pool_speeds_decide_and_are_kept_per_architecture(tiny_model, tmp_path, monkeypatch):
    from earmark.decode.autotune import check_set

    monkeypatch.setattr(autotune, "CHECK_CLIPS", 3)
    cache = tmp_path / "autotune.json"
    # a margin every candidate passes, so both are timed on the "pool"
    cfg = DecodeConfig(engine="torch", quantize="auto", auto_wer_margin=1.0, auto_speed_margin=1.0, batch_size=2)
    asked = []

    def sample(seconds):
        asked.append(seconds)
        return check_set(6)[0]

    first = choose(tiny_model, "tiny.en", cfg, threads=1, cache=cache, sample=sample)
    assert asked == [autotune.probe_seconds(cfg)] == [2 * 2 * cfg.pack_window_seconds]
    assert all(m["pool_speed"] > 0 for m in first.measured.values())
    assert "on the pool's audio" in first.reason
    best = max(first.measured, key=lambda n: first.measured[n]["pool_speed"])
    assert first.name == best
    kept = [v for k, v in json.loads(cache.read_text()).items() if k.endswith("pool speeds")]
    assert len(kept) == 1 and set(kept[0]["speeds"]) == set(first.measured)

    # a fine-tuned version of the same architecture: its WER is measured again, its speed is not
    def no_timing(*args, **kwargs):
        raise AssertionError("the pool was timed again")

    monkeypatch.setattr(autotune, "probe_speed", no_timing)
    ckpt = tmp_path / "ft.pt"
    ckpt.write_bytes(b"0")
    other = choose(tiny_model, str(ckpt), cfg, threads=1, cache=cache, sample=sample)
    assert not other.cached and asked == [autotune.probe_seconds(cfg)]
    assert {n: m["pool_speed"] for n, m in other.measured.items()} == kept[0]["speeds"]
    # without a sample, the kept pool speeds still decide
    plain = choose(tiny_model, "tiny.en", cfg, threads=1, cache=cache)
    assert "on the pool's audio" in plain.reason and plain.name == best
