"""Signs that decoding went round in a loop: repeated token blocks, and text that
compresses too well.

:func:`loops_batch` stops a row of the batched greedy loop as soon as its tokens end in
a repeated block, and :func:`first_pass` says how much of the row to keep (the repeats
go); :func:`compression_ratio` is Whisper's after-the-fact detector, kept with each
transcript for the hallucination flags of :mod:`earmark.ranking.scoring`.
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


def loop_span(period: int, min_tokens: int) -> int:
    """Tokens a loop of blocks of ``period`` tokens must cover: 3 blocks, and at least
    ``min_tokens``."""
    return max(3, -(-min_tokens // period)) * period


def loops_batch(history: "torch.Tensor", nxt: "torch.Tensor", min_tokens: int,
                max_period: int) -> "torch.Tensor":
    """Per row, the shortest block that ``history`` + ``nxt`` ends repeating 3+ times over
    ``min_tokens``+ tokens (1 to ``max_period`` tokens), or 0 when it ends in no loop.

    ``history`` is (rows, steps), every row the same length; ``nxt`` (rows,) the token
    each row would take next. Short legitimate repeats ("one zero one zero") stay;
    "Lili, Lili, Lili, Lili, ..." (the loop of an unsure or over-fitted model) stops.
    """
    import torch

    out = torch.zeros(nxt.shape[0], dtype=torch.long, device=nxt.device)
    if min_tokens <= 0:
        return out
    seq = torch.cat([history, nxt[:, None]], dim=1)
    for period in range(1, max_period + 1):
        span = loop_span(period, min_tokens)
        if seq.shape[1] >= span:
            tail = seq[:, -span:]
            found = (tail[:, period:] == tail[:, :-period]).all(dim=1) & (out == 0)
            out[found] = period
    return out


def first_pass(n_tokens: int, period: int, min_tokens: int) -> int:
    """How many of a stopped row's ``n_tokens`` to keep: all but the loop's repeats.

    The row stopped on the token that closed the loop (not kept), so its last
    ``loop_span - 1`` tokens are the loop; its first block is kept, as the model's one
    reading of that stretch of audio, and the copies after it are dropped.
    """
    return max(0, n_tokens - (loop_span(period, min_tokens) - 1) + period)


def first_loop(tokens: list[int], min_tokens: int, max_period: int) -> tuple[int, int] | None:
    """Where :func:`loops_batch` would have stopped a finished sequence: ``(step, period)``.

    ``step`` is the index of the token that closes the first loop (not kept), ``period``
    the loop's block; None when the tokens hold no loop. For engines that decode a row
    to its end before earmark sees it.
    """
    if min_tokens <= 0:
        return None
    for step in range(len(tokens)):
        for period in range(1, max_period + 1):
            span = loop_span(period, min_tokens)
            if step + 1 < span:
                continue
            tail = tokens[step + 1 - span : step + 1]
            if tail[period:] == tail[:-period]:
                return step, period
    return None
