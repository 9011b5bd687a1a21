"""Helpers shared by the test modules (paths, synthetic audio, WER)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "src" / "earmark" / "samples"
SHARED = REPO.parent / "shared" / "data" / "speechocean762"
SR = 16_000


def sample_rows() -> list[dict]:
    """The shipped manifest rows (audio paths absolute)."""
    rows = [json.loads(l) for l in (SAMPLES / "manifest.jsonl").read_text().splitlines() if l.strip()]
    for r in rows:
        r["audio"] = str(SAMPLES / r["audio"])
    return rows


def wer(reference: str, hypothesis: str) -> float:
    """Clip WER after Whisper's English normalizer."""
    import jiwer
    from whisper.normalizers import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    ref, hyp = norm(reference), norm(hypothesis)
    return float(jiwer.wer(ref, hyp)) if hyp.strip() else 1.0


def write_wav(path: Path, audio: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, sr, subtype=subtype)
    return path


def tone(seconds: float, freq: float = 220.0, sr: int = SR, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_manifest(folder: Path, names: tuple[str, ...]) -> Path:
    """A JSONL manifest of some shipped samples, with absolute audio paths."""
    rows = [json.loads(line) for line in (SAMPLES / "manifest.jsonl").read_text().splitlines()
            if line.strip()]
    chosen = [{**r, "audio": str(SAMPLES / r["audio"])} for r in rows
              if Path(r["audio"]).stem in names]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in chosen))
    return path


def damage(project, table: str) -> None:
    """Overwrite the first page of ``table`` (its B-tree root) with junk.

    The project's connections are closed first, so the next query reads the file anew.
    """
    project.store.dispose()
    db = project.root / "earmark.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every row in the main file
        page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    with open(db, "r+b") as f:
        f.seek((page - 1) * size + 8)
        f.write(b"\x07" * (size - 16))
