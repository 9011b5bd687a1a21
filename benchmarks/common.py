"""Helpers shared by the benchmark scripts: the shared data set and result files."""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "speechocean762"
RESULTS = Path(__file__).resolve().parent / "results"


def read_manifest(data: Path = DATA, limit: int | None = None) -> list[dict]:
    """Rows of the speechocean762 manifest, with ``audio`` made absolute."""
    rows = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines() if line.strip()]
    for r in rows:
        r["audio"] = str(data / r["audio"])
    return rows[:limit] if limit else rows


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages: how busy the shared machine was."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def write_result(name: str, figures: dict) -> Path:
    """Write flat figures (numbers as numbers) to ``benchmarks/results/<name>.json``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    record = {**figures, "date": time.strftime("%Y-%m-%d"), "machine": machine()}
    out.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return out


def print_and_write(name: str, figures: dict, width: int) -> Path:
    """Print the figures, one a line (names right-aligned to ``width``), then write them
    as :func:`write_result` does and say where."""
    for k, v in figures.items():
        print(f"{k:>{width}}  {v}")
    out = write_result(name, figures)
    print(f"wrote {out}")
    return out


def clip_wer(reference: str, hypothesis: str) -> float:
    """WER of one clip after earmark's normalization (Whisper's English normalizer, digit
    runs joined: :func:`earmark.evaluate.metrics.normalize`); 1.0 for an empty hypothesis."""
    import jiwer

    from earmark.evaluate.metrics import normalize

    ref, hyp = normalize(reference or ""), normalize(hypothesis or "")
    if not ref.strip():
        return 0.0 if not hyp.strip() else 1.0
    return float(jiwer.wer(ref, hyp)) if hyp.strip() else 1.0


def machine() -> str:
    """A one-line description of where the figures were measured."""
    import torch

    return (f"{platform.machine()} {os.cpu_count()} cores{decoding_arithmetic()}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), "
            f"{'CUDA' if torch.cuda.is_available() else 'CPU only'}")


def decoding_arithmetic() -> str:
    """The arithmetic earmark decodes with here by default (``DecodeConfig.quantize`` "auto").

    It follows the CPU's bfloat16 instructions (``earmark.decode.precision``); decoding speed,
    and with it the review queue's order and which clips a benchmark corrects, differ
    between the two, so figures name it.
    """
    from earmark.decode.precision import resolve_precision

    return f" (decoding in {resolve_precision('auto', 'cpu')})"


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, in GB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
