"""Which of a Whisper model's weights a fine-tuning mode trains, and making it plain again.

:func:`prepare_model` sets up a mode (every weight, the decoder only, or LoRA
adapters); :func:`merge_lora`, :func:`interpolate` and :func:`round_to_half` turn the trained model back
into what a checkpoint holds, one that loads with ``whisper.load_model`` like any
other. Used by the training loop (:mod:`earmark.train.trainer`), the project-level run
(:mod:`earmark.train.finetune`) and in-memory training (:mod:`earmark.train.pairs`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from earmark.config import FinetuneConfig
from earmark.models.lora import merge_lora  # noqa: F401  (here too: the trainer's name for it)

if TYPE_CHECKING:
    import torch
    import whisper

LORA_TARGETS = r".*blocks\.\d+\.(attn|cross_attn)\.(query|key|value|out)|.*blocks\.\d+\.mlp\.(0|2)"


def prepare_model(model: "whisper.Whisper", cfg: FinetuneConfig) -> None:
    """Choose what trains: everything, the decoder only, or LoRA adapters."""
    import torch

    model.requires_grad_(True)
    if cfg.mode == "decoder":
        model.encoder.requires_grad_(False)
    elif cfg.mode == "lora":
        from peft import LoraConfig, inject_adapter_in_model

        torch.manual_seed(cfg.seed)  # adapters start from the same random matrices on resume
        inject_adapter_in_model(LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha,
                                           lora_dropout=0.0, target_modules=LORA_TARGETS), model)
        for name, p in model.named_parameters():
            p.requires_grad_("lora_" in name)


def trainable_state(model: "torch.nn.Module") -> dict[str, "torch.Tensor"]:
    """A copy of the weights being trained (all that differs from the parent)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def parent_weights(model: "torch.nn.Module") -> dict[str, "torch.Tensor"]:
    """A copy of the weights training will change, named as in the plain (merged) model.

    Taken before training, it is what :func:`interpolate` moves the trained weights
    back toward. In LoRA mode these are the adapted layers' base weights, which the
    merge overwrites.
    """
    out = {}
    for name, p in model.named_parameters():
        if ".base_layer." in name:
            out[name.replace(".base_layer.", ".")] = p.detach().clone()
        elif p.requires_grad and "lora_" not in name:
            out[name] = p.detach().clone()
    return out


def interpolate(model: "torch.nn.Module", parent: dict[str, "torch.Tensor"], share: float) -> None:
    """Move a plain (merged) model's weights to ``parent + share * (weights - parent)``, in place.

    ``share`` 1 leaves the trained weights as they are, 0 gives the parent back.
    """
    if share == 1.0:
        return
    for name, p in model.named_parameters():
        if name in parent:
            base = parent[name].to(p.dtype)
            p.data = base + share * (p.data - base)


def round_to_half(model: "torch.nn.Module") -> None:
    """Round the weights to float16 and back, in place.

    The checkpoint is float16 like Whisper's releases; rounding first means what is
    evaluated is what will be saved.
    """
    for p in model.parameters():
        p.data = p.data.half().float()
