"""Run the study (resumable) and write ``al_study.json`` and its plot."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

from earmark.config import to_dict

from earmark.study_config import StudyConfig
from earmark.study.report import choose_default, curve, minutes_to_third, saving_interval, \
    summarize, _ratio, _test_wer
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

    study = Study(manifest, cfg, out, log)
    with torch_threads(cfg.threads):
        zero = study.zero_shot()
        runs: dict[str, dict[int, list[dict]]] = {}
        for seed in range(cfg.seeds):
            for name in cfg.strategies:
                runs.setdefault(name, {})[seed] = study.run(name, seed, zero)
        product: dict[int, list[dict]] = {}
        if compare_product and cfg.training == "cheap" and DEFAULT_STRATEGY in cfg.strategies:
            for seed in range(min(compare_product, cfg.seeds)):
                product[seed] = study.run(DEFAULT_STRATEGY, seed, zero, training="product")
    record = al_study_record(study, runs, product)
    Path(out, "al_study.json").write_text(json.dumps(record, indent=1, default=float) + "\n")
    plot(runs, Path(out, "al_study.png"))
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


def al_study_record(study: Study, runs: dict[str, dict[int, list[dict]]],
                    product: dict[int, list[dict]]) -> dict[str, Any]:
    """The flat figures the issue names, and per-strategy details."""
    from earmark.ranking.strategies import DEFAULT_STRATEGY

    cfg = study.cfg
    summary = summarize(runs, DEFAULT_STRATEGY, cfg.bootstrap)
    seeds = summary["seeds"]
    default, why = choose_default(summary, DEFAULT_STRATEGY)
    measured = next((n for n in (DEFAULT_STRATEGY, default) if n in runs), "random")
    pool_min = float(np.mean([sum(study.rows[i].duration for i in study.splits[s].pool) / 60 for s in seeds]))
    labeled = max(r[-1]["labeled_minutes"] for v in runs.values() for r in v.values())
    third = {n: [minutes_to_third(runs[n][s]) for s in seeds] for n in runs}
    third_a = {n: [minutes_to_third(runs[n][s], "annotator") for s in seeds] for n in runs}
    saving, lo, hi, undefined = saving_interval(runs, measured, seeds, cfg.bootstrap)
    gaps, gap = product_gap(runs.get(DEFAULT_STRATEGY, {}), product)
    n_test = cfg.test_speakers
    partial = len(seeds) < FULL_SEEDS or n_test < FULL_TEST_SPEAKERS or bool(cfg.speakers)
    return {
        "partial": partial,
        "seeds": len(seeds),
        "test_speakers": n_test,
        "speakers": len({r.speaker for r in study.rows}),
        "pool_minutes": pool_min,
        "largest_labeled_minutes": labeled,
        "pool_to_budget": pool_min / labeled if labeled else math.nan,
        "training": cfg.training,
        "product_loop_checked": cfg.training == "product" or len(set(product)) >= 2,
        "product_loop_seeds": sorted(product),
        "product_loop_gap": gap,
        "product_loop_gap_per_round": gaps,
        "product_loop_test_wer": [[_test_wer(r) for r in product[s]] for s in sorted(product)],
        "measured_strategy": measured,
        "review_minutes_ratio_vs_random": _ratio(third.get(measured, []), third.get("random", [])),
        "review_minutes_ratio_vs_oracle": _ratio(third.get(measured, []), third.get("oracle", [])),
        "review_annotator_minutes_ratio_vs_random": _ratio(third_a.get(measured, []), third_a.get("random", [])),
        "review_annotator_minutes_ratio_vs_oracle": _ratio(third_a.get(measured, []), third_a.get("oracle", [])),
        "minutes_to_remove_a_third": third,
        "annotator_minutes_to_remove_a_third": third_a,
        "model_label_saving": None if math.isnan(saving) else saving,
        "model_label_saving_ci_low": None if not math.isfinite(lo) else lo,
        "model_label_saving_ci_high": None if not math.isfinite(hi) else hi,
        "model_label_saving_undefined_share": undefined,
        "pool_wer_estimate_abs_error": summary["strategies"][measured]["estimate_abs_error"],
        "default_strategy": default,
        "default_strategy_why": why,
        "summary": summary,
        "config": to_dict(cfg),
    }


def plot(runs: dict[str, dict[int, list[dict]]], path: Path) -> Path:
    """Pool WER against audio and annotator minutes, test WER against labeled minutes
    (means over seeds; pool curves on a grid)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from earmark.study.curves import wer_at

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), dpi=90)
    for name, by_seed in runs.items():
        style = "--" if name in ("random", "file-order", "oracle") else "-"
        for ax, axis in zip(axes[:2], ("audio", "annotator")):
            cs = [curve(r, axis) for r in by_seed.values()]
            top = min(c[0][-1] for c in cs)
            grid = np.linspace(0, top, 60)
            mean = [np.mean([wer_at(c[0], c[1], g) for c in cs]) for g in grid]
            ax.plot(grid, mean, style, label=name)
        rounds = min(len(r) for r in by_seed.values())
        m = [np.mean([r[k]["labeled_minutes"] for r in by_seed.values()]) for k in range(rounds)]
        w = [np.mean([_test_wer(r[k]) for r in by_seed.values()]) for k in range(rounds)]
        axes[2].plot(m, w, style, marker="o", ms=3, label=name)
    for ax, (x, y) in zip(axes, (("reviewed audio (min)", "pool WER"), ("annotator time (min, cost model)", "pool WER"),
                                 ("labeled audio (min)", "test WER (held-out speakers)"))):
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"review-cost study, mean over {len(next(iter(runs.values())))} seeds", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
