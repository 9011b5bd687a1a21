"""Transcribe with an exported model in the engine it was exported for.

Used to check an export (:mod:`earmark.models.export`) against earmark's own decoding of
the same version: the same greedy search without a prompt, clip by clip, as those
engines serve it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ServedText:
    """One clip's transcript from an exported model."""

    text: str
    words: tuple[tuple[str, float, float], ...] = ()  # (word, start s, end s); empty if not asked


def faster_whisper_texts(model_dir: Path, audios: Sequence[np.ndarray], compute_type: str = "default",
                         words: bool = True, device: str = "cpu") -> list[ServedText]:
    """Transcribe 16 kHz clips with faster-whisper's ``WhisperModel(model_dir)``.

    Greedy (beam 1), no temperature fallback, no previous-text prompt, no VAD: the
    search earmark's decoder runs, so that a difference is the model's, not the
    search's. Timestamp tokens stay on, as faster-whisper serves by default: with
    ``without_timestamps=True`` it ran on past the end of some shipped clips ("... next
    weekend. and and and And .") where earmark and transformers stop.
    """
    from faster_whisper import WhisperModel

    fw = WhisperModel(str(model_dir), device=device, compute_type=compute_type, cpu_threads=0)
    out = []
    for audio in audios:
        segments, _ = fw.transcribe(audio, language="en", beam_size=1, temperature=0.0,
                                    condition_on_previous_text=False, word_timestamps=words,
                                    vad_filter=False)
        segments = list(segments)
        out.append(ServedText("".join(s.text for s in segments),
                              tuple((w.word, w.start, w.end) for s in segments for w in (s.words or ()))))
    return out


def transformers_texts(model_dir: Path, audios: Sequence[np.ndarray], device: str = "cpu") -> list[ServedText]:
    """Transcribe 16 kHz clips with transformers' ``WhisperForConditionalGeneration``.

    The processor and the generation config are the ones in ``model_dir``; decoding is
    greedy, as the exported generation config sets it.
    """
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    processor = WhisperProcessor.from_pretrained(str(model_dir))
    model = WhisperForConditionalGeneration.from_pretrained(str(model_dir)).to(device).eval()
    out = []
    with torch.inference_mode():
        for audio in audios:
            features = processor(audio, sampling_rate=16_000, return_tensors="pt").input_features
            ids = model.generate(features.to(device))
            out.append(ServedText(processor.batch_decode(ids, skip_special_tokens=True)[0]))
    return out
