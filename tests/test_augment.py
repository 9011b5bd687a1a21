"""torchaudio augmentation: lengths, noise level, masks, determinism."""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")

from earmark.train.augment import add_white_noise, augment_wave, spec_augment, speed_perturb  # noqa: E402
from earmark.config import AugmentConfig  # noqa: E402


def tone(seconds: float = 2.0) -> "torch.Tensor":
    t = torch.arange(int(16000 * seconds)) / 16000
    return (0.3 * torch.sin(2 * torch.pi * 220 * t)).float()


def test_speed_perturbation_changes_the_length():
    x = tone(2.0)
    assert speed_perturb(x, 1.0) is x
    assert speed_perturb(x, 0.9).numel() == pytest.approx(x.numel() / 0.9, rel=0.01)
    assert speed_perturb(x, 1.1).numel() == pytest.approx(x.numel() / 1.1, rel=0.01)


def test_noise_is_added_at_the_requested_snr():
    x = tone(2.0)
    y = add_white_noise(x, 20.0, torch.Generator().manual_seed(0))
    noise = y - x
    snr = 10 * torch.log10(x.pow(2).mean() / noise.pow(2).mean())
    assert float(snr) == pytest.approx(20.0, abs=0.5)


def test_wave_augmentation_is_deterministic_under_a_seed():
    cfg = AugmentConfig(noise_prob=1.0)
    a = augment_wave(tone(), cfg, random.Random(3), torch.Generator().manual_seed(3))
    b = augment_wave(tone(), cfg, random.Random(3), torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_spec_augment_masks_bands_and_spans_inside_the_speech():
    mel = torch.randn(80, 3000)
    cfg = AugmentConfig(freq_masks=2, freq_mask_bins=10, time_masks_per_10s=2.0, time_mask_frames=30)
    out = spec_augment(mel, 10.0, cfg, torch.Generator().manual_seed(1))
    assert out.shape == mel.shape
    changed = out != mel
    assert changed.any()
    assert torch.equal(out[:, 1000:][~changed[:, 1000:]], mel[:, 1000:][~changed[:, 1000:]])
    # beyond the speech only frequency masks (whole rows) may change values
    rows_masked = changed[:, 1000:].all(dim=1) | ~changed[:, 1000:].any(dim=1)
    assert rows_masked.all()
    again = spec_augment(mel, 10.0, cfg, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
