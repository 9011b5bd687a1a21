"""What the greedy decoding loop records at each step, for every window of a batch, as
tensors (token, probability, log-probability, entropy, the alignment heads' attention
rows, why a row stopped), and their conversion to one :class:`Decoded` per window, once,
at the end of the batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from earmark.decode.repetition import first_pass
from earmark.decode.rules import STOP_REASONS

if TYPE_CHECKING:
    import torch


@dataclass
class Decoded:
    """Raw output of one window: text tokens and the data recorded per step."""

    tokens: list[int] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    entropies: list[float] = field(default_factory=list)
    qk: "torch.Tensor | None" = None  # alignment heads' rows: (heads, fed positions, frames)
    no_speech_prob: float = 0.0
    stop_reason: str = "eot"


class StepRecord:
    """Per-window records of one batch's decoding loop (``n`` windows, at most ``max_new``
    tokens each)."""

    def __init__(self, n: int, max_new: int, eot: int, device: "torch.device"):
        import torch

        self.n, self.eot = n, eot
        self.toks = torch.full((n, max_new), eot, dtype=torch.long, device=device)
        self.probs, self.logps, self.ents = (torch.zeros(n, max_new, device=device) for _ in range(3))
        self.n_tok = torch.zeros(n, dtype=torch.long, device=device)
        self.reason = torch.zeros(n, dtype=torch.long, device=device)  # an index of STOP_REASONS
        self.period = torch.zeros(n, dtype=torch.long, device=device)  # the block a loop repeated
        self.no_speech = torch.zeros(n, device=device)
        self.qk_rows: list[tuple[torch.Tensor, torch.Tensor]] = []  # (window ids, (m, heads, L, frames))

    def attention(self, windows: "torch.Tensor", qks: "torch.Tensor") -> None:
        """The alignment heads' rows of the tokens just fed to ``windows``."""
        self.qk_rows.append((windows, qks))

    def stopped(self, windows: "torch.Tensor", reason: "torch.Tensor", period: "torch.Tensor") -> None:
        """Why ``windows`` stopped (see :class:`earmark.decode.rules.StopRules`)."""
        self.reason[windows] = reason
        self.period[windows] = period

    def keep(self, windows: "torch.Tensor", tokens: "torch.Tensor", step: int, logits: "torch.Tensor",
             logp: "torch.Tensor", entropy: "torch.Tensor") -> None:
        """Record the tokens chosen at ``step`` for ``windows``, with their scores.

        ``p`` is the token's probability among text tokens (Whisper's definition, for
        word probability); the log-probability and entropy are over the whole vocabulary.
        """
        if not windows.numel():
            return
        self.toks[windows, step] = tokens
        self.logps[windows, step] = logp.gather(1, tokens[:, None]).squeeze(1)
        text_lse = logits[:, : self.eot].logsumexp(-1)
        self.probs[windows, step] = (logits.gather(1, tokens[:, None]).squeeze(1) - text_lse).exp()
        self.ents[windows, step] = entropy
        self.n_tok[windows] += 1

    def collect(self, n_initial: int, loop_min_tokens: int) -> list[Decoded]:
        """Per-window results (one conversion to Python).

        A row stopped by a loop keeps the loop's first pass only; its attention rows are
        cut to match (the ``n_initial`` positions, one row per kept token, the EOT row).
        """
        import torch

        n = self.n
        # attention rows: step 0 has the initial positions, every later step one
        ids = torch.cat([r.repeat_interleave(q.shape[2]) for r, q in self.qk_rows])
        qk = torch.cat([q.permute(0, 2, 1, 3).reshape(-1, q.shape[1], q.shape[3]) for _, q in self.qk_rows])
        order = torch.sort(ids, stable=True).indices
        per_window = list(torch.split(qk[order], torch.bincount(ids, minlength=n).tolist()))
        counts = self.n_tok.tolist()
        toks_l, probs_l, logps_l, ents_l = (t.tolist() for t in (self.toks, self.probs, self.logps, self.ents))
        reasons, periods, ns = self.reason.tolist(), self.period.tolist(), self.no_speech.tolist()
        for w in range(n):
            if periods[w]:
                counts[w] = first_pass(counts[w], periods[w], loop_min_tokens)
                rows = per_window[w]
                per_window[w] = torch.cat([rows[: n_initial + counts[w]], rows[-1:]])
        return [Decoded(tokens=toks_l[w][: counts[w]], probs=probs_l[w][: counts[w]],
                        logprobs=logps_l[w][: counts[w]], entropies=ents_l[w][: counts[w]],
                        qk=per_window[w].transpose(0, 1), no_speech_prob=ns[w],
                        stop_reason=STOP_REASONS[reasons[w]])
                for w in range(n)]
