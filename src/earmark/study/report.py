"""The study's figures from its round records: review-cost ratios, label saving with a
paired bootstrap over seeds and test speakers, the pool-WER estimate's error, plots."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from earmark.simulate.summary import minutes_to_reach
from earmark.study.curves import Review, RoundTrace, review_curve, wer_at

BASELINES = ("random", "file-order", "oracle")
#: the share of review minutes a strategy must save over the default to replace it
DEFAULT_MARGIN = 0.02


def traces(records: Sequence[dict]) -> list[RoundTrace]:
    """A run's rounds (1..) as :class:`RoundTrace`."""
    return [RoundTrace(r["round"], r["errors_start"],
                       tuple(Review(p["clip"], p["duration"], p["errors"], p["seconds"]) for p in r["picks"]),
                       r["errors_end"]) for r in records if r["round"] >= 1]


def curve(records: Sequence[dict], axis: str = "audio") -> tuple[np.ndarray, np.ndarray]:
    """(cost in minutes, pool WER) of one run; ``axis`` "audio" or "annotator"."""
    c = review_curve(traces(records), records[0]["pool_words"])
    return (c.audio_minutes if axis == "audio" else c.annotator_minutes), c.wer


def minutes_to_third(records: Sequence[dict], axis: str = "audio") -> float | None:
    """Review minutes until the pool's WER is two thirds of its zero-shot value."""
    cost, wer = curve(records, axis)
    return minutes_to_reach(cost, wer, wer[0] * 2 / 3)  # any cost axis, not only minutes


def _test_wer(rec: dict, speakers: Sequence[str] | None = None) -> float:
    ts = rec["test_speakers"]
    keys = list(ts) if speakers is None else speakers
    e = sum(ts[k][0] for k in keys)
    n = sum(ts[k][1] for k in keys)
    return e / n if n else math.nan


def label_saving(runs: dict[str, dict[int, list[dict]]], strategy: str, seeds: Sequence[int],
                 speakers: dict[int, Sequence[str]] | None = None) -> float:
    """Labeled minutes ``strategy`` saves against random at random's final test WER (mean
    curves over ``seeds``; per seed the test WER over ``speakers[seed]``, default all);
    nan where the strategy never reaches it."""

    def mean_curve(name: str) -> tuple[list[float], list[float]]:
        rounds = min(len(runs[name][s]) for s in seeds)
        m = [float(np.mean([runs[name][s][k]["labeled_minutes"] for s in seeds])) for k in range(rounds)]
        w = [float(np.mean([_test_wer(runs[name][s][k], speakers[s] if speakers else None) for s in seeds]))
             for k in range(rounds)]
        return m, w

    rm, rw = mean_curve("random")
    sm, sw = mean_curve(strategy)
    if rw[-1] >= rw[0] or not rm[-1]:
        return math.nan
    reach = minutes_to_reach(sm, sw, rw[-1])
    return math.nan if reach is None else 1 - reach / rm[-1]


def saving_interval(runs: dict[str, dict[int, list[dict]]], strategy: str, seeds: Sequence[int],
                    resamples: int = 1000, seed: int = 0) -> tuple[float, float, float, float]:
    """(saving, 2.5 %, 97.5 %, share of resamples where it is undefined): paired bootstrap,
    seeds drawn with replacement, then each seed's test speakers with replacement (the
    same draw for both curves). Undefined resamples (the strategy never reached random's
    final WER) count as the lowest savings."""
    rng = np.random.default_rng(seed)
    point = label_saving(runs, strategy, seeds)
    values = []
    for _ in range(resamples):
        s = [seeds[k] for k in rng.integers(0, len(seeds), len(seeds))]
        spk = {}
        for x in set(s):
            names = sorted(runs["random"][x][0]["test_speakers"])
            spk[x] = [names[k] for k in rng.integers(0, len(names), len(names))]
        v = label_saving(runs, strategy, s, spk)
        values.append(-math.inf if math.isnan(v) else v)
    arr = np.asarray(values)
    undefined = float(np.mean(np.isinf(arr)))
    if not arr.size:
        return point, math.nan, math.nan, undefined
    # no interpolation: between two undefined (-inf) resamples it would give nan
    lo = np.percentile(arr, 2.5, method="lower")
    hi = np.percentile(arr, 97.5, method="higher")
    return point, float(lo), float(hi), undefined


def paired_interval(a: Sequence[float], b: Sequence[float], resamples: int = 1000,
                    seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``a - b`` paired by seed, with a 95 % bootstrap interval over seeds."""
    d = np.asarray(a, float) - np.asarray(b, float)
    if d.size == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = [d[rng.integers(0, d.size, d.size)].mean() for _ in range(resamples)]
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(d.mean()), float(lo), float(hi)


def _ratio(num: list[float | None], den: list[float | None]) -> float | None:
    pairs = [(a, b) for a, b in zip(num, den) if a is not None and b is not None]
    if len(pairs) < len(num) or not pairs:
        return None
    return float(np.mean([a for a, _ in pairs]) / np.mean([b for _, b in pairs]))


def summarize(runs: dict[str, dict[int, list[dict]]], default: str, resamples: int = 1000) -> dict[str, Any]:
    """Per strategy and overall figures (see the module docstring)."""
    seeds = sorted(set.intersection(*(set(v) for v in runs.values())))
    strategies: dict[str, dict[str, Any]] = {}
    common_annot = min(curve(runs[n][s], "annotator")[0][-1] for n in runs for s in seeds)
    for name, by_seed in runs.items():
        rs = [by_seed[s] for s in seeds]
        st: dict[str, Any] = {
            "final_test_wer": float(np.mean([_test_wer(r[-1]) for r in rs])),
            "final_pool_wer": float(np.mean([r[-1]["errors_end"] / r[-1]["pool_words"] for r in rs])),
            "labeled_minutes": float(np.mean([r[-1]["labeled_minutes"] for r in rs])),
            "annotator_minutes": float(np.mean([r[-1]["annotator_minutes"] for r in rs])),
            "pool_wer_at_common_annotator_minutes": [wer_at(*curve(r, "annotator"), common_annot) for r in rs],
            "minutes_to_third": [minutes_to_third(r) for r in rs],
            "annotator_minutes_to_third": [minutes_to_third(r, "annotator") for r in rs],
            "estimate_abs_error": float(np.mean([abs(x["unreviewed_wer_estimate"] - x["unreviewed_wer"])
                                                 for r in rs for x in r[1:]] or [math.nan])),
        }
        if name != "random":
            d, lo, hi = paired_interval(st["pool_wer_at_common_annotator_minutes"],
                                        strategies["random"]["pool_wer_at_common_annotator_minutes"]
                                        if "random" in strategies else
                                        [wer_at(*curve(runs["random"][s], "annotator"), common_annot) for s in seeds],
                                        resamples)
            st["pool_wer_minus_random"], st["pool_wer_minus_random_ci"] = d, [lo, hi]
            d, lo, hi = paired_interval([_test_wer(r[-1]) for r in rs],
                                        [_test_wer(runs["random"][s][-1]) for s in seeds], resamples)
            st["test_wer_minus_random"], st["test_wer_minus_random_ci"] = d, [lo, hi]
        strategies[name] = st
    return {"seeds": seeds, "common_annotator_minutes": common_annot, "strategies": strategies}


def choose_default_review_only(ros: dict[str, Any], current: str) -> tuple[str, str]:
    """The default strategy and why: the registry strategy that needs the fewest
    annotator minutes to remove a third of the pool's word errors (review-only curves),
    if its lead over ``current`` holds across seeds (interval of the paired difference
    below 0) and saves at least :data:`DEFAULT_MARGIN` of the minutes; otherwise
    ``current`` stays (a default that users and earlier figures rely on does not change
    for a lead nobody would notice)."""
    orders = ros["orders"]
    key = "annotator_minutes_to_third"
    ranked = [n for n in orders if n not in BASELINES and None not in orders[n][key]]
    if not ranked:
        return current, "no ranking strategy reached a third of the pool's errors"
    at = {n: float(np.mean(orders[n][key])) for n in ranked}
    best = min(ranked, key=lambda n: at[n])
    figures = ", ".join(f"{n} {at[n]:.1f}" for n in sorted(ranked, key=at.get))
    base = f"annotator minutes to remove a third of the pool's word errors: {figures}"
    if best == current or current not in at:
        return best, f"{best} needed the fewest ({base})"
    d, lo, hi = paired_interval(orders[best][key], orders[current][key])
    if hi < 0 and -d >= DEFAULT_MARGIN * at[current]:
        return best, f"{best} beat {current} across seeds ({base}; difference {d:.1f} min, 95 % {lo:.1f} to {hi:.1f})"
    if hi < 0:
        return current, (f"{current} stays: {best} was ahead by {-d:.1f} min (95 % {lo:.1f} to {hi:.1f}), under "
                         f"{DEFAULT_MARGIN:.0%} of the minutes ({base})")
    return current, (f"{current} stays: {best} was ahead by {-d:.1f} min but its interval ({lo:.1f} to {hi:.1f}) "
                     f"includes no difference ({base})")


def review_only_summary(ro: dict[str, dict[int, dict]], measured: str, horizon: float,
                        resamples: int = 1000) -> dict[str, Any]:
    """Figures of the review-only curves (:mod:`earmark.study.review_only`).

    Per order: minutes (audio and annotator) to remove a third of the pool's word
    errors per seed; the pool WER after ``horizon`` audio minutes, and its paired
    difference from random; for ``measured``, the minutes ratios to random and the
    oracle with 95 % bootstrap intervals over seeds; each estimator's mean absolute
    error over the checkpoints within ``horizon``.
    """
    from earmark.study.review_only import ESTIMATORS, trace

    seeds = sorted(set.intersection(*(set(v) for v in ro.values())))

    def curve_of(rec: dict, axis: str) -> tuple[np.ndarray, np.ndarray]:
        c = review_curve([trace(rec)], rec["pool_words"])
        return (c.audio_minutes if axis == "audio" else c.annotator_minutes), c.wer

    def third(rec: dict, axis: str) -> float | None:
        cost, wer = curve_of(rec, axis)
        return minutes_to_reach(cost, wer, wer[0] * 2 / 3)

    out: dict[str, Any] = {"seeds": seeds, "horizon_audio_minutes": horizon, "orders": {}}
    for name, by_seed in ro.items():
        recs = [by_seed[s] for s in seeds]
        st = {"minutes_to_third": [third(r, "audio") for r in recs],
              "annotator_minutes_to_third": [third(r, "annotator") for r in recs],
              "pool_wer_at_horizon": [wer_at(*curve_of(r, "audio"), horizon) for r in recs],
              "zero_shot_pool_wer": [r["errors_start"] / r["pool_words"] for r in recs]}
        ests = [e for r in recs for e in r["estimates"] if e["audio_minutes"] <= horizon + 1e-9]
        st["estimate_abs_error"] = {k: float(np.mean([abs(e[k] - e["true_wer"]) for e in ests])) if ests else None
                                    for k in ESTIMATORS}
        if name != "random" and "random" in ro:
            d, lo, hi = paired_interval(st["pool_wer_at_horizon"],
                                        [wer_at(*curve_of(ro["random"][s], "audio"), horizon) for s in seeds],
                                        resamples)
            st["pool_wer_at_horizon_minus_random"], st["pool_wer_at_horizon_minus_random_ci"] = d, [lo, hi]
        out["orders"][name] = st
    orders = out["orders"]
    for base in ("random", "oracle"):
        for axis, key in (("audio", "minutes_to_third"), ("annotator", "annotator_minutes_to_third")):
            if measured in orders and base in orders:
                r, lo, hi = ratio_interval(orders[measured][key], orders[base][key], resamples)
                tag = "" if axis == "audio" else "annotator_"
                out[f"review_{tag}minutes_ratio_vs_{base}"] = r
                out[f"review_{tag}minutes_ratio_vs_{base}_ci"] = [lo, hi]
    return out


def ratio_interval(num: Sequence[float | None], den: Sequence[float | None], resamples: int = 1000,
                   seed: int = 0) -> tuple[float | None, float | None, float | None]:
    """Ratio of means, paired by seed, with a 95 % bootstrap interval over seeds; None
    where a seed never reached the mark in either."""
    r = _ratio(list(num), list(den))
    if r is None:
        return None, None, None
    a, b = np.asarray(num, float), np.asarray(den, float)
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(resamples):
        k = rng.integers(0, a.size, a.size)
        vals.append(a[k].mean() / b[k].mean())
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return r, float(lo), float(hi)
