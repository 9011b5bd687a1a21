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


def tiny_speechocean_manifest(folder: Path, speakers: int = 4, per: int = 3) -> Path:
    """``per`` clips of each of the first ``speakers`` speechocean762 speakers, as a
    manifest with absolute audio paths (a simulation small enough for a test)."""
    rows = [json.loads(l) for l in (SHARED / "manifest.jsonl").read_text().splitlines() if l.strip()]
    by_speaker: dict[str, list[dict]] = {}
    for r in rows:
        by_speaker.setdefault(r["speaker"], []).append(r)
    chosen = [r for s in sorted(by_speaker)[:speakers] for r in by_speaker[s][:per]]
    manifest = folder / "m.jsonl"
    manifest.write_text("".join(json.dumps({**r, "audio": str(SHARED / r["audio"])}) + "\n" for r in chosen))
    return manifest


def one_row_manifest(folder: Path) -> Path:
    """A manifest of one row whose audio is never read (for refusals before model work)."""
    manifest = folder / "m.jsonl"
    manifest.write_text(json.dumps({"audio": "a.wav", "text": "hi", "speaker": "s1"}) + "\n")
    return manifest


def forbid_model_load(monkeypatch, module, what: str) -> None:
    """Make ``module.load_model`` fail the test: ``what`` must be checked before it."""

    def no_model(*a, **k):
        raise AssertionError(f"the model loaded before {what} was checked")

    monkeypatch.setattr(module, "load_model", no_model)
