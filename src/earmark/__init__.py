"""earmark: active learning for speech transcription.

Whisper transcribes a pool of clips and scores every token it writes; the clips it is
least sure of go first to human review; the corrections fine-tune the model.

The public functions are imported lazily so that ``import earmark`` loads no model,
no torch and no database (nothing happens at import time).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# public name -> "module:attribute"
_LAZY = {
    "Project": "earmark.store.project:Project",
    "init_project": "earmark.store.project:init_project",
    "open_project": "earmark.store.project:open_project",
    "import_audio": "earmark.ingest:import_audio",
    "rank": "earmark.ranking.rank:rank",
    "load_model": "earmark.models.loading:load_model",
    "transcribe_clips": "earmark.decode.decoder:transcribe_clips",
    "get_strategy": "earmark.ranking.strategies:get_strategy",
    "STRATEGIES": "earmark.ranking.strategies:STRATEGIES",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    try:
        target = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'earmark' has no attribute {name!r}") from None
    module_name, attr = target.split(":")
    return getattr(import_module(module_name), attr)
