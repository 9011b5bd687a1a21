"""Folding LoRA adapters back into a Whisper model's weights.

Kept beside the models (not with training) because a model with adapters can reach more
than the trainer: exporting a version folds them in too, and a stage before training
must not import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import whisper


def merge_lora(model: "whisper.Whisper") -> None:
    """Fold LoRA adapters into their base weights and remove the wrappers."""
    from peft.tuners.lora import LoraLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, module.get_base_layer())
