"""Teacher forcing and the optimizer, shared by a fine-tuning run (:mod:`earmark.train.trainer`)
and training on in-memory pairs (:mod:`earmark.train.pairs`): a packed window's target
text, its token sequences, and AdamW with a warm-up and linear decay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from earmark.config import FinetuneConfig
from earmark.decode import packing

if TYPE_CHECKING:
    import torch
    import whisper

IGNORE = -100  # target id that the loss skips (prompt and padding)


# what ends a sentence for the training targets: the packed decoder's list (it tells
# clips apart by these), and an ellipsis, which a reviewer may type to end a clip
SENTENCE_END = packing.SENTENCE_END + ("…",)


def window_text(texts: list[str], end_punctuation: bool = True) -> str:
    """The target text of a packed window: its clips' texts in order.

    With ``end_punctuation`` a clip's text that does not end a sentence gets a full
    stop, as Whisper writes at the end of an utterance; the packed decoder relies on it
    to tell where one clip's words end (see ``earmark.decode.packing``).
    """
    parts = [t.strip() for t in texts if t.strip()]
    if end_punctuation:
        parts = [t if t.endswith(SENTENCE_END) else t + "." for t in parts]
    return " ".join(parts)


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then linear decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


class Targets:
    """Token sequences for teacher forcing: the prompt, the text's tokens, EOT."""

    def __init__(self, model: "whisper.Whisper"):
        import whisper

        self.tokenizer = whisper.tokenizer.get_tokenizer(
            model.is_multilingual, num_languages=model.num_languages,
            language="en" if model.is_multilingual else None, task="transcribe")
        self.prompt = list(self.tokenizer.sot_sequence_including_notimestamps)
        self.max_len = model.dims.n_text_ctx + 1

    def sequence(self, text: str) -> list[int]:
        """The prompt, ``text``'s tokens and EOT, cut to the decoder's context."""
        ids = self.tokenizer.encode(" " + text) if text else []
        return (self.prompt + ids + [self.tokenizer.eot])[: self.max_len]

    def tensors(self, seqs: list[list[int]]) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Inputs (padded with EOT) and targets (prompt and padding ignored)."""
        import torch

        width = max(len(s) for s in seqs) - 1
        inputs = torch.full((len(seqs), width), self.tokenizer.eot, dtype=torch.long)
        targets = torch.full((len(seqs), width), IGNORE, dtype=torch.long)
        skip = len(self.prompt) - 1  # targets that are still prompt tokens
        for i, s in enumerate(seqs):
            inputs[i, : len(s) - 1] = torch.tensor(s[:-1])
            targets[i, skip : len(s) - 1] = torch.tensor(s[skip + 1 :])
        return inputs, targets


def optimizer(model: "torch.nn.Module", cfg: FinetuneConfig, total_steps: int) -> tuple[list, Any, Any]:
    """AdamW over the weights of ``model`` that train, and its schedule.

    The encoder's weights (or adapters) learn at ``lr * encoder_lr_scale``, the rest
    at ``lr``; the schedule warms up over ``warmup_fraction`` of ``total_steps``, then
    decays linearly (:func:`lr_factor`). Returns the trained parameters, the optimizer
    and the scheduler.
    """
    import torch

    groups: dict[bool, list] = {True: [], False: []}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups[name.startswith("encoder.")].append(p)
    opt = torch.optim.AdamW([{"params": groups[enc], "lr": cfg.lr * (cfg.encoder_lr_scale if enc else 1.0)}
                             for enc in (True, False) if groups[enc]],
                            lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, round(cfg.warmup_fraction * total_steps))
    return groups[True] + groups[False], opt, torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total_steps, warm))


# --- the training loop ------------------------------------------------------------------
