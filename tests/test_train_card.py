"""Training on a GPU: the arithmetic (autocast, loss scaling) and the batch size chosen
for the card. The rules are pure functions, checked here on any machine; the tests
marked ``gpu`` train the real tiny.en on a CUDA GPU and are skipped where there is none.
"""

from __future__ import annotations

from dataclasses import asdict

import pytest

from earmark.config import FinetuneConfig

from _support import sample_rows

TINY = dict(n_mels=80, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6, n_audio_layer=4, n_vocab=51864,
            n_text_ctx=448, n_text_state=384, n_text_head=6, n_text_layer=4)
LARGE = dict(n_mels=128, n_audio_ctx=1500, n_audio_state=1280, n_audio_head=20, n_audio_layer=32, n_vocab=51866,
             n_text_ctx=448, n_text_state=1280, n_text_head=20, n_text_layer=32)
GIB = 1 << 30


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


needs_cuda = pytest.mark.skipif(not _cuda(), reason="no CUDA GPU here (torch.cuda.is_available() "
                                                     "is False): GPU training is not exercised")


def test_the_arithmetic_follows_the_card():
    from earmark.train.card import train_dtype

    assert train_dtype("cuda", (8, 0), bf16=True) == "bf16"  # A100
    assert train_dtype("cuda", (9, 0), bf16=True) == "bf16"  # H100
    assert train_dtype("cuda", (7, 5), bf16=False) == "fp16"  # T4: float16 and a GradScaler
    assert train_dtype("cuda", (7, 0), bf16=True) == "fp16"  # emulated bf16 on a V100 is no gain
    assert train_dtype("cpu") is None and train_dtype("mps") is None  # float32 as before


def test_the_weight_count_is_whispers():
    import whisper

    model = whisper.Whisper(whisper.ModelDimensions(**TINY))
    real = sum(p.numel() for p in model.parameters())
    from earmark.train.card import param_count

    assert abs(param_count(TINY) - real) / real < 0.05
    assert 1.45e9 < param_count(LARGE) < 1.6e9  # large-v3: 1.55 B


def test_the_card_batch_grows_with_memory_and_is_bounded():
    from earmark.train.card import MAX_TRAIN_BATCH, card_train_batch

    small, mid, big = (card_train_batch(m * GIB, TINY, "full") for m in (8, 24, 80))
    assert 1 <= small < mid < big == MAX_TRAIN_BATCH
    assert card_train_batch(GIB // 4, TINY, "full") == 1  # never below one window
    # the frozen encoder keeps no activations: more windows in decoder mode
    assert card_train_batch(8 * GIB, TINY, "decoder") > small
    # a larger model holds more per window and in its weights: fewer windows
    assert card_train_batch(80 * GIB, LARGE, "full") < card_train_batch(80 * GIB, TINY, "full")
    # float32 activations take twice the room of float16 ones
    assert card_train_batch(24 * GIB, TINY, "full", half=False) < mid


def test_a_cpu_run_takes_four_windows_unless_told(monkeypatch):
    from earmark.train.card import CPU_TRAIN_BATCH, chosen_batch

    def no_dims():
        raise AssertionError("the model's dimensions are only needed on a GPU")

    assert FinetuneConfig().batch_size == 0 and not FinetuneConfig().problems()
    assert chosen_batch(FinetuneConfig(device="cpu"), no_dims).batch_size == CPU_TRAIN_BATCH == 4
    assert chosen_batch(FinetuneConfig(device="cuda", batch_size=7), no_dims).batch_size == 7  # as set
    assert any("batch_size" in p for p in FinetuneConfig(batch_size=-1).problems())


def test_mixed_precision_is_plain_float32_on_a_cpu():
    import torch

    from earmark.train.card import MixedPrecision

    amp = MixedPrecision(torch.device("cpu"))
    assert amp.dtype is None and amp.scaler is None
    layer = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    before = layer.weight.detach().clone()
    with amp.autocast():
        out = layer(torch.ones(2, 4))
    assert out.dtype == torch.float32
    amp.backward(out.pow(2).mean())
    amp.step(opt, list(layer.parameters()), max_norm=1.0)
    assert not torch.equal(before, layer.weight)


@pytest.mark.slow
def test_in_memory_training_on_a_cpu_still_learns(tiny_model):
    """train_pairs (simulate's training) through the new step: a default (0) batch size
    becomes 4 and the loss on the trained texts falls."""
    import copy

    import numpy as np

    from earmark.audio import read_clip
    from earmark.train.pairs import train_pairs

    rows = sample_rows()[:4]
    audios = [read_clip(r["audio"]) for r in rows]
    texts = [r["text"] for r in rows]
    model = copy.deepcopy(tiny_model)
    before = _loss(model, audios, texts)
    train_pairs(model, texts, audios=audios, cfg=FinetuneConfig(mode="decoder", max_steps=4, lr=1e-4,
                                                                device="cpu", augment=False))
    after = _loss(model, audios, texts)
    assert np.isfinite(after) and after < before


@pytest.mark.slow
def test_a_run_saves_the_batch_size_chosen_for_its_device(tmp_path):
    """finetune with the default batch size (0) on a CPU trains on 4 windows a step and
    keeps that number with the run, so a resumed run plans its batches the same way."""
    from dataclasses import replace

    from earmark.train.finetune import finetune
    from test_finetune import SMALL, make_project, version

    project = make_project(tmp_path / "proj")
    r = finetune(project, replace(SMALL, batch_size=0, device="cpu", drift_clips=0), progress=False)
    assert version(project, r.version).config["batch_size"] == 4 and r.steps == 1


def _loss(model, audios, texts) -> float:
    import torch
    import torch.nn.functional as F
    import whisper

    from earmark.train.teacher import IGNORE, Targets

    targets_of = Targets(model)
    inputs, targets = (t.to(next(model.parameters()).device) for t in
                       targets_of.tensors([targets_of.sequence(t) for t in texts]))
    mels = torch.stack([whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(a)), model.dims.n_mels)
                        for a in audios]).to(inputs.device)
    with torch.no_grad():
        logits = model(mels, inputs)
    return float(F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                 ignore_index=IGNORE))


@pytest.mark.gpu
@pytest.mark.slow
@needs_cuda
def test_training_on_a_gpu_runs_in_half_precision_and_learns():
    import numpy as np
    import torch

    from earmark.audio import read_clip
    from earmark.models.loading import load_model
    from earmark.train.card import MixedPrecision, chosen_batch
    from earmark.train.pairs import train_pairs

    model = load_model("tiny.en", "cuda")
    amp = MixedPrecision(next(model.parameters()).device)
    assert amp.dtype in ("bf16", "fp16") and (amp.scaler is not None) == (amp.dtype == "fp16")
    with amp.autocast():  # matrix products run in half precision
        assert torch.nn.functional.linear(torch.ones(2, 2, device="cuda"), torch.ones(2, 2, device="cuda")).dtype \
            in (torch.bfloat16, torch.float16)
    chosen = chosen_batch(FinetuneConfig(device="cuda", mode="full"), asdict(model.dims)).batch_size
    assert chosen > 4  # tiny.en on any current card holds more than the CPU's 4 windows
    rows = sample_rows()[:8]
    audios = [read_clip(r["audio"]) for r in rows]
    texts = [r["text"] for r in rows]
    before = _loss(model, audios, texts)
    train_pairs(model, texts, audios=audios, cfg=FinetuneConfig(mode="full", max_steps=6, lr=1e-4,
                                                                device="cuda", augment=False))
    after = _loss(model, audios, texts)
    assert np.isfinite(after) and after < before
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay float32
