"""Training-time audio augmentation with torchaudio.

Three kinds, each cheap on the CPU:

- speed perturbation (Kaldi style: the clip is resampled, so tempo and pitch change
  together), applied to each clip before it is packed into a window;
- white noise at a random signal-to-noise ratio (``torchaudio.functional.add_noise``);
- SpecAugment frequency and time masks on the log-mel window
  (``torchaudio.transforms.FrequencyMasking`` / ``TimeMasking``).

Every function takes its randomness from the caller (a ``random.Random`` and a
``torch.Generator``) so that a resumed fine-tuning run sees the same augmented batches
as the run it continues.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from earmark.config import SAMPLE_RATE, AugmentConfig

if TYPE_CHECKING:
    import torch

MEL_FRAMES_PER_SECOND = 100


def speed_perturb(audio: "torch.Tensor", factor: float) -> "torch.Tensor":
    """Play ``audio`` ``factor`` times faster (0.9: slower and longer).

    Parameters
    ----------
    audio
        (samples,) float32 at 16 kHz.
    factor
        Speed ratio; 1.0 returns the input unchanged.
    """
    import torchaudio.functional as F

    if abs(factor - 1.0) < 1e-6:
        return audio
    # reading the signal as if sampled at factor*16k and resampling to 16k changes its
    # length by 1/factor; integer rates keep the polyphase filter exact and small
    orig = int(round(SAMPLE_RATE * factor / 100)) * 100
    return F.resample(audio, orig_freq=orig, new_freq=SAMPLE_RATE)


def add_white_noise(audio: "torch.Tensor", snr_db: float, generator: "torch.Generator") -> "torch.Tensor":
    """Add white noise so that the signal-to-noise ratio is ``snr_db`` decibels."""
    import torch
    import torchaudio.functional as F

    noise = torch.randn(audio.shape, generator=generator, dtype=audio.dtype)
    out = F.add_noise(audio[None], noise[None], torch.tensor([float(snr_db)]))[0]
    return out.clamp(-1.0, 1.0)


def augment_wave(audio: "torch.Tensor", cfg: AugmentConfig, rng: random.Random,
                 generator: "torch.Generator") -> "torch.Tensor":
    """Speed perturbation, then noise with probability ``cfg.noise_prob``."""
    if cfg.speed_factors:
        audio = speed_perturb(audio, rng.choice(cfg.speed_factors))
    if rng.random() < cfg.noise_prob:
        audio = add_white_noise(audio, rng.uniform(*cfg.snr_db), generator)
    return audio


def spec_augment(mel: "torch.Tensor", speech_seconds: float, cfg: AugmentConfig,
                 generator: "torch.Generator") -> "torch.Tensor":
    """Mask random mel bands and time spans of one window.

    Parameters
    ----------
    mel
        (n_mels, frames) log-mel of a 30 s window.
    speech_seconds
        How much of the window holds audio; time masks fall only there and their
        number scales with it, so a window packed with clips gets more than one holding
        a single short clip.
    generator
        Source of randomness (torchaudio's transforms draw from torch's global
        generator, so it is seeded from this one for the duration of the call).
    """
    import torch
    import torchaudio.transforms as T

    mel = mel.clone()
    fill = float(mel.mean())  # masks take the window's mean, not 0 (which is loud in Whisper's scale)
    frames = max(1, min(mel.shape[-1], int(speech_seconds * MEL_FRAMES_PER_SECOND)))
    n_time = int(round(cfg.time_masks_per_10s * speech_seconds / 10.0))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        freq = T.FrequencyMasking(cfg.freq_mask_bins)
        time = T.TimeMasking(min(cfg.time_mask_frames, frames))
        for _ in range(cfg.freq_masks):
            mel = freq(mel, fill)
        speech = mel[:, :frames]
        for _ in range(n_time):
            speech = time(speech, fill)
        mel[:, :frames] = speech
    return mel
