"""The review-cost study: splits, manifest checks, cost model, curves, and a small real run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from earmark.config import CostConfig

from earmark.study_config import StudyConfig
from earmark.errors import BadConfig, BadManifest
from earmark.study.cost import annotator_seconds, check_cost, fit_cost
from earmark.simulate.summary import minutes_to_reach
from earmark.study.curves import (Review, RoundTrace, oracle_bound, oracle_order, review_curve,
                                  take_budget)
from earmark.study.split import Row, read_rows, split

from _support import SAMPLES


def _rows(speakers: int, per: int = 3) -> list[Row]:
    return [Row(s * per + k, f"/a/{s}_{k}.wav", "a b c", f"spk{s}", 3.0) for s in range(speakers) for k in range(per)]


def test_split_is_speaker_disjoint_and_differs_by_seed():
    rows = _rows(30)
    sp = split(rows, 0, 20, 4)
    spk = {i: rows[i].speaker for i in range(len(rows))}
    sets = [{spk[i] for i in part} for part in (sp.pool, sp.dev, sp.test)]
    assert len(sets[2]) == 20 and len(sets[1]) == 4 and len(sets[0]) == 6
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert sorted(sp.pool + sp.dev + sp.test) == list(range(len(rows)))
    assert split(rows, 1, 20, 4).test != sp.test


def test_too_few_speakers_names_the_flags():
    with pytest.raises(BadConfig, match="--test-speakers 20.*--dev-speakers 10"):
        split(_rows(25), 0, 20, 10)


@pytest.mark.parametrize("row,fragment", [
    ({"audio": "audio/s01.wav", "speaker": "x", "duration": 2.0}, ":2: 'text' is missing"),
    ({"audio": "audio/s01.wav", "text": "hi", "duration": 2.0}, ":2: 'speaker' is missing"),
    ({"audio": "audio/s01.wav", "text": "hi", "speaker": "x", "duration": 31.5}, ":2: 'duration' is 31.5 s, over"),
    ({"audio": "audio/nope.wav", "text": "hi", "speaker": "x"}, ":2: cannot read"),
])
def test_bad_manifest_rows_get_one_line_naming_the_row(tmp_path, row, fragment):
    good = {"audio": str(SAMPLES / "audio/s01.wav"), "text": "hi", "speaker": "x", "duration": 2.0}
    row = {**row, "audio": str(SAMPLES / row["audio"])}
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(BadManifest) as exc:
        read_rows(path)
    assert fragment in str(exc.value) and "\n" not in str(exc.value)


def test_duration_is_read_from_the_file_when_missing(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"audio": str(SAMPLES / "audio/s01.wav"), "text": "hi", "speaker": "x"}) + "\n")
    (row,) = read_rows(path)
    assert 1.0 < row.duration < 10.0


def test_cost_model_and_its_fit_recover_known_parameters():
    truth = CostConfig(replay_factor=1.8, seconds_per_edit=4.0, seconds_per_clip=3.0)
    rng = np.random.default_rng(0)
    d, e = rng.uniform(1, 10, 60), rng.integers(0, 6, 60)
    s = annotator_seconds(d, e, truth) + rng.normal(0, 0.2, 60)
    fit = fit_cost(d, e, s)
    assert abs(fit.replay_factor - 1.8) < 0.1 and abs(fit.seconds_per_edit - 4.0) < 0.2
    check = check_cost(d, e, s, CostConfig())
    assert check.clips == 60 and check.mean_abs_error > 1.0 and check.fitted is not None


def test_review_curve_steps_down_by_each_clip_and_jumps_at_the_fine_tune():
    t = [RoundTrace(1, 10, (Review(0, 60.0, 3, 90.0), Review(1, 60.0, 1, 90.0)), 4),
         RoundTrace(2, 4, (Review(2, 60.0, 2, 60.0),), 1)]
    c = review_curve(t, 20)
    assert np.allclose(c.wer, [0.5, 0.35, 0.3, 0.2, 0.2, 0.1, 0.05])
    assert np.allclose(c.audio_minutes, [0, 1, 2, 2, 2, 3, 3])
    assert np.allclose(c.annotator_minutes, [0, 1.5, 3, 3, 3, 4, 4])
    assert minutes_to_reach(c.audio_minutes, c.wer, 0.2) == pytest.approx(2.0)
    assert minutes_to_reach(c.audio_minutes, c.wer, 0.01) is None


def test_no_order_goes_below_the_oracle_bound():
    rng = np.random.default_rng(3)
    errors, durations = rng.integers(0, 8, 40).astype(float), rng.uniform(1, 12, 40)
    words = 400
    for seed in range(20):
        order = rng.permutation(40)
        cost = np.cumsum(durations[order])
        wer = (errors.sum() - np.cumsum(errors[order])) / words
        assert np.all(oracle_bound(errors, durations, words, cost) <= wer + 1e-12)
    o = oracle_order(errors, durations)
    assert np.all(np.diff((errors / durations)[o]) <= 0)
    assert sum(durations[take_budget(o, durations, 30.0)]) <= 30.0


def _small_manifest(tmp_path: Path) -> Path:
    """The shipped clips that fit one window (the long file is left out)."""
    import soundfile as sf

    rows = [json.loads(x) for x in (SAMPLES / "manifest.jsonl").read_text().splitlines() if x.strip()]
    kept = [{**r, "audio": str(SAMPLES / r["audio"])} for r in rows
            if sf.info(str(SAMPLES / r["audio"])).duration <= 30]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    return path


@pytest.mark.slow
def test_small_study_end_to_end_and_resumes(tmp_path):
    from earmark.study.report import curve
    from earmark.study.run import run_study

    # as small as its checks allow: one seed, one round, the three orders the record compares
    cfg = StudyConfig(strategies=("random", "oracle", "errors-per-second"), seeds=1, rounds=1,
                      budget_minutes=0.12, test_speakers=2, dev_speakers=1, epochs=1, min_steps=1,
                      batch_size=4, bootstrap=50, threads=1)
    out = tmp_path / "study"
    rec = run_study(_small_manifest(tmp_path), cfg, out, log=lambda m: None)
    for key in ("seeds", "pool_to_budget", "product_loop_checked", "product_loop_gap",
                "review_minutes_ratio_vs_random", "review_minutes_ratio_vs_oracle",
                "review_minutes_ratio_vs_random_ci", "model_label_saving",
                "model_label_saving_ci_low", "model_label_saving_ci_high", "pool_wer_estimate_abs_error",
                "default_strategy", "default_strategy_why"):
        assert key in rec
    assert rec["seeds"] == 1 and rec["partial"] and not rec["product_loop_checked"]
    assert rec["pool_to_budget"] > 1
    assert 0 <= rec["pool_wer_estimate_abs_error"] < 1
    assert json.loads((out / "al_study.json").read_text())["seeds"] == 1
    assert (out / "al_study.png").stat().st_size > 1000
    for seed in range(cfg.seeds):
        runs = {n: [json.loads((out / f"runs/cheap/{n}/seed{seed}/round{r}.json").read_text()) for r in range(2)]
                for n in cfg.strategies}
        zero = runs["random"][0]
        for name, recs in runs.items():
            assert recs[1]["errors_start"] == zero["unreviewed_errors"]  # round 1 starts from zero-shot
            assert 0 < recs[-1]["labeled_minutes"] <= cfg.rounds * cfg.budget_minutes + 1e-9
            assert len({p["clip"] for r in recs for p in r["picks"]}) == sum(len(r["picks"]) for r in recs)
            # round 1 reviews zero-shot hypotheses: no order goes below the oracle bound there
            cost, wer = curve(recs)
            k = len(recs[1]["picks"]) + 1
            errs = [zero["pool_errors"][str(i)] for i in sorted(map(int, zero["pool_errors"]))]
            rows = json.loads((out / "rows.json").read_text())
            pool = sorted(map(int, zero["pool_errors"]))
            bound = oracle_bound(errs, [rows[i]["duration"] for i in pool], zero["pool_words"], cost[:k] * 60)
            assert np.all(bound <= wer[:k] + 1e-12), name
    # review-only: every order reviews each pool clip once and ends with no errors left,
    # never below the oracle bound; the estimate is checked along the way
    rows = json.loads((out / "rows.json").read_text())
    for name in cfg.strategies:
        ro = json.loads((out / f"review_only/{name}/seed0.json").read_text())
        clips = [p["clip"] for p in ro["picks"]]
        assert sorted(clips) == sorted(map(int, zero["pool_errors"]))
        assert ro["errors_start"] == zero["unreviewed_errors"]
        c = review_curve([RoundTrace(1, ro["errors_start"], tuple(
            Review(p["clip"], p["duration"], p["errors"], p["seconds"]) for p in ro["picks"]), 0)], ro["pool_words"])
        assert c.wer[-1] == 0 and np.all(np.diff(c.wer) <= 0)
        errs = [p["errors"] for p in ro["picks"]]
        durs = [rows[i]["duration"] for i in clips]
        assert np.all(oracle_bound(errs, durs, ro["pool_words"], c.audio_minutes * 60) <= c.wer + 1e-12)
        for e in ro["estimates"]:
            assert 0 <= e["true_wer"] and all(e[k] >= 0 for k in ("raw", "calibrated", "calibrated-audited"))
    # resumable: a run again computes nothing; a removed round is computed again alone
    stamp = (out / "runs/cheap/random/seed0/round1.json").stat().st_mtime_ns
    (out / "runs/cheap/oracle/seed0/round1.json").unlink()
    again = run_study(_small_manifest(tmp_path), cfg, out, log=lambda m: None)
    assert (out / "runs/cheap/random/seed0/round1.json").stat().st_mtime_ns == stamp
    assert (out / "runs/cheap/oracle/seed0/round1.json").exists()
    assert again["seeds"] == 1
    # --rounds 0: the review-only curves alone, with their figures
    only = run_study(_small_manifest(tmp_path), StudyConfig(**{**cfg.__dict__, "rounds": 0}), tmp_path / "ro",
                     log=lambda m: None)
    assert "model_label_saving" not in only and only["review_only"]["seeds"] == [0]
    assert not (tmp_path / "ro/runs").exists()


@pytest.mark.slow
@pytest.mark.study_product
def test_product_path_runs_rounds_through_finetune(tmp_path):
    """One round through `finetune` in a project of the pool (steps capped to stay short)."""
    from earmark.study.runner import Study

    cfg = StudyConfig(strategies=("random", "errors-per-second"), seeds=1, rounds=1, budget_minutes=0.2,
                      test_speakers=2, dev_speakers=1, training="product", finetune_max_steps=1, threads=1)
    study = Study(_small_manifest(tmp_path), cfg, tmp_path / "study", log=lambda m: None)
    zero = study.zero_shot()
    recs = study.run("errors-per-second", 0, zero)
    assert [r["round"] for r in recs] == [0, 1]
    ft = recs[1]["finetune"]
    assert ft["steps"] == 1 and ft["version"] == "ft-001"
    project = tmp_path / "study/projects/errors-per-second/seed0"
    assert (project / "models/ft-001/record.json").exists()
    from earmark.store.project import open_project

    saved = open_project(project).store.latest_corrections()
    assert sorted(c.clip_id for c in saved) == sorted(
        json.loads((project / "clip_ids.json").read_text())[str(p["clip"])] for p in recs[1]["picks"])
    assert all(c.transcript_id is not None for c in saved)  # each started from the hypothesis shown
    assert 0 <= recs[1]["test_wer"] < 2
