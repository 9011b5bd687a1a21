"""The clips of a simulation: the manifest's rows, the speaker splits, and their encoder
outputs (computed once per clip and shared by every round).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from earmark.audio import read_clip
from earmark.config import SAMPLE_RATE
from earmark.study_config import SimulateConfig
from earmark.errors import BadConfig
from earmark.sources import manifest_records

if TYPE_CHECKING:
    import whisper


POSITIONS_PER_SECOND = 50  # encoder positions per second of audio


@dataclass(frozen=True)
class Study:
    """The clips of a simulation and their encoder outputs (computed once)."""

    ids: list[str]
    speakers: list[str]
    texts: list[str]
    durations: np.ndarray  # seconds
    features: np.ndarray  # (clips, frames, state) float16: encoder outputs, clip at t=0
    frames: np.ndarray  # encoder positions each clip uses
    embeddings: np.ndarray  # (clips, state): mean over the clip's own frames


@dataclass(frozen=True)
class RoundResult:
    """One (strategy, seed, round) point of a learning curve."""

    strategy: str
    seed: int
    round: int
    labeled_clips: int
    labeled_minutes: float
    changed_minutes: float  # audio minutes labeled so far whose hypothesis a person changed
    test_wer: float
    dev_wer: float
    seconds: float  # wall time of the round


def read_study_manifest(path: Path | str) -> list[dict[str, Any]]:
    """Rows of a JSONL or CSV manifest (audio, text, speaker, duration), audio made absolute.

    Raises
    ------
    BadManifest
        Missing, unreadable or malformed (see :func:`earmark.sources.manifest_records`).
    BadConfig
        A row lacks the audio, text or speaker that a simulation needs; its line is named.
    """
    path = Path(path)
    rows = []
    for n, r in manifest_records(path):
        if not r.get("audio") or "speaker" not in r or "text" not in r:
            raise BadConfig(f"{path}:{n}: simulate needs 'audio', 'speaker' and 'text' on every row")
        rows.append({**r, "audio": str((path.parent / r["audio"]).resolve())})
    return rows


def as_typed(text: str) -> str:
    """A reference as a person would type the correction: all-caps corpora (such as
    speechocean762) in sentence case, since training Whisper on all-caps text teaches it
    rare upper-case tokens and made the test WER worse here; other text unchanged."""
    return text.capitalize() if text.isupper() else text


def split_speakers(speakers: Sequence[str], seed: int, n_test: int,
                   n_dev: int) -> tuple[set[str], set[str], set[str]]:
    """Speaker-disjoint (pool, dev, test) sets, drawn with ``seed``."""
    names = sorted(set(speakers))
    if n_test + n_dev >= len(names):
        raise BadConfig(f"{len(names)} speakers cannot give {n_test} test and {n_dev} dev "
                        "speakers and still leave a pool; pass smaller --test-speakers and "
                        "--dev-speakers, or a manifest with more speakers")
    random.Random(seed).shuffle(names)
    return set(names[n_test + n_dev :]), set(names[n_test : n_test + n_dev]), set(names[:n_test])


def choose_speakers(rows: list[dict[str, Any]], n: int, seed: int = 0) -> list[dict[str, Any]]:
    """The rows of ``n`` speakers drawn with ``seed`` (all rows when ``n`` is 0)."""
    names = sorted({r["speaker"] for r in rows})
    if not n or n >= len(names):
        return rows
    keep = set(random.Random(seed).sample(names, n))
    return [r for r in rows if r["speaker"] in keep]


def encode_study(model: "whisper.Whisper", rows: list[dict[str, Any]], cfg: SimulateConfig,
                 width: int | None = None) -> Study:
    """Run the encoder once per clip (alone in its window) and keep what later rounds need.

    ``width``: encoder positions kept per clip (default: what the longest clip of
    ``rows`` needs); parts encoded apart must share it, so that a batch cut to its
    longest clip reads real encoder states for the shorter ones, never padding.
    """
    import torch
    import whisper

    encoder = model.encoder  # float32: the simulation decodes with quantize="none" on a CPU
    device = next(model.parameters()).device
    audios = [read_clip(r["audio"]) for r in rows]
    durations = np.array([min(a.size / SAMPLE_RATE, 30.0) for a in audios])
    margin = cfg.context_margin_seconds * POSITIONS_PER_SECOND
    frames = np.minimum(np.ceil(durations * POSITIONS_PER_SECOND + margin), 1500).astype(int)
    width = max(int(frames.max()), width or 0)
    feats = np.zeros((len(rows), width, model.dims.n_audio_state), dtype=np.float16)
    emb = np.zeros((len(rows), model.dims.n_audio_state), dtype=np.float32)
    for b in range(0, len(rows), 8):
        mels = torch.stack([whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(a)),
                                                        model.dims.n_mels) for a in audios[b : b + 8]])
        with torch.inference_mode():
            out = encoder(mels.to(device)).float().cpu().numpy()
        for k, f in enumerate(out):
            i = b + k
            feats[i] = f[:width]
            own = max(1, int(durations[i] * POSITIONS_PER_SECOND))
            emb[i] = f[:own].mean(axis=0)
    return Study(ids=[str(r.get("id", r["audio"])) for r in rows], speakers=[r["speaker"] for r in rows],
                 texts=[as_typed(r["text"]) for r in rows], durations=durations, features=feats,
                 frames=frames, embeddings=emb)


def concat_studies(parts: list[Study]) -> Study:
    width = max(p.features.shape[1] for p in parts)
    feats = np.concatenate([np.pad(p.features, ((0, 0), (0, width - p.features.shape[1]), (0, 0)))
                            for p in parts])
    return Study(ids=[i for p in parts for i in p.ids], speakers=[x for p in parts for x in p.speakers],
                 texts=[t for p in parts for t in p.texts],
                 durations=np.concatenate([p.durations for p in parts]), features=feats,
                 frames=np.concatenate([p.frames for p in parts]),
                 embeddings=np.concatenate([p.embeddings for p in parts]))
