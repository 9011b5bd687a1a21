"""Signs that decoding went round in a loop: repeated token blocks, and text that
compresses too well.

:func:`loops_batch` stops a row of the batched greedy loop as soon as its tokens end in
a repeated block; :func:`compression_ratio` is Whisper's after-the-fact detector, kept
with each transcript for the hallucination flags of :mod:`earmark.scoring`.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def compression_ratio(text: str) -> float:
    """Bytes of text over bytes of its zlib compression (Whisper's loop detector)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def loops_batch(history: "torch.Tensor", nxt: "torch.Tensor", min_tokens: int,
                max_period: int = 8) -> "torch.Tensor":
    """Per row, whether ``history`` + ``nxt`` ends in a block repeated 3+ times over
    ``min_tokens``+ tokens (blocks of 1 to ``max_period`` tokens).

    ``history`` is (rows, steps), every row the same length; ``nxt`` (rows,) the token
    each row would take next. Short legitimate repeats ("one zero one zero") stay;
    "Lili, Lili, Lili, Lili, ..." (the loop of an unsure or over-fitted model) stops.
    """
    import torch

    out = torch.zeros(nxt.shape[0], dtype=torch.bool, device=nxt.device)
    if min_tokens <= 0:
        return out
    seq = torch.cat([history, nxt[:, None]], dim=1)
    for period in range(1, max_period + 1):
        span = max(3, -(-min_tokens // period)) * period
        if seq.shape[1] >= span:
            tail = seq[:, -span:]
            out |= (tail[:, period:] == tail[:, :-period]).all(dim=1)
    return out
