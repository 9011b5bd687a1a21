"""Shared fixtures. Slow fixtures load the real tiny.en weights, never a stand-in."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "data_samples"
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


@pytest.fixture(scope="session")
def tiny_model():
    """The real tiny.en model (converted from the offline weight package once)."""
    from earmark.models import load_model

    return load_model("tiny.en", "cpu")


@pytest.fixture(scope="session")
def ranked_project(tmp_path_factory):
    """A project with every shipped sample imported and ranked by tiny.en."""
    from earmark.ingest import import_audio
    from earmark.project import init_project
    from earmark.ranking import rank

    root = tmp_path_factory.mktemp("ranked") / "proj"
    project = init_project(root)
    import_audio(project, SAMPLES / "manifest.jsonl", progress=False)
    rank(project, progress=False)
    return project


@pytest.fixture
def project(tmp_path):
    """An empty project."""
    from earmark.project import init_project

    return init_project(tmp_path / "proj")


@pytest.fixture
def copy_samples(tmp_path):
    """Copy a few shipped clips to a temp folder; returns the folder."""
    def _copy(names: list[str]) -> Path:
        out = tmp_path / "src"
        out.mkdir(exist_ok=True)
        for n in names:
            shutil.copy(SAMPLES / "audio" / n, out / n)
        return out
    return _copy
