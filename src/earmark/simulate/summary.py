"""What a simulation found: learning curves averaged over seeds, labeling minutes saved
against random selection, the verdict, the plot, and the files written.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from earmark.config import to_dict

from earmark.study_config import SimulateConfig
from earmark.errors import BadConfig
from earmark.ranking.strategies import DEFAULT_STRATEGY
from earmark.simulate.study import RoundResult


def minutes_to_reach(minutes: Sequence[float], wers: Sequence[float], target: float) -> float | None:
    """Labeled minutes at which a curve first reaches ``target`` WER (linear in between).

    None when it never does.
    """
    for k, (m, w) in enumerate(zip(minutes, wers)):
        if w <= target:
            if k == 0:
                return float(m)
            m0, w0 = minutes[k - 1], wers[k - 1]
            return float(m0 + (m - m0) * (w0 - target) / (w0 - w)) if w0 != w else float(m)
    return None


def curve_area(minutes: Sequence[float], wers: Sequence[float]) -> float:
    """Area under a learning curve (WER x labeled minutes, trapezoids); lower is better."""
    m, w = np.asarray(minutes, dtype=float), np.asarray(wers, dtype=float)
    return float(np.sum((m[1:] - m[:-1]) * (w[1:] + w[:-1]) / 2)) if m.size > 1 else 0.0


def mean_curves(results: Sequence[RoundResult]) -> dict[str, dict[str, list[float]]]:
    """Per strategy, per round: mean labeled minutes and mean, min, max test WER over seeds."""
    out: dict[str, dict[str, list[float]]] = {}
    for name in dict.fromkeys(r.strategy for r in results):
        rounds = sorted({r.round for r in results if r.strategy == name})
        c: dict[str, list[float]] = {"minutes": [], "wer": [], "lo": [], "hi": [], "dev_wer": [],
                                     "changed": []}
        for k in rounds:
            rs = [r for r in results if r.strategy == name and r.round == k]
            c["minutes"].append(float(np.mean([r.labeled_minutes for r in rs])))
            w = [r.test_wer for r in rs]
            c["wer"].append(float(np.mean(w)))
            c["lo"].append(float(np.min(w)))
            c["hi"].append(float(np.max(w)))
            c["dev_wer"].append(float(np.mean([r.dev_wer for r in rs])))
            c["changed"].append(float(np.mean([r.changed_minutes for r in rs])))
        out[name] = c
    return out


def summarize(results: Sequence[RoundResult], baseline: str = "random") -> dict[str, dict[str, Any]]:
    """Per strategy: final test WER, minutes to reach the baseline's final WER, saving, area.

    ``label_saving`` is None where it cannot be computed, and ``label_saving_note`` then
    says why (the strategy never reached the baseline's final WER, or the baseline
    labeled no audio); otherwise the note is None.
    """
    curves = mean_curves(results)
    if baseline not in curves:
        raise BadConfig(f"the summary compares with {baseline!r}: add it to the strategies")
    target, full = curves[baseline]["wer"][-1], curves[baseline]["minutes"][-1]
    start = curves[baseline]["wer"][0]
    # a baseline that ended no better than it began sets a target every curve meets at
    # 0 minutes: a "100 % saving" there would say nothing about the strategies
    flat = (f"{baseline} ended no lower than its round-0 WER ({start:.4f}), so there is no "
            "labeling to save; run more rounds or a larger --budget" if target >= start else None)
    out = {}
    for name, c in curves.items():
        reach = minutes_to_reach(c["minutes"], c["wer"], target)
        note = (flat if flat else f"never reached {baseline}'s final WER" if reach is None
                else f"{baseline} labeled no audio" if not full else None)
        out[name] = {"final_test_wer": c["wer"][-1], "final_dev_wer": c["dev_wer"][-1],
                     "final_minutes": c["minutes"][-1], "changed_minutes": c["changed"][-1],
                     "minutes_to_random_final": reach,
                     "label_saving": None if note else 1 - reach / full,
                     "label_saving_note": note,
                     "curve_area": curve_area(c["minutes"], c["wer"])}
    return out


def _merit(s: dict[str, Any]) -> tuple[float, float]:
    """The summary's order of strategies, larger is better: label saving first (none at
    all when it cannot be computed), then a smaller curve area."""
    saving = s["label_saving"]
    return (-math.inf if saving is None else saving, -s["curve_area"])


def best_strategy(summary: dict[str, dict[str, Any]], baseline: str = "random") -> str | None:
    """The strategy ahead of all others that is also ahead of ``baseline``, or None.

    Ahead means a larger label saving, or an equal one with a smaller curve area (the
    order of :func:`_merit`). Without this check the least bad of the other strategies
    would be named best even when it lost to random selection on every measure.
    """
    bar = _merit(summary[baseline])
    ahead = [k for k, s in summary.items() if k != baseline and _merit(s) > bar]
    return max(ahead, key=lambda k: _merit(summary[k])) if ahead else None


def saving_text(s: dict[str, Any]) -> str:
    """A strategy's label saving for people: a percentage, or "n/a" and the reason."""
    if s["label_saving"] is None:
        return f"n/a ({s.get('label_saving_note') or 'not computed'})"
    return f"{s['label_saving']:.0%}"


def verdict(summary: dict[str, dict[str, Any]], baseline: str = "random") -> str:
    """One line naming the best strategy, or saying that none beat ``baseline``, with figures."""
    base = summary[baseline]
    others = [k for k in summary if k != baseline]
    if not others:
        return (f"no strategy to compare with {baseline} (final test WER "
                f"{base['final_test_wer']:.4f}, curve area {base['curve_area']:.3f})")
    best = best_strategy(summary, baseline)
    name = best or max(others, key=lambda k: _merit(summary[k]))
    s = summary[name]
    figures = (f"label saving {saving_text(s)}; final test WER {s['final_test_wer']:.4f} vs "
               f"{baseline} {base['final_test_wer']:.4f}; curve area {s['curve_area']:.3f} vs "
               f"{base['curve_area']:.3f}")
    if best is None:
        return f"no strategy beat {baseline}: the closest, {name}, had {figures}"
    return f"best: {name} ({figures})"


def plot(results: Sequence[RoundResult], path: Path) -> Path:
    """Learning curves: test WER against labeled minutes, a band (min-max) over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=90)
    for name, c in mean_curves(results).items():
        style = "--" if name in ("random", "longest-first") else "-"
        (line,) = ax.plot(c["minutes"], c["wer"], style, marker="o", ms=3, label=name)
        ax.fill_between(c["minutes"], c["lo"], c["hi"], color=line.get_color(), alpha=0.12)
    ax.set_xlabel("labeled audio (minutes)")
    ax.set_ylabel("test WER")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Active learning on held-out speakers (mean, band: min-max over seeds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def summary_table(summary: dict[str, dict[str, Any]]) -> str:
    """The summary as a Markdown table."""
    lines = ["| strategy | final test WER | final dev WER | labeled min | changed min | "
             "min to random's final WER | label saving | curve area |",
             "|---|---|---|---|---|---|---|---|"]
    for name, s in sorted(summary.items(), key=lambda kv: kv[1]["curve_area"]):
        reach = "not reached" if s["minutes_to_random_final"] is None else f"{s['minutes_to_random_final']:.2f}"
        saving = "n/a" if s["label_saving"] is None else f"{s['label_saving']:.0%}"
        lines.append(f"| {name} | {s['final_test_wer']:.4f} | {s['final_dev_wer']:.4f} | "
                     f"{s['final_minutes']:.2f} | {s['changed_minutes']:.2f} | {reach} | {saving} | "
                     f"{s['curve_area']:.3f} |")
    return "\n".join(lines)


def write_outputs(results: Sequence[RoundResult], detection: dict[str, float], cfg: SimulateConfig,
                  out: Path, seconds: float, clips: int) -> dict[str, Any]:
    """rounds.csv / rounds.json, learning_curve.png and summary.json in ``out``."""
    rows = [asdict(r) for r in results]
    with (out / "rounds.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (out / "rounds.json").write_text(json.dumps(rows, indent=1) + "\n")
    summary = summarize(results)
    best = best_strategy(summary)
    default_score = {"errors-per-second": "errors_per_second", "min-word-prob": "min_word_prob",
                     "least-confidence": "least_confidence", "entropy": "entropy"}.get(DEFAULT_STRATEGY)
    word_measure = {"errors_per_second": "word_auc_word_prob", "min_word_prob": "word_auc_word_prob",
                    "least_confidence": "word_auc_least_confidence", "entropy": "word_auc_entropy"}
    record = {"summary": summary, "error_detection": detection, "best_strategy": best,
              "best_label_saving": None if best is None else summary[best]["label_saving"],
              "verdict": verdict(summary),
              "default_strategy": DEFAULT_STRATEGY,
              "default_error_auc": detection.get(word_measure.get(default_score or "", ""), math.nan),
              "config": to_dict(cfg), "clips": clips, "seconds": round(seconds, 1),
              "table": summary_table(summary)}
    (out / "summary.json").write_text(json.dumps(record, indent=2, default=float) + "\n")
    plot(results, out / "learning_curve.png")
    return record
