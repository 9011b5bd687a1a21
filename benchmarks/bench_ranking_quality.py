"""How well each clip score predicts the clip's true WER, and how fast ranking runs.

Imports speechocean762 into a temporary project, runs ``earmark rank`` (the library
call), then correlates every score with each clip's WER against the reference
(Spearman rank correlation; Whisper's English normalizer before WER).

    .venv/bin/python benchmarks/bench_ranking_quality.py [--limit N]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sqlalchemy import select

from common import clip_wer, peak_rss_gb, read_manifest, write_result
from earmark.ingest import import_audio
from earmark.store.project import init_project
from earmark.ranking.rank import rank
from earmark.ranking.strategies import DEFAULT_STRATEGY, STRATEGIES, get_strategy
from earmark.store.db import Clip, TranscriptRow


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, help="first N clips only (default: all 1,250)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        rows = read_manifest(limit=args.limit)
        manifest = Path(tmp) / "manifest.jsonl"
        import json

        manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
        project = init_project(Path(tmp) / "proj")
        import_audio(project, manifest)
        report = rank(project)
        with project.store.session() as s:
            data = s.execute(select(Clip.reference_text, TranscriptRow.text, TranscriptRow.scores)
                             .join(TranscriptRow, TranscriptRow.clip_id == Clip.id)).all()
    wers = np.array([clip_wer(ref, hyp) for ref, hyp, _ in data])
    figures: dict[str, float | int | str] = {}
    print(f"{len(data)} clips, corpus mean clip WER {wers.mean():.3f}")
    print(f"{'strategy':<20} {'score':<20} {'spearman vs clip WER':>22}")
    for name in sorted(STRATEGIES):
        score = get_strategy(name).score_name
        if not score:
            continue
        values = np.array([sc[score] for _, _, sc in data])
        rho = float(spearmanr(values, wers).statistic)
        figures[f"spearman_{score}"] = round(rho, 4)
        print(f"{name:<20} {score:<20} {rho:>22.3f}")
    default_score = get_strategy(DEFAULT_STRATEGY).score_name
    figures.update(
        rank_correlation=figures[f"spearman_{default_score}"],
        default_strategy=DEFAULT_STRATEGY,
        audio_seconds_per_second=round(report.audio_seconds_per_second, 2),
        audio_seconds=round(report.audio_seconds, 1),
        wall_seconds=round(report.wall_seconds, 1),
        clips=len(data),
        mean_clip_wer=round(float(wers.mean()), 4),
        peak_rss_gb=round(peak_rss_gb(), 2),
    )
    print(f"ranking: {report.audio_seconds:.0f} s of audio in {report.wall_seconds:.0f} s = "
          f"{report.audio_seconds_per_second:.1f} audio s/s; peak RSS {figures['peak_rss_gb']} GB")
    print("wrote", write_result("ranking_quality", figures))


if __name__ == "__main__":
    main()
