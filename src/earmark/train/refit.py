"""Refit after the gate: train again from the parent on every correction, dev clips included.

The dev split exists to choose a schedule and to gate; once the gate has passed, the dev
clips have done that job, and with few corrections they are a large share of what people
corrected (a fifth, or more when earlier runs held groups out). The refit trains a fresh
copy of the parent on the training and dev clips together (and the same replayed clips)
for the optimizer steps the gated run kept, with the same learning-rate schedule (its
length is the gated run's), mode, augmentation and seed, then makes the weights what a
checkpoint holds (LoRA merged, interpolated toward the parent, float16) exactly as the
gated run's are. Its weights have no dev split left to be scored on: the verdict and the
dev figures stay the gated run's. The forgetting check is measured again, and weights
that are not finite or change more of the parent's words than ``max_drift`` allows are
not used (the gated weights are saved instead).

A refit keeps its own training state in ``models/<name>/refit/``; the run stays
unfinished until the version is saved, so a killed refit continues where it stopped when
the run is resumed (the gated run's state is kept until then too).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from earmark.models.loading import non_finite_weights
from earmark.models.versions import load_version
from earmark.store.db import ModelVersion
from earmark.store.project import Project
from earmark.train.dataset import Split
from earmark.train.run import Run
from earmark.train.trainable import merge_lora, prepare_model
from earmark.train.trainer import Trainer

if TYPE_CHECKING:
    import whisper

REFIT_DIR = "refit"  # in the run's folder: the refit's own training state


@dataclass
class Refit:
    """What a refit produced: the weights to save (None: keep the gated ones) and why."""

    model: "whisper.Whisper | None"
    record: dict[str, Any] = field(default_factory=dict)  # the version record's "refit"
    note: str = ""  # appended to the run's message


class _RefitTrainer(Trainer):
    """The training loop on all corrections: no dev evaluation, stopped at ``stop_at``
    steps of a schedule ``schedule`` steps long (the gated run's)."""

    def __init__(self, project: Project, run: Run, model: "whisper.Whisper", stop_at: int, schedule: int):
        self.stop_at, self.schedule = stop_at, schedule
        super().__init__(project, run, model)

    def _plan(self) -> tuple[list[list[list[int]]], set[int]]:
        plan, _ = super()._plan()
        return plan[: self.schedule * self.cfg.grad_accum], set()

    def _eval_due(self) -> bool:
        return False  # the dev clips are trained on: nothing left to score

    def step(self) -> float:
        loss = super().step()
        if self.state.step >= self.stop_at:
            self.state.done = True
        return loss


def refit_run(run: Run) -> Run:
    """The run as the refit sees it: dev clips moved into training, its own folder and state."""
    split = Split(train=run.split.train + run.split.dev, dev=(), dev_groups=run.split.dev_groups,
                  by=run.split.by)
    record = {**run.record, "fingerprint": f"{run.record['fingerprint']}-refit"}
    return replace(run, folder=run.folder / REFIT_DIR, split=split, record=record)


def refit(project: Project, run: Run, gated: Trainer, progress: bool = True) -> Refit:
    """Train the parent again on every correction for the steps ``gated`` kept.

    Parameters
    ----------
    run
        The gated run (its split, replayed clips, config).
    gated
        Its finished training loop: the kept step, the schedule's length, the parent's
        dev scores and decodes of the forgetting check's clips.
    """
    import torch

    st, cfg = gated.state, run.cfg
    if st.kept_step < 1:
        return Refit(None)
    started = time.perf_counter()
    with project.store.session() as s:
        parent = s.get(ModelVersion, run.parent["id"])
    model = load_version(project, parent, cfg.device)
    prepare_model(model, cfg)
    again = refit_run(run)
    again.folder.mkdir(parents=True, exist_ok=True)
    trainer = _RefitTrainer(project, again, model, st.kept_step, gated.total_steps)
    if trainer.state.before is None:  # fresh: no parent re-scoring, no second decode
        trainer.state.before, trainer.state.anchor_before = st.before, st.anchor_before
    trainer.train(progress)
    if cfg.mode == "lora":
        merge_lora(model)
    trainer.as_saved(model)
    drift = trainer.drift(model)
    clips = [e.clip_id for e in again.split.train]
    record = {"clips": clips, "n_clips": len(clips), "dev_clips_trained": len(run.split.dev),
              "replay_clips": len(run.replay), "steps": trainer.state.step,
              "schedule_steps": trainer.total_steps, "drift": drift, "resumes": trainer.state.resumes,
              "seconds": round(time.perf_counter() - started, 2)}
    why_not = ""
    if non_finite_weights(model.state_dict(), torch.float16):
        why_not = "its weights are not all finite numbers in float16"
    elif drift and drift["changed"] > cfg.max_drift:  # as the gate checks it
        why_not = (f"it changes {drift['changed']:.1%} of the parent's words on the forgetting check's "
                   f"clips, more than max_drift {cfg.max_drift:g}")
    if why_not:
        return Refit(None, {**record, "used": False, "why_not": why_not},
                     f"; the weights trained again on all {len(clips)} corrections were not used: {why_not}")
    return Refit(model, {**record, "used": True},
                 f"; its saved weights were then trained again from {run.parent['name']} on all "
                 f"{len(clips)} corrections ({len(run.split.dev)} dev clips too) for the "
                 f"{trainer.state.step} steps the gated run kept (the dev figures are the gated run's)")


def discard_refit(run: Run) -> None:
    """Remove the refit's training state once the version is saved."""
    shutil.rmtree(run.folder / REFIT_DIR, ignore_errors=True)
