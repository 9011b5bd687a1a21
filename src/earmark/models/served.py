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


def ctranslate2_texts(model_dir: Path, audios: Sequence[np.ndarray], max_tokens_per_second: float = 6.0,
                      min_max_tokens: int = 16) -> list[ServedText]:
    """Transcribe with the CTranslate2 model itself, on openai-whisper's features.

    The same log-mel input and the same search as earmark's decoder (greedy, no
    timestamps, openai-whisper's suppressed tokens and timestamps suppressed, the token
    cap by duration), so that any difference from earmark's text is the converted
    model's. faster-whisper computes its own features and searches with timestamps, which
    on hard audio changes more than the conversion does.
    """
    import ctranslate2
    import torch
    import whisper

    model = ctranslate2.models.Whisper(str(model_dir), device="cpu")
    multilingual = model.is_multilingual
    tk = whisper.tokenizer.get_tokenizer(multilingual, language="en" if multilingual else None,
                                         num_languages=model.num_languages, task="transcribe")
    # as earmark's decoder: every special and timestamp token, and the non-speech symbols
    suppress = sorted(set(tk.non_speech_tokens) | set(range(tk.eot + 1, tk.encoding.n_vocab)))
    out = []
    for audio in audios:
        mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(audio)), model.n_mels)
        cap = int(max_tokens_per_second * len(audio) / 16_000) + min_max_tokens
        prompt = list(tk.sot_sequence_including_notimestamps)
        result = model.generate(ctranslate2.StorageView.from_array(mel.numpy()[None]), [prompt],
                                beam_size=1, suppress_tokens=suppress, suppress_blank=True,
                                max_length=cap + len(prompt))
        out.append(ServedText(tk.decode([t for t in result[0].sequences_ids[0] if t < tk.eot])))
    return out
