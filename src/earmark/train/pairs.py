"""Fine-tuning on (clip, text) pairs held in memory, with no project.

:func:`train_pairs` is the library's training step without a store, dev split, gate
or saved state, for :mod:`earmark.simulate`, which replays many rounds on a corpus
whose reference texts stand in for the corrections.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from earmark.config import FinetuneConfig
from earmark.errors import BadConfig
from earmark.train.card import MixedPrecision, chosen_batch
from earmark.train.teacher import IGNORE, Targets, optimizer
from earmark.train.trainable import merge_lora, prepare_model
from earmark.train.trainer import check_config

if TYPE_CHECKING:
    import whisper


def train_pairs(model: "whisper.Whisper", texts: list[str], *, audios: list[np.ndarray] | None = None,
                features: Any = None, frames: list[int] | None = None,
                cfg: FinetuneConfig = FinetuneConfig(mode="decoder")) -> "whisper.Whisper":
    """Fine-tune ``model`` in place on (clip, text) pairs held in memory; return it.

    The library's training step without a project, store, dev split or gate (used by
    :mod:`earmark.simulate`). One clip per window, no packing or augmentation; the
    same teacher forcing and AdamW schedule as :class:`earmark.train.trainer.Trainer`
    (:mod:`earmark.train.teacher`). Runs ``cfg.max_steps`` steps, or ``cfg.epochs``
    passes over the clips.

    Parameters
    ----------
    model
        A loaded Whisper model; prepared for ``cfg.mode`` here and left in eval mode.
    texts
        The reference transcript of each clip.
    audios
        The clips (float32, 16 kHz); needed unless ``features`` are given.
    features
        ``decoder`` mode only: each clip's encoder output, ``(clips, frames, state)``
        (array or tensor, any float dtype), computed once by the caller.
    frames
        With ``features``: encoder positions each clip needs; a batch is cut to its
        longest, so short clips train on short contexts, as they are decoded.
    cfg
        Mode, steps or epochs, batch size, learning rate, seed.
    """
    import torch
    import torch.nn.functional as F
    import whisper

    check_config(cfg)
    if features is None and audios is None:
        raise BadConfig("train_pairs needs audios or (decoder mode) features")
    if features is not None and cfg.mode != "decoder":
        raise BadConfig("encoder outputs can only train in decoder mode (the encoder is frozen)")
    device = next(model.parameters()).device
    cfg = chosen_batch(replace(cfg, device=str(device)), lambda: asdict(model.dims))  # 0: for the card
    amp = MixedPrecision(device)  # autocast (and loss scaling) on a GPU only
    prepare_model(model, cfg)
    targets_of = Targets(model)
    seqs = [targets_of.sequence(t.strip()) for t in texts]
    per_epoch = math.ceil(len(texts) / cfg.batch_size)
    total = cfg.max_steps or cfg.epochs * per_epoch
    rng = random.Random(cfg.seed)
    batches: list[list[int]] = []
    while len(batches) < total:
        order = list(range(len(texts)))
        rng.shuffle(order)
        batches += [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    params, opt, sched = optimizer(model, cfg, total)
    model.train()
    for idx in batches[:total]:
        inputs, targets = (t.to(device) for t in targets_of.tensors([seqs[i] for i in idx]))
        if features is not None:
            cut = max(frames[i] for i in idx) if frames else None
            xa = torch.stack([torch.as_tensor(features[i][:cut]) for i in idx]).to(device, torch.float32)
            with amp.autocast():
                logits = model.decoder(inputs, xa)
        else:
            mels = torch.stack([whisper.log_mel_spectrogram(
                whisper.pad_or_trim(torch.from_numpy(audios[i])), model.dims.n_mels)  # type: ignore[index]
                for i in idx]).to(device)
            with amp.autocast():
                logits = model(mels, inputs)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        amp.backward(loss)
        amp.step(opt, params, cfg.max_grad_norm)
        sched.step()
    model.eval()
    if cfg.mode == "lora":
        merge_lora(model)
    model.requires_grad_(False)
    return model
