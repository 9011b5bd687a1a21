"""The simulation's summary math on hand-made curves, and a small run with the real tiny.en."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import numpy as np
import pytest

import earmark.simulate.run as sim
from earmark.study_config import SimulateConfig
from earmark.errors import BadConfig
from earmark.ranking.strategies import Candidate, get_strategy
from earmark.simulate import (RoundResult, Study, as_typed, best_strategy, curve_area, mean_curves,
                              minutes_to_reach, split_speakers, summarize, verdict, write_outputs)

from _support import SHARED, tiny_speechocean_manifest


def curve(strategy: str, seed: int, points: list[tuple[float, float]]) -> list[RoundResult]:
    return [RoundResult(strategy, seed, k, 0, m, 0.0, w, w, 0.0) for k, (m, w) in enumerate(points)]


class TestMinutesToReach:
    def test_interpolates_between_rounds(self):
        # 0.40 at 2 min, 0.30 at 4 min: 0.35 is reached half way, at 3 min
        assert minutes_to_reach([0, 2, 4], [0.5, 0.4, 0.3], 0.35) == pytest.approx(3.0)

    def test_exact_point(self):
        assert minutes_to_reach([0, 2, 4], [0.5, 0.4, 0.3], 0.4) == pytest.approx(2.0)

    def test_never_reached(self):
        assert minutes_to_reach([0, 2, 4], [0.5, 0.45, 0.41], 0.4) is None

    def test_first_crossing_counts(self):
        assert minutes_to_reach([0, 1, 2, 3], [0.5, 0.3, 0.6, 0.2], 0.4) == pytest.approx(0.5)


def test_curve_area_trapezoids():
    assert curve_area([0, 2, 4], [0.5, 0.3, 0.3]) == pytest.approx(0.8 + 0.6)
    assert curve_area([0], [0.5]) == 0.0


def test_summary_label_saving():
    results = (curve("random", 0, [(0, 0.5), (2, 0.45), (4, 0.40)])
               + curve("random", 1, [(0, 0.5), (2, 0.45), (4, 0.40)])
               + curve("smart", 0, [(0, 0.5), (2, 0.40), (4, 0.35)])
               + curve("smart", 1, [(0, 0.5), (2, 0.40), (4, 0.30)])
               + curve("bad", 0, [(0, 0.5), (2, 0.49), (4, 0.48)]))
    s = summarize(results)
    assert s["random"]["label_saving"] == pytest.approx(0.0)
    assert s["smart"]["minutes_to_random_final"] == pytest.approx(2.0)
    assert s["smart"]["label_saving"] == pytest.approx(0.5)
    assert s["smart"]["final_test_wer"] == pytest.approx(0.325)  # mean over seeds
    assert s["bad"]["label_saving"] is None
    assert s["bad"]["label_saving_note"] == "never reached random's final WER"
    assert s["smart"]["label_saving_note"] is None
    assert s["smart"]["curve_area"] < s["random"]["curve_area"] < s["bad"]["curve_area"]
    band = mean_curves(results)["smart"]
    assert band["lo"][-1] == pytest.approx(0.30) and band["hi"][-1] == pytest.approx(0.35)


# the run a user reported: errors-per-second lost to random on every measure
LOST = (curve("random", 0, [(0, 0.75), (2, 0.73), (4, 0.7115)])
        + curve("errors-per-second", 0, [(0, 0.75), (2, 0.80), (4, 0.9038)]))


class TestBestStrategy:
    def test_a_strategy_that_lost_to_random_is_not_best(self):
        s = summarize(LOST)
        assert best_strategy(s) is None
        line = verdict(s)
        assert line.startswith("no strategy beat random")
        assert "errors-per-second" in line and "0.9038" in line and "0.7115" in line
        assert "n/a (never reached random's final WER)" in line and "None" not in line

    def test_the_strategy_ahead_of_random_is_best(self):
        s = summarize(LOST + curve("smart", 0, [(0, 0.75), (2, 0.70), (4, 0.65)]))
        assert best_strategy(s) == "smart"
        assert verdict(s).startswith("best: smart (label saving ")

    def test_equal_saving_is_decided_by_curve_area(self):
        # both reach random's final WER only at the last round (saving 0)
        s = summarize(LOST + curve("even", 0, [(0, 0.75), (2, 0.72), (4, 0.7115)])
                      + curve("worse", 0, [(0, 0.75), (2, 0.74), (4, 0.7115)]))
        assert s["even"]["label_saving"] == pytest.approx(0.0)
        assert best_strategy(s) == "even"  # "worse" has a larger area than random

    def test_no_saving_is_claimed_when_random_never_improved(self):
        # fine-tuning left random worse than zero-shot: every curve "reaches" its final
        # WER at 0 minutes, which would read as a 100 % saving for all, random included
        s = summarize(curve("random", 0, [(0, 0.50), (1, 0.52)])
                      + curve("smart", 0, [(0, 0.50), (1, 0.48)]))
        assert s["random"]["label_saving"] is None and s["smart"]["label_saving"] is None
        assert "ended no lower than its round-0 WER" in s["smart"]["label_saving_note"]
        assert best_strategy(s) == "smart"  # by the smaller curve area
        assert "100%" not in verdict(s)

    def test_random_alone(self):
        s = summarize(curve("random", 0, [(0, 0.5), (2, 0.4)]))
        assert best_strategy(s) is None
        assert verdict(s).startswith("no strategy to compare with random")

    def test_summary_json_says_null(self, tmp_path):
        record = write_outputs(LOST, {}, SimulateConfig(), tmp_path, 1.0, 10)
        saved = json.loads((tmp_path / "summary.json").read_text())
        assert saved["best_strategy"] is None and saved["best_label_saving"] is None
        assert saved["verdict"] == record["verdict"]
        assert "| n/a |" in saved["table"]

    def test_command_line_prints_the_verdict(self, tmp_path, monkeypatch, capsys):
        from earmark.cli.main import main

        record = write_outputs(LOST, {}, SimulateConfig(), tmp_path, 1.0, 10)
        monkeypatch.setattr(sim, "simulate", lambda *a, **k: record)
        assert main(["simulate", "--manifest", str(tmp_path / "m.jsonl"), "--out", str(tmp_path)]) == 0
        printed = capsys.readouterr().out
        assert "no strategy beat random" in printed and "None" not in printed


def manifest_of(tmp_path, speakers: int, per_speaker: int = 2):
    """A manifest of silent clips that are never read (the runs here stop or stub first)."""
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps({"audio": f"s{s}_{k}.wav", "text": "hello", "speaker": f"s{s}",
                                        "duration": 1.0}) + "\n"
                            for s in range(speakers) for k in range(per_speaker)))
    return path


def test_too_few_speakers_fail_before_the_model_loads(tmp_path, monkeypatch):
    def no_model(*a, **k):
        raise AssertionError("the model loaded before the speaker check")

    monkeypatch.setattr(sim, "load_model", no_model)
    cfg = SimulateConfig(strategies=("random",), test_speakers=2, dev_speakers=1)
    with pytest.raises(BadConfig, match="3 speakers cannot give 2 test and 1 dev.*--test-speakers"):
        sim.simulate(manifest_of(tmp_path, 3), cfg, tmp_path / "out", log=lambda m: None)
    assert not (tmp_path / "out").exists()


def test_a_bad_manifest_is_named_with_its_line(tmp_path):
    from earmark.errors import BadManifest

    with pytest.raises(BadManifest, match="gone.jsonl: no such manifest"):
        sim.read_study_manifest(tmp_path / "gone.jsonl")
    m = tmp_path / "m.jsonl"
    m.write_text('{"audio": "a.wav", "text": "hi", "speaker": "s1"}\n{"audio": "b.wav", "text": "yo"}\n')
    with pytest.raises(BadConfig, match=r"m.jsonl:2: simulate needs 'audio', 'speaker' and 'text'"):
        sim.read_study_manifest(m)
    m.write_text('{"audio": "a.wav", "text": "hi", "speaker": "s1"}\n{oops\n')
    with pytest.raises(BadManifest, match=r"m.jsonl:2: not valid JSON"):
        sim.read_study_manifest(m)
    c = tmp_path / "m.csv"
    c.write_text("audio,text,speaker,duration\nclips/a.wav,hi,s1,2.5\n")
    (row,) = sim.read_study_manifest(c)
    assert row["audio"] == str(tmp_path / "clips" / "a.wav") and row["duration"] == "2.5"


def test_random_is_required_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(sim, "read_study_manifest", lambda *a: pytest.fail("the manifest was read"))
    with pytest.raises(BadConfig, match="random"):
        sim.simulate(tmp_path / "m.jsonl", SimulateConfig(strategies=("entropy",)), tmp_path / "out")


class TestPartialRounds:
    """rounds.partial.jsonl serves a stopped run only: gone after success, kept after a failure.

    The model work is stubbed; the real run is in ``test_small_simulation_with_tiny_en``.
    """

    @pytest.fixture
    def stubbed(self, monkeypatch):
        def study(model, rows, cfg, width=None):
            n = len(rows)
            return Study(ids=[str(i) for i in range(n)], speakers=[r["speaker"] for r in rows],
                         texts=[r["text"] for r in rows], durations=np.ones(n),
                         features=np.zeros((n, 1, 1), np.float16), frames=np.ones(n, int),
                         embeddings=np.zeros((n, 1), np.float32))

        monkeypatch.setattr(sim, "load_model", lambda *a, **k: object())
        monkeypatch.setattr(sim, "Decoder", lambda *a, **k: object())
        monkeypatch.setattr(sim, "encode_study", study)
        monkeypatch.setattr(sim, "decode", lambda decoder, study, idx, batch=16: {i: None for i in idx})
        monkeypatch.setattr(sim, "error_detection", lambda *a: {})
        fail = {"now": False}

        def run_seed(base, study, cfg, decode_cfg, seed, zero_shot, log=print, partial=None):
            out = []
            for name in cfg.strategies:
                for rnd, wer in enumerate((0.5, 0.4)):
                    r = RoundResult(name, seed, rnd, rnd, float(rnd), 0.0, wer, wer, 0.0)
                    with partial.open("a") as f:
                        f.write(json.dumps(asdict(r)) + "\n")
                    out.append(r)
                    if fail["now"]:
                        raise RuntimeError("stopped")
            return out

        monkeypatch.setattr(sim, "run_seed", run_seed)
        return fail

    def run(self, tmp_path):
        cfg = SimulateConfig(strategies=("random",), rounds=1, seeds=1, test_speakers=1, dev_speakers=1)
        return sim.simulate(manifest_of(tmp_path, 4), cfg, tmp_path / "out", log=lambda m: None)

    def test_removed_after_a_finished_run(self, tmp_path, stubbed):
        self.run(tmp_path)
        assert (tmp_path / "out" / "rounds.json").is_file()
        assert not (tmp_path / "out" / "rounds.partial.jsonl").exists()

    def test_kept_when_the_run_fails(self, tmp_path, stubbed):
        stubbed["now"] = True
        with pytest.raises(RuntimeError):
            self.run(tmp_path)
        assert (tmp_path / "out" / "rounds.partial.jsonl").read_text().count("\n") == 1


def test_split_is_speaker_disjoint_and_seeded():
    speakers = [f"s{i // 3}" for i in range(60)]
    pool, dev, test = split_speakers(speakers, 7, 5, 3)
    assert len(test) == 5 and len(dev) == 3 and len(pool) == 12
    assert not (pool & dev) and not (pool & test) and not (dev & test)
    assert split_speakers(speakers, 7, 5, 3) == (pool, dev, test)
    assert split_speakers(speakers, 8, 5, 3) != (pool, dev, test)


def test_references_typed_in_sentence_case():
    assert as_typed("KATE LOVES CHINA") == "Kate loves china"
    assert as_typed("Kate loves China.") == "Kate loves China."


def test_diverse_strategy_spreads_the_shortlist():
    # ten uncertain clips: eight near-identical voices and two distinct ones
    emb = [(1.0, 0.0, 0.01 * i) for i in range(8)] + [(0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]
    pool = [Candidate(i, 2.0, {"errors_per_second": 1.0 - 0.01 * i}, emb[i]) for i in range(10)]
    pool += [Candidate(10 + i, 2.0, {"errors_per_second": 0.1}, (1.0, 1.0, 1.0)) for i in range(24)]
    got = [c.clip_id for c in get_strategy("diverse-errors-per-second").select(pool, count=3)]
    assert got[0] == 0 and len(set(got) & set(range(8))) == 1  # one of the look-alikes only
    plain = [c.clip_id for c in get_strategy("errors-per-second").select(pool, count=3)]
    assert plain == [0, 1, 2]
    # without embeddings: the base order
    bare = [Candidate(c.clip_id, c.duration, c.scores) for c in pool]
    assert [c.clip_id for c in get_strategy("diverse-errors-per-second").order(bare)] == \
        [c.clip_id for c in get_strategy("errors-per-second").order(bare)]


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "manifest.jsonl").is_file(), reason="speechocean762 not present")
def test_small_simulation_with_tiny_en(tmp_path):
    from earmark.simulate import simulate

    manifest = tiny_speechocean_manifest(tmp_path)
    cfg = SimulateConfig(strategies=("random", "diverse-errors-per-second"), rounds=1,
                         budget_minutes=0.1, seeds=1, test_speakers=1, dev_speakers=1,
                         min_steps=2, threads=1)
    record = simulate(manifest, cfg, tmp_path / "out", log=lambda m: None)
    rounds = json.loads((tmp_path / "out" / "rounds.json").read_text())
    assert len(rounds) == 4  # 2 strategies x (round 0 + round 1)
    r1 = [r for r in rounds if r["round"] == 1]
    assert all(0 < r["labeled_minutes"] <= 0.1 for r in r1), r1
    assert all(np.isfinite(r["test_wer"]) and r["changed_minutes"] <= r["labeled_minutes"] + 1e-9 for r in r1), r1
    assert (tmp_path / "out" / "learning_curve.png").stat().st_size > 1000
    assert (tmp_path / "out" / "rounds.csv").read_text().startswith("strategy,seed,round")
    assert 0.0 <= record["default_error_auc"] <= 1.0 or math.isnan(record["default_error_auc"])
    assert set(record["summary"]) == {"random", "diverse-errors-per-second"}
    assert not (tmp_path / "out" / "rounds.partial.jsonl").exists()  # rounds.json holds it all
    assert np.isfinite(record["summary"]["random"]["curve_area"])
