"""Run the study (resumable) and write ``al_study.json`` and its plot."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

from earmark.config import to_dict

from earmark.study_config import StudyConfig
from earmark.study.report import choose_default_review_only, curve, minutes_to_third, \
    review_only_summary, saving_interval, summarize, _ratio, _test_wer
from earmark.study.runner import Study

#: the full study of the issue: fewer seeds or test speakers, or a subset, is a partial run
FULL_SEEDS, FULL_TEST_SPEAKERS = 5, 20


def run_study(manifest: Path | str, cfg: StudyConfig = StudyConfig(), out: Path | str = "study",
              log: Callable = print, compare_product: int = 0) -> dict[str, Any]:
    """Run every (strategy, seed, round) not yet written, then summarize.

    Parameters
    ----------
    compare_product
        Also run the product's `finetune` loop for the default strategy on this many
        seeds, for the distance between the cheap path and the product's loop.
    """
    from earmark.models.device import torch_threads
    from earmark.ranking.strategies import DEFAULT_STRATEGY

    from earmark.study.review_only import run_review_only

    study = Study(manifest, cfg, out, log)
    with torch_threads(cfg.threads):
        zero = study.zero_shot()
        orders = list(dict.fromkeys((*cfg.strategies, *cfg.screen)))
        # the estimate is also checked where each round of the loop ends (a small pool's
        # rounds end before the first default checkpoint)
        marks = sorted({*cfg.checkpoints, *(cfg.budget_minutes * r for r in range(1, cfg.rounds + 1))})
        ro = run_review_only(study, zero, orders, marks)
        runs: dict[str, dict[int, list[dict]]] = {}
        for seed in range(cfg.seeds if cfg.rounds else 0):
            for name in cfg.strategies:
                runs.setdefault(name, {})[seed] = study.run(name, seed, zero)
        product: dict[int, list[dict]] = {}
        if compare_product and cfg.training == "cheap" and DEFAULT_STRATEGY in cfg.strategies:
            for seed in range(min(compare_product, cfg.seeds)):
                product[seed] = study.run(DEFAULT_STRATEGY, seed, zero, training="product")
    record = al_study_record(study, runs, product, ro)
    Path(out, "al_study.json").write_text(json.dumps(record, indent=1, default=float) + "\n")
    plot(runs, ro, Path(out, "al_study.png"), cfg.rounds * cfg.budget_minutes or max(cfg.checkpoints))
    return record


def product_gap(cheap: dict[int, list[dict]], product: dict[int, list[dict]]) -> tuple[list[float], float]:
    """Per round, mean test WER (product - cheap) over the seeds both ran; the largest |gap|."""
    seeds = sorted(set(cheap) & set(product))
    if not seeds:
        return [], math.nan
    rounds = min(min(len(cheap[s]), len(product[s])) for s in seeds)
    gaps = [float(np.mean([_test_wer(product[s][k]) - _test_wer(cheap[s][k]) for s in seeds]))
            for k in range(rounds)]
    return gaps, max(abs(g) for g in gaps)


def al_study_record(study: Study, runs: dict[str, dict[int, list[dict]]], product: dict[int, list[dict]],
                    ro: dict[str, dict[int, dict]]) -> dict[str, Any]:
    """The flat figures the issue names, and per-strategy details.

    The review-minutes ratios come from the review-only curves (every order followed
    through the whole pool under the zero-shot model: random needs about a third of the
    pool, which no few rounds reach); the loop's rounds give the label saving, the
    product loop's gap and their own curves.
    """
    from earmark.ranking.strategies import DEFAULT_STRATEGY

    cfg = study.cfg
    horizon = cfg.rounds * cfg.budget_minutes or max(cfg.checkpoints)
    measured = DEFAULT_STRATEGY if DEFAULT_STRATEGY in ro else next(iter(ro))
    ros = review_only_summary(ro, measured, horizon, cfg.bootstrap)
    seeds = ros["seeds"]
    pool_min = float(np.mean([sum(study.rows[i].duration for i in study.splits[s].pool) / 60 for s in seeds]))
    n_test = cfg.test_speakers
    partial = len(seeds) < FULL_SEEDS or n_test < FULL_TEST_SPEAKERS or bool(cfg.speakers)
    est = ros["orders"][measured]["estimate_abs_error"]
    rec: dict[str, Any] = {
        "partial": partial,
        "seeds": len(seeds),
        "test_speakers": n_test,
        "speakers": len({r.speaker for r in study.rows}),
        "pool_minutes": pool_min,
        "measured_strategy": measured,
        "review_minutes_source": "review-only curves: each order through the whole pool under the zero-shot model",
        **{k: v for k, v in ros.items() if k.startswith("review_")},
        "pool_wer_estimate_abs_error": est.get("reported"),
        "pool_wer_estimate_abs_error_by_estimator": est,
        "review_only": ros,
    }
    default, why = choose_default_review_only(ros, DEFAULT_STRATEGY)
    rec["default_strategy"], rec["default_strategy_why"] = default, why
    if runs:
        rec.update(loop_record(study, runs, product))
    rec["pool_to_budget"] = pool_min / rec["largest_labeled_minutes"] if rec.get("largest_labeled_minutes") else (
        pool_min / horizon)
    rec["config"] = to_dict(cfg)
    return rec


def loop_record(study: Study, runs: dict[str, dict[int, list[dict]]],
                product: dict[int, list[dict]]) -> dict[str, Any]:
    """The figures of the loop's rounds (fine-tuned between rounds)."""
    from earmark.ranking.strategies import DEFAULT_STRATEGY

    cfg = study.cfg
    summary = summarize(runs, DEFAULT_STRATEGY, cfg.bootstrap)
    seeds = summary["seeds"]
    measured = next((n for n in (DEFAULT_STRATEGY,) if n in runs), "random")
    labeled = max(r[-1]["labeled_minutes"] for v in runs.values() for r in v.values())
    third = {n: [minutes_to_third(runs[n][s]) for s in seeds] for n in runs}
    saving, lo, hi, undefined = saving_interval(runs, measured, seeds, cfg.bootstrap)
    gaps, gap = product_gap(runs.get(DEFAULT_STRATEGY, {}), product)
    return {
        "loop_seeds": len(seeds),
        "largest_labeled_minutes": labeled,
        "training": cfg.training,
        "product_loop_checked": cfg.training == "product" or len(set(product)) >= 2,
        "product_loop_seeds": sorted(product),
        "product_loop_gap": gap,
        "product_loop_gap_per_round": gaps,
        "product_loop_test_wer": [[_test_wer(r) for r in product[s]] for s in sorted(product)],
        "loop_minutes_to_remove_a_third": third,
        "loop_review_minutes_ratio_vs_random": _ratio(third.get(measured, []), third.get("random", [])),
        "model_label_saving": None if math.isnan(saving) else saving,
        "model_label_saving_ci_low": None if not math.isfinite(lo) else lo,
        "model_label_saving_ci_high": None if not math.isfinite(hi) else hi,
        "model_label_saving_undefined_share": undefined,
        "loop_pool_wer_estimate_abs_error": summary["strategies"][measured]["estimate_abs_error"],
        "loop": summary,
    }


def plot(runs: dict[str, dict[int, list[dict]]], ro: dict[str, dict[int, dict]], path: Path,
         horizon: float) -> Path:
    """Pool WER against audio and annotator minutes in the review-only curves (means over
    seeds, first ``3 * horizon`` audio minutes), and, when the loop ran, test WER
    against labeled minutes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from earmark.study.curves import review_curve, wer_at
    from earmark.study.review_only import trace

    fig, axes = plt.subplots(1, 3 if runs else 2, figsize=(14 if runs else 10, 4.2), dpi=90)
    for name, by_seed in ro.items():
        style = "--" if name in ("random", "file-order", "oracle") else "-"
        cs = [review_curve([trace(r)], r["pool_words"]) for r in by_seed.values()]
        for ax, axis in zip(axes[:2], ("audio", "annotator")):
            xs = [c.audio_minutes if axis == "audio" else c.annotator_minutes for c in cs]
            top = 3 * horizon if axis == "audio" else min(x[-1] for x in xs) / 3
            grid = np.linspace(0, top, 80)
            ax.plot(grid, [np.mean([wer_at(x, c.wer, g) for x, c in zip(xs, cs)]) for g in grid], style,
                    label=name)
    for name, by_seed in runs.items():
        style = "--" if name in ("random", "file-order", "oracle") else "-"
        rounds = min(len(r) for r in by_seed.values())
        m = [np.mean([r[k]["labeled_minutes"] for r in by_seed.values()]) for k in range(rounds)]
        w = [np.mean([_test_wer(r[k]) for r in by_seed.values()]) for k in range(rounds)]
        axes[2].plot(m, w, style, marker="o", ms=3, label=name)
    labels = [("reviewed audio (min)", "pool WER (zero-shot model)"),
              ("annotator time (min, cost model)", "pool WER (zero-shot model)"),
              ("labeled audio (min)", "test WER (held-out speakers)")]
    for ax, (x, y) in zip(axes, labels):
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"review-cost study, mean over {len(next(iter(ro.values())))} seeds", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
