"""Decoding settings for a GPU: the batch size its memory holds.

The CPU default of 16 windows a batch keeps a GPU mostly idle; a batch as large as the
card's free memory allows (bounded: a batch runs until its longest sequence ends, so
beyond a few hundred windows a larger batch only waits longer) is what makes it fast.
Half precision on a GPU is chosen by :func:`earmark.decode.precision.resolve_precision`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import whisper

    from earmark.config import DecodeConfig

MAX_GPU_BATCH = 256
MEMORY_SHARE = 0.4  # of the free memory: the rest for the encoder's transients, other users


def window_bytes(n_text_layer: int, n_audio_state: int, n_audio_ctx: int = 1500) -> int:
    """Memory one window holds while it decodes, in float16, with a margin of two.

    The cross-attention keys and values of every decoder layer (2 x layers x frames x
    width) dominate; the encoder's output (frames x width, float32) comes on top.
    """
    cross = 2 * n_text_layer * n_audio_ctx * n_audio_state * 2
    features = n_audio_ctx * n_audio_state * 4
    return 2 * (cross + features)


def card_batch_size(free_bytes: int, n_text_layer: int, n_audio_state: int) -> int:
    """Windows per batch for ``free_bytes`` of GPU memory (16 to :data:`MAX_GPU_BATCH`)."""
    fits = int(free_bytes * MEMORY_SHARE) // window_bytes(n_text_layer, n_audio_state)
    return max(16, min(MAX_GPU_BATCH, fits))


def for_device(cfg: "DecodeConfig", model: "whisper.Whisper") -> "DecodeConfig":
    """``cfg`` with a batch size chosen for the GPU ``model`` is on (unchanged on a CPU).

    A larger batch size asked for is kept.
    """
    device = next(model.parameters()).device
    if device.type != "cuda":
        return cfg
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    batch = card_batch_size(free, model.dims.n_text_layer, model.dims.n_audio_state)
    return replace(cfg, batch_size=max(cfg.batch_size, batch))
