"""A fine-tuning run's identity (its version row, config and data), shared by the run's
setup and end (:mod:`earmark.train.finetune`) and its training loop
(:mod:`earmark.train.trainer`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from earmark.config import FinetuneConfig
from earmark.train.dataset import Example, Split


@dataclass
class Run:
    """A fine-tuning run's identity: its version row, config and data."""

    version_id: int
    name: str
    folder: Path
    cfg: FinetuneConfig
    parent: dict[str, Any]  # {"id", "name", "spec"}
    split: Split
    replay: tuple[Example, ...]
    # uncorrected clips the parent was surest of (after the replayed ones), with its own
    # transcripts: the forgetting check (FinetuneConfig.drift_clips)
    anchor: tuple[Example, ...]
    record: dict[str, Any]
