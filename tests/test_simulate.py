"""The simulation's summary math on hand-made curves, and a small run with the real tiny.en."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from earmark.selection import Candidate, get_strategy
from earmark.simulate import (RoundResult, as_typed, curve_area, mean_curves, minutes_to_reach,
                              split_speakers, summarize)

from _support import SHARED


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
    assert s["smart"]["curve_area"] < s["random"]["curve_area"] < s["bad"]["curve_area"]
    band = mean_curves(results)["smart"]
    assert band["lo"][-1] == pytest.approx(0.30) and band["hi"][-1] == pytest.approx(0.35)


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
    from earmark.config import SimulateConfig
    from earmark.simulate import simulate

    rows = [json.loads(l) for l in (SHARED / "manifest.jsonl").read_text().splitlines() if l.strip()]
    by_speaker: dict[str, list[dict]] = {}
    for r in rows:
        by_speaker.setdefault(r["speaker"], []).append(r)
    chosen = [r for s in sorted(by_speaker)[:4] for r in by_speaker[s][:3]]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({**r, "audio": str(SHARED / r["audio"])}) + "\n"
                                for r in chosen))
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
    assert np.isfinite(record["summary"]["random"]["curve_area"])
