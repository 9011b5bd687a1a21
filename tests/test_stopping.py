"""`earmark status` says where the pool stands: estimated errors, and review left to a target."""

from __future__ import annotations

import json

from earmark.review.stopping import standing
from earmark.review.workflow import open_clip, save_correction


def _ids(project):
    from sqlalchemy import select

    from earmark.store.db import Clip

    with project.store.session() as s:
        return s.scalars(select(Clip.id).order_by(Clip.id)).all()


def test_standing_falls_back_to_raw_probabilities_with_few_corrections(handmade):
    first = _ids(handmade)[0]
    save_correction(handmade, open_clip(handmade, first), "hello world", annotator="ann", seconds_spent=9.0)
    st = standing(handmade)
    assert st is not None and not st.estimate.calibrated
    assert st.estimate.clips == 2  # the corrected clip is out of the unreviewed pool
    # raw: each unreviewed clip expects 0.1 + 0.8 wrong words of 2
    assert abs(st.estimate.errors - 1.8) < 1e-9 and abs(st.estimate.wer - 0.45) < 1e-9
    text = "\n".join(st.lines())
    assert "raw model probabilities" in text and "fewer than the 30" in text
    assert st.short().startswith("unreviewed WER ≈ 0.45 (") and st.short().endswith(", uncalibrated")
    assert st.left is None  # no target set


def test_target_wer_says_minutes_left_then_reached(handmade, capsys):
    from earmark.cli.main import main

    cfg = json.loads((handmade.root / "earmark.json").read_text())
    cfg.setdefault("review", {})["target_wer"] = 0.2
    (handmade.root / "earmark.json").write_text(json.dumps(cfg))
    assert main(["status", str(handmade.root)]) == 0
    out = capsys.readouterr().out
    assert "unreviewed   3 clips" in out and "min of review left" in out
    for cid in _ids(handmade)[:2]:
        save_correction(handmade, open_clip(handmade, cid), "hello world", annotator="ann", seconds_spent=9.0)
    assert main(["status", str(handmade.root)]) == 0
    assert "REACHED" in capsys.readouterr().out  # 0.9 expected errors over 6 words: 0.15


def test_the_target_reads_the_same_estimate_as_the_line_above_it():
    """With a fitted calibration the minutes left come from the reported (midpoint)
    estimate's per-clip errors, not from another calibration."""
    import numpy as np

    from earmark.evaluate.calibration import review_to_target, unreviewed, word_diff

    rng = np.random.default_rng(3)
    probs = [list(rng.uniform(0.3, 1.0, 6)) for _ in range(40)]
    diffs = [word_diff([f" w{i}" for i in range(6)], " ".join(f"w{i}" if p > 0.6 else "x" for i, p in enumerate(ps)))
             for ps in probs]
    rest = [list(rng.uniform(0.3, 1.0, 6)) for _ in range(50)]
    durations = [2.0] * 50
    u = unreviewed(probs, diffs, rest, durations, ranked=True, min_words=30)
    assert u.estimate.calibrated and u.in_context_wer is not None
    assert abs(u.clip_errors.sum() - u.estimate.errors) < 1e-9
    assert min(u.raw_wer, u.in_context_wer) <= u.estimate.wer <= max(u.raw_wer, u.in_context_wer)
    left = review_to_target(u.clip_errors, u.clip_words, durations, reviewed_words=0.0, target_wer=0.0)
    assert abs(left.pool_wer - u.clip_errors.sum() / u.clip_words.sum()) < 1e-9
    assert not left.reached and left.clips == 50  # a target of 0: every clip
