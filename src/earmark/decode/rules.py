"""The rules of the greedy decoding loop, each a small class (as whisper's decoding keeps
its logit filters): which tokens may be chosen (:class:`SuppressTokens`), when a packed
window may not end yet (:class:`HoldEndOfText`), and when a row stops
(:class:`StopRules`). They work on whole batches of rows, as tensors."""

from __future__ import annotations

from typing import TYPE_CHECKING

from earmark.decode.repetition import loops_batch

if TYPE_CHECKING:
    import torch

#: why a row stopped, as :class:`StopRules` codes it
STOP_REASONS = ("eot", "max_tokens", "repetition")


class SuppressTokens:
    """Text tokens and EOT may be chosen; specials, timestamps and Whisper's non-speech
    symbols may not (as whisper.decoding's SuppressTokens), nor a blank or EOT as the
    first token (its SuppressBlank)."""

    def __init__(self, mask: "torch.Tensor", blank: list[int]):
        self.mask = mask  # (vocab,) True where a token is never chosen
        self.blank = blank

    def apply(self, logits: "torch.Tensor", step: int) -> "torch.Tensor":
        """The logits (rows, vocab) with the suppressed tokens at -inf (a new tensor)."""
        masked = logits.masked_fill(self.mask, float("-inf"))
        if step == 0:
            masked[:, self.blank] = float("-inf")
        return masked


class HoldEndOfText:
    """Refuse EOT in a packed window while the alignment heads still attend before the
    start of its last clip, at most a set number of times per window.

    Whisper sometimes ends a packed window after a pause, leaving the clips after it
    untranscribed; the best other token is taken instead, and clips still left without
    words are decoded again.
    """

    def __init__(self, eot: int, holds: "torch.Tensor"):
        self.eot = eot
        # per window: the encoder position EOT must have reached, and refusals left
        self.position, self.budget = holds.unbind(1)

    def apply(self, masked: "torch.Tensor", chosen: "torch.Tensor", attention: "torch.Tensor",
              windows: "torch.Tensor") -> "torch.Tensor":
        """The tokens chosen, with a refused EOT replaced by the best other token.

        ``attention``: the alignment heads' newest pre-softmax rows of the live rows
        (rows, heads, frames); ``windows``: the window of each live row.
        """
        early = (chosen == self.eot) & (self.budget[windows] > 0)
        if bool(early.any()):
            where = attention.softmax(-1).mean(1).argmax(-1)  # where the heads look now
            early &= where < self.position[windows]
            if bool(early.any()):
                masked[early, self.eot] = float("-inf")
                chosen = masked.argmax(-1)
                self.budget[windows[early]] -= 1
        return chosen


class StopRules:
    """When a row stops: EOT, its token cap (bounded by its audio's duration), or a loop
    (a block of up to ``max_period`` tokens repeated over ``min_tokens``; 0: no check).

    A stop drops the new token, so that every kept token has been fed and has its
    attention row.
    """

    def __init__(self, eot: int, caps: "torch.Tensor", min_tokens: int, max_period: int):
        self.eot, self.caps = eot, caps
        self.min_tokens, self.max_period = min_tokens, max_period

    def check(self, chosen: "torch.Tensor", step: int, history: "torch.Tensor",
              windows: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
        """(stop, reason, period) per live row: whether it stops, why (an index of
        :data:`STOP_REASONS`) and, for a loop, the period of the repeated block."""
        import torch

        stop_eot = chosen == self.eot
        stop_cap = ~stop_eot & (step >= self.caps[windows])
        looped = loops_batch(history, chosen, self.min_tokens, self.max_period)
        stop_loop = ~stop_eot & ~stop_cap & (looped > 0)
        reason = torch.where(stop_loop, 2, torch.where(stop_cap, 1, 0))
        return stop_eot | stop_cap | stop_loop, reason, torch.where(stop_loop, looped, 0)
