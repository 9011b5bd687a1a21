"""The whole pool reviewed in each order under one model: review minutes without waiting
for fine-tunes, and the pool-WER estimate checked along the way.

A round of the study pays a decode of the whole unreviewed pool; this pays none. Under
the model of one round (the zero-shot model, or the last round's) every order (a
strategy, ``random``, ``file-order``, ``oracle``) is followed to the end of the pool,
and each reviewed clip removes its hypothesis's word errors at its cost. These curves
answer "how many review minutes remove a third of the pool's word errors" for orders
that a few rounds of a loop never bring that far (random needs about a third of the
pool), and without fine-tuning between rounds they are the conservative case: a
fine-tune only lowers the rest's errors further.

Along each curve, at every ``checkpoint`` of reviewed audio minutes, the unreviewed
clips' WER is estimated from the corrections so far (:mod:`earmark.evaluate.calibration`)
and compared with the truth, for each estimator in :data:`ESTIMATORS`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from earmark.study.cost import annotator_seconds
from earmark.study.curves import Review, RoundTrace, oracle_order
from earmark.study.runner import UNRANKED

if TYPE_CHECKING:
    from earmark.decode.types import Transcript
    from earmark.study.runner import Study

#: how the unreviewed pool's WER is estimated from the reviewed head of the queue
ESTIMATORS = ("raw", "calibrated", "calibrated-audited", "pool-audited", "in-context", "reported")



def order_pool(study: "Study", strategy: str, seed: int, clips: Sequence[int],
               hyps: dict[int, "Transcript"], errors: dict[int, int]) -> list[int]:
    """Every clip of ``clips`` in ``strategy``'s review order under ``hyps``."""
    from earmark.ranking.scoring import transcript_scores
    from earmark.ranking.strategies import Candidate, get_strategy

    if strategy == "oracle":
        pos = oracle_order([errors[i] for i in clips], [study.rows[i].duration for i in clips])
        return [clips[k] for k in pos]
    cands = [Candidate(i, study.rows[i].duration, transcript_scores(hyps[i]), hyps[i].embedding or None)
             for i in clips]
    return [c.clip_id for c in get_strategy(strategy, seed=seed).select(cands)]


def review_only(study: "Study", strategy: str, seed: int, hyps: dict[int, "Transcript"],
                clips: Sequence[int], checkpoints: Sequence[float]) -> dict[str, Any]:
    """One order through the whole of ``clips`` under one model, with estimate checks.

    Returns a record: ``picks`` (clip, duration, errors, seconds, in order), the pool's
    ``errors_start`` and ``pool_words``, and ``estimates``: per checkpoint (audio
    minutes), the true WER of the clips not yet reviewed and each estimator's value.
    """
    from earmark.study.runner import clip_errors

    rows = study.rows
    err_words = {i: clip_errors(rows[i].text, hyps[i].text) for i in clips}
    errors = {i: e for i, (e, _) in err_words.items()}
    order = order_pool(study, strategy, seed, list(clips), hyps, errors)
    picks = [{"clip": i, "duration": rows[i].duration, "errors": errors[i],
              "seconds": float(annotator_seconds(rows[i].duration, errors[i], study.cfg.cost))} for i in order]
    estimates = estimate_along(study, order, hyps, err_words, checkpoints, seed, strategy)
    return {"strategy": strategy, "seed": seed, "picks": picks, "errors_start": sum(errors.values()),
            "pool_words": sum(n for _, n in err_words.values()), "estimates": estimates}


def estimate_along(study: "Study", order: Sequence[int], hyps: dict[int, "Transcript"],
                   err_words: dict[int, tuple[int, int]], checkpoints: Sequence[float],
                   seed: int, strategy: str = "") -> list[dict[str, Any]]:
    """At each checkpoint of reviewed audio minutes: the unreviewed clips' true WER and
    each estimator's (fitted on the reviewed head of ``order``)."""
    from earmark.evaluate.calibration import estimate_audited, estimate_pool, fit_calibration, unreviewed, word_diff

    rows = study.rows
    cum = np.cumsum([rows[i].duration / 60 for i in order])
    out = []
    rng = np.random.default_rng(seed)
    for m in checkpoints:
        k = int(np.searchsorted(cum, m, side="right"))
        if k == 0 or k >= len(order):
            continue
        head, rest = list(order[:k]), list(order[k:])
        probs = [[w.p for w in hyps[i].words] for i in head]
        diffs = [word_diff([w.word for w in hyps[i].words], rows[i].text) for i in head]
        rest_p = [[w.p for w in hyps[i].words] for i in rest]
        rest_d = [rows[i].duration for i in rest]
        truth = sum(err_words[i][0] for i in rest) / max(1, sum(err_words[i][1] for i in rest))
        cal = estimate_pool(fit_calibration(probs, diffs, study.cfg.calibration_min_words), rest_p, rest_d,
                            resamples=0)
        # the audit: clips drawn at random from the rest, a share of those reviewed so far
        share = study.cfg.audit_share
        n_audit = max(1, round(share * k))
        audit = list(rng.choice(len(rest), size=min(n_audit, len(rest)), replace=False))
        a_probs = [rest_p[j] for j in audit]
        a_diffs = [word_diff([w.word for w in hyps[rest[j]].words], rows[rest[j]].text) for j in audit]
        aud = estimate_audited(probs, diffs, a_probs, a_diffs, [rest_d[j] for j in audit], rest_p, rest_d, study.cfg.calibration_min_words)
        # the audit as a product can hold it: a fixed random share of the whole pool, its
        # reviewed clips a random sample of it; the pool's errors are estimated with the
        # audit's correction (difference estimator), the reviewed head's subtracted
        pool_audit = [order[j] for j in rng.choice(len(order), size=n_audit, replace=False)]
        pa = estimate_pool_audited(study, hyps, err_words, head, rest, pool_audit, probs, diffs)
        rep = unreviewed(probs, diffs, rest_p, rest_d, strategy not in UNRANKED, study.cfg.calibration_min_words)
        out.append({"audio_minutes": float(cum[k - 1]), "reviewed": k, "audited": len(audit), "true_wer": truth,
                    "raw": rep.raw_wer, "calibrated": cal.wer, "calibrated-audited": aud.wer, "pool-audited": pa,
                    # too few corrections to fit it: the raw probabilities, as the product falls back
                    "in-context": rep.in_context_wer if rep.in_context_wer is not None else rep.raw_wer,
                    "reported": rep.estimate.wer})
    return out


def estimate_pool_audited(study: "Study", hyps: dict[int, "Transcript"], err_words: dict[int, tuple[int, int]],
                          head: list[int], rest: list[int], audit: list[int], probs, diffs) -> float:
    """The rest's WER as (the whole pool's estimated errors - the head's true errors) over
    the rest's estimated words; the pool's errors are the calibrated expectation plus the
    audit's mean surplus (true minus expected) per clip times the pool's clips."""
    from earmark.evaluate.calibration import _clip_terms, fit_calibration

    rows = study.rows
    cal = fit_calibration(probs, diffs, study.cfg.calibration_min_words)
    pool = head + rest
    err, words, _ = _clip_terms(cal, [[w.p for w in hyps[i].words] for i in pool], [rows[i].duration for i in pool])
    pos = {c: j for j, c in enumerate(pool)}
    surplus = np.mean([err_words[i][0] - err[pos[i]] for i in audit]) if audit else 0.0
    total = float(err.sum()) + surplus * len(pool)
    head_errors = sum(err_words[i][0] for i in head)
    rest_words = float(words[len(head):].sum())
    return max(0.0, total - head_errors) / rest_words if rest_words else 0.0


def trace(rec: dict) -> RoundTrace:
    """The record as one round that reviews the whole pool (ends with no errors left)."""
    return RoundTrace(1, rec["errors_start"],
                      tuple(Review(p["clip"], p["duration"], p["errors"], p["seconds"]) for p in rec["picks"]), 0)


def run_review_only(study: "Study", zero: dict[int, "Transcript"], strategies: Sequence[str],
                    checkpoints: Sequence[float]) -> dict[str, dict[int, dict]]:
    """Every (strategy, seed) through its split's pool under the zero-shot model; each
    written to ``review_only/<strategy>/seed<k>.json`` and reused when there."""
    out: dict[str, dict[int, dict]] = {}
    for seed, sp in enumerate(study.splits):
        for name in strategies:
            path = study.out / "review_only" / name / f"seed{seed}.json"
            if path.exists():
                rec = json.loads(path.read_text())
            else:
                rec = review_only(study, name, seed, zero, list(sp.pool), checkpoints)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(rec))
                study.log(f"review-only seed {seed} {name:>26}: {len(rec['picks'])} clips")
            out.setdefault(name, {})[seed] = rec
    return out
