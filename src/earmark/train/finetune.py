"""Fine-tune the active model on the saved corrections, as a new model version.

corrections -> dataset (train / dev split, replay) -> training loop -> checkpoint +
record -> gate. The new version becomes active only if it beats the active one on the
dev split (the gate); otherwise it is kept with status ``rejected``.

This module is the project-level workflow: a run's identity (its version row, config,
corrections and split), the gate, and saving the new version. The training loop and
its modes (``full``, ``decoder``, ``lora``) are in :mod:`earmark.train.trainer`.

A run is safe to kill: the training state (weights, optimizer, scheduler, step, RNG)
is saved atomically every ``save_every`` steps and after every dev evaluation to
``PROJECT/models/<name>/.train-state.pt``; the active model is changed only at the end,
in one transaction, after the gate. ``finetune(resume=True)`` (or running again with
the same corrections and config) continues from the last saved state.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from earmark.config import FinetuneConfig, from_dict, to_dict
from earmark.errors import NoCorrections, NothingToResume, RunInProgress
from earmark.models.device import torch_threads
from earmark.models.loading import non_finite_weights, save_checkpoint
from earmark.models.versions import active_or_base, load_version
from earmark.store.db import Clip, ModelVersion, dumps
from earmark.store.project import Project
from earmark.train.dataset import (Example, Split, correction_examples, previous_dev_groups, replay_examples,
                                   split_dev)
from earmark.train.gate import gate_message
from earmark.train.card import active_dims, chosen_batch
from earmark.train.refit import Refit, discard_refit, refit
from earmark.train.run import Run
from earmark.train.trainable import merge_lora, prepare_model
from earmark.train.trainer import Trainer, check_config


#: the run's record, written beside its checkpoint (``models/NAME/``)
RECORD_FILE = "record.json"


@dataclass(frozen=True)
class FinetuneResult:
    """What a fine-tuning run produced and whether it became the active model."""

    version: str  # the new version's name
    version_id: int
    parent: str  # the version it was trained from (the active one when it started)
    activated: bool  # True when it passed the gate and is now active
    message: str  # why it was (not) activated, for people
    dev_wer_before: float  # the parent's dev WER
    dev_wer_after: float  # the new version's dev WER (its saved float16 weights)
    dev_cer_before: float
    dev_cer_after: float
    decode_speed_before: float  # dev audio seconds decoded per wall second
    decode_speed_after: float
    train_clips: int
    dev_clips: int
    replay_clips: int
    steps: int  # optimizer steps taken, over all resumes
    stopped_early: bool
    kept_step: int  # the step whose weights were saved (see FinetuneConfig.dev_confidence)
    best_step: int  # the evaluation with the lowest dev WER (may be older than the kept one)
    best_dev_wer: float  # its dev WER
    resumed_from_step: int  # 0 for a fresh run
    train_seconds: float  # training and dev evaluation, over all resumes
    total_seconds: float  # wall time of this call
    checkpoint: Path
    # why the last evaluated weights are not the saved ones ("" when they are)
    not_kept_why: str = ""
    # forgetting check: the share of the parent's words the new version changes on the
    # uncorrected clips the parent was surest of (nan without such clips), and how many
    drift: float = math.nan
    drift_clips: int = 0
    # the saved weights were trained again on all corrections (dev too) for this many
    # steps (0: the gated weights were saved; FinetuneConfig.refit)
    refit_clips: int = 0
    refit_steps: int = 0


# --- run setup ------------------------------------------------------------------------

# where a run computes, not what it computes: a run continues under other values of these
RUNTIME_FIELDS = tuple(f.name for f in fields(FinetuneConfig) if f.metadata.get("runtime"))


def _with_runtime(cfg: FinetuneConfig, runtime: FinetuneConfig) -> FinetuneConfig:
    return replace(cfg, **{f: getattr(runtime, f) for f in RUNTIME_FIELDS})


def _fingerprint(correction_ids: list[int], cfg: FinetuneConfig, parent_id: int) -> str:
    cfg = _with_runtime(cfg, FinetuneConfig())
    payload = dumps({"corrections": correction_ids, "config": to_dict(cfg), "parent": parent_id})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _next_name(s, models: Path) -> str:
    """The first ``ft-NNN`` neither in the database nor on disk in ``models``: after a
    restored snapshot the database may not know a version whose folder is still there,
    and a new run must not write over its checkpoint."""
    n = (s.scalar(select(func.count()).where(ModelVersion.name.like("ft-%"))) or 0) + 1
    while (s.scalar(select(func.count()).where(ModelVersion.name == f"ft-{n:03d}"))
           or (models / f"ft-{n:03d}").exists()):
        n += 1
    return f"ft-{n:03d}"


def _create_run(project: Project, cfg: FinetuneConfig, parent: ModelVersion,
                examples: list[Example], fingerprint: str) -> Run:
    split = split_dev(examples, cfg.dev_fraction, cfg.dev_min_clips, previous_dev_groups(project),
                      cfg.dev_max_fraction)
    n_replay = round(cfg.replay_fraction * len(split.train))
    surest = replay_examples(project, parent.id, n_replay + cfg.drift_clips)
    replay, anchor = surest[:n_replay], surest[n_replay:]
    record = {
        "parent": {"id": parent.id, "name": parent.name, "spec": parent.spec},
        "fingerprint": fingerprint,
        "corrections": [e.correction_id for e in examples],
        "train_clips": [e.clip_id for e in split.train],
        "dev_clips": [e.clip_id for e in split.dev],
        "dev_groups": list(split.dev_groups),
        "split_by": split.by,
        "replay": [[e.clip_id, e.text] for e in replay],
        "drift_clips": [[e.clip_id, e.text] for e in anchor],
        "decode": to_dict(project.config.decode),  # dev scores hold for these settings only
        "started_at": datetime.now(timezone.utc).isoformat(),
    }
    with project.store.session() as s:
        name = _next_name(s, project.root / "models")
        folder = project.root / "models" / name
        record["version"] = name
        record["checkpoint"] = f"models/{name}/model.pt"
        mv = ModelVersion(name=name, spec=str((folder / "model.pt").resolve()), parent_id=parent.id,
                          active=False, status="training", config=to_dict(cfg), record=record)
        s.add(mv)
        s.flush()
        vid = mv.id
    folder.mkdir(parents=True, exist_ok=True)
    return Run(vid, name, folder, cfg, record["parent"], split, tuple(replay), tuple(anchor), record)


def _discard_if_untouched(project: Project, run: Run) -> None:
    """Remove a run that failed before its first step, so it is not left as unfinished.

    A run whose parent cannot be loaded (a corrupt checkpoint, an unknown device) would
    otherwise stay in status ``training``, and ``--resume`` would pick it again.
    """
    if any(run.folder.iterdir()):
        return  # it saved a training state: keep it resumable
    with project.store.session() as s:
        mv = s.get(ModelVersion, run.version_id)
        if mv is not None and mv.status == "training":
            s.delete(mv)
    run.folder.rmdir()


def _uncorrected_examples(project: Project, pairs: list[list[Any]]) -> tuple[Example, ...]:
    """Examples of ``[clip id, text]`` pairs from a record (the parent's own transcripts)."""
    texts = {int(c): t for c, t in pairs}
    with project.store.session() as s:
        clips = {c.id: c for c in s.scalars(select(Clip).where(Clip.id.in_(list(texts))))}
    return tuple(Example(c.id, c.audio_path, texts[c.id], c.duration, c.speaker, None)
                 for c in (clips.get(i) for i in texts) if c is not None)


def _reopen_run(project: Project, mv: ModelVersion) -> Run:
    """Rebuild an unfinished run from its row: same config, corrections and split."""
    record = dict(mv.record)
    cfg = from_dict(FinetuneConfig, mv.config)
    by_clip = {e.clip_id: e for e in correction_examples(project, record["corrections"])}
    train = tuple(by_clip[c] for c in record["train_clips"] if c in by_clip)
    dev = tuple(by_clip[c] for c in record["dev_clips"] if c in by_clip)
    split = Split(train, dev, tuple(record["dev_groups"]), record.get("split_by", "speaker"))
    folder = project.root / "models" / mv.name
    folder.mkdir(parents=True, exist_ok=True)
    return Run(mv.id, mv.name, folder, cfg, record["parent"], split,
               _uncorrected_examples(project, record.get("replay", [])),
               _uncorrected_examples(project, record.get("drift_clips", [])), record)


def open_run(project: Project, cfg: FinetuneConfig, resume: bool = False) -> Run:
    """Start a run, or find the unfinished one to continue.

    With ``resume`` the newest unfinished run continues with its own config and
    corrections. Without it, an unfinished run with the same corrections, config and
    parent continues automatically; anything else starts a new run.

    Raises
    ------
    NothingToResume
        ``resume`` and no unfinished run.
    NoCorrections
        No unflagged correction to train on.
    """
    store = project.store
    unfinished = store.unfinished_runs()[::-1]  # newest first
    if resume:
        if not unfinished:
            raise NothingToResume(f"{project.root}: no unfinished fine-tuning run to resume; "
                                  f"start one with `earmark finetune {project.root}`")
        return _reopen_run(project, unfinished[0])
    examples = correction_examples(project)
    if not examples:
        raise NoCorrections(f"{project.root}: no saved corrections to fine-tune on (flagged clips "
                            f"do not count); correct clips with `earmark review {project.root}` first")
    parent = active_or_base(project)
    fp = _fingerprint([e.correction_id for e in examples], cfg, parent.id)  # type: ignore[misc]
    for mv in unfinished:
        if (mv.record or {}).get("fingerprint") == fp:
            return _reopen_run(project, mv)
    return _create_run(project, cfg, parent, examples, fp)


# --- finishing: checkpoint, record, gate ---------------------------------------------------

def _write_json(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)


def _superseded(project: Project, run: Run, active: str) -> str:
    """Why a version that beat its parent is not activated: another became active meanwhile."""
    return (f"{run.name} was kept but NOT activated: it beat its parent {run.parent['name']} on the dev "
            f"split, but {active} became the active model while it trained and the two were not "
            f"compared; compare them with `earmark evaluate {project.root} --model {run.name}` and "
            f"`--model {active}`, then make the better one active with `earmark rank {project.root} "
            "--model NAME`")


def _finish(project: Project, run: Run, trainer: Trainer, started: float, progress: bool) -> FinetuneResult:
    """Judge the kept weights at the gate, refit them if they pass, save and record the
    run, maybe activate it."""
    model, before, after, drift = _final_weights(run, trainer)
    passed, message = _verdict(run, trainer, model, before, after, drift)
    again = refit(project, run, trainer, progress) if passed and run.cfg.refit else Refit(None)
    checkpoint = save_checkpoint(again.model or model, run.folder / "model.pt",
                                 {"version": run.name, "parent": run.parent["name"]})
    record = {**_record(run, trainer, before, after, drift), "refit": again.record or None}
    passed, message = _commit(project, run, record, passed, message + again.note)
    trainer.state_path.unlink(missing_ok=True)
    discard_refit(run)
    st = trainer.state
    return FinetuneResult(
        version=run.name, version_id=run.version_id, parent=run.parent["name"], activated=passed,
        message=message, dev_wer_before=before["wer"], dev_wer_after=after["wer"],
        dev_cer_before=before["cer"], dev_cer_after=after["cer"],
        decode_speed_before=before["speed"], decode_speed_after=after["speed"],
        train_clips=len(run.split.train), dev_clips=len(run.split.dev), replay_clips=len(run.replay),
        steps=st.step, stopped_early=st.stopped_early, kept_step=st.kept_step, best_step=st.best_step,
        best_dev_wer=st.best_score["wer"] if st.best_score else math.nan,
        resumed_from_step=trainer.resumed_from,
        train_seconds=st.train_seconds, total_seconds=time.perf_counter() - started,
        checkpoint=checkpoint,
        not_kept_why=(st.history[-1].get("why_not_kept") or "") if st.history else "",
        drift=drift["changed"] if drift else math.nan, drift_clips=drift["clips"] if drift else 0,
        refit_clips=len(again.record["clips"]) if again.model is not None else 0,
        refit_steps=again.record["steps"] if again.model is not None else 0)


def _final_weights(run: Run, trainer: Trainer) -> tuple[Any, dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """The weights the run keeps, as they will be saved (LoRA merged, interpolated, float16),
    with the parent's and their dev scores and the forgetting check."""
    st, model = trainer.state, trainer.model
    if trainer.kept is not None:
        trainer.load_trainable(trainer.kept)
    if run.cfg.mode == "lora":
        merge_lora(model)
    trainer.as_saved(model)
    drift = trainer.drift(model)
    after = st.kept_score  # scored on exactly these (merged, interpolated, float16) weights
    if after is None:
        after = trainer.dev_score()
    return model, st.before or {}, after, drift


def _verdict(run: Run, trainer: Trainer, model: Any, before: dict[str, Any], after: dict[str, Any],
             drift: dict[str, Any] | None) -> tuple[bool, str]:
    """Whether the gate passes the kept weights, and the message that says why, with notes."""
    import torch

    cfg = run.cfg
    passed, message = gate_message(run.name, run.parent["name"], before["wer"], after["wer"],
                                   len(run.split.dev), cfg.gate_margin, drift, cfg.max_drift, cfg.mode)
    diverged = non_finite_weights(model.state_dict(), torch.float16)
    if diverged:  # whatever its dev WER: a checkpoint of NaN and inf decodes nothing
        passed = False
        message = (f"{run.name} was kept but NOT activated: training diverged, and {diverged:,} of "
                   f"its weights are not finite numbers in float16 (NaN or too large); "
                   f"{run.parent['name']} stays active. Train again with a lower --lr (this run's "
                   f"was {cfg.lr:g})")
    if trainer.discarded_state:
        message = f"note: {trainer.discarded_state}. {message}"
    if len(run.split.dev) < cfg.dev_min_clips:  # training keeps at least half the corrections
        message += (f"; note: the dev split holds only {len(run.split.dev)} of the "
                    f"{cfg.dev_min_clips} clips it should (dev_min_clips), since there are few "
                    "corrections yet, so this verdict rests on little; correct more clips")
    if after["speed"] and before.get("speed") and after["speed"] < before["speed"] / 2:
        message += (f"; warning: dev decoding is {before['speed'] / after['speed']:.1f}x slower than "
                    "before, a sign of looping output")
    return passed, message


def _record(run: Run, trainer: Trainer, before: dict[str, Any], after: dict[str, Any],
            drift: dict[str, Any] | None) -> dict[str, Any]:
    """The run's record (``record.json`` and the version row), the gate's verdict aside."""
    st = trainer.state
    return {**run.record, "config": to_dict(run.cfg),
            "dev_wer_before": before["wer"], "dev_wer_after": after["wer"],
            "dev_cer_before": before["cer"], "dev_cer_after": after["cer"],
            "decode_speed_before": before["speed"], "decode_speed_after": after["speed"],
            "dev_before": before, "dev_after": after, "history": st.history, "drift": drift,
            "steps": st.step, "total_steps": trainer.total_steps, "best_step": st.best_step,
            "kept_step": st.kept_step,
            "stopped_early": st.stopped_early, "resumes": st.resumes,
            "discarded_state": trainer.discarded_state or None,
            "train_seconds": round(st.train_seconds, 2),
            "finished_at": datetime.now(timezone.utc).isoformat()}


def _commit(project: Project, run: Run, record: dict[str, Any], passed: bool, message: str) -> tuple[bool, str]:
    """Write the record and the version's status, and activate it if it passed, in one
    transaction; returns the verdict, changed when another version became active meanwhile."""
    with project.store.session() as s:  # one transaction: status, record and activation
        mv = s.get(ModelVersion, run.version_id)
        other = s.scalars(select(ModelVersion.name).where(
            ModelVersion.active.is_(True), ModelVersion.id != run.parent["id"])).first()
        # the gate compared with the parent; a version that became active since (another
        # run finished first) was never compared with this one, so it stays active
        superseded = passed and other is not None
        if superseded:
            passed, message = False, _superseded(project, run, other)
        record["gate"] = {"passed": passed, "message": message}
        _write_json(run.folder / RECORD_FILE, record)  # before the commit: a kill leaves it unfinished
        # one that beat its parent but was not compared with the newer active one is not
        # refused on its merits: it stays "ready", to be compared and made active by hand
        mv.status, mv.record = ("ready" if passed or superseded else "rejected"), record
        if passed:
            s.execute(ModelVersion.__table__.update().values(active=False))
            mv.active = True
    return passed, message


def finetune(project: Project, cfg: FinetuneConfig | None = None, *, resume: bool = False,
             progress: bool = True) -> FinetuneResult:
    """Fine-tune the active model on every unflagged correction; gate; maybe activate.

    Parameters
    ----------
    project
        An open project with corrections.
    cfg
        Training settings; default the project's ``finetune`` config.
    resume
        Continue the newest unfinished run (its own config and corrections). Without
        it, an unfinished run with the same corrections and config continues anyway.
    progress
        Show a progress bar with the loss, dev WER and the time left.

    Returns
    -------
    FinetuneResult
        Dev WER before and after, whether the new version is active, and why.

    Raises
    ------
    NoCorrections
        Nothing (or too little) to train on.
    NothingToResume
        ``resume`` without an unfinished run.
    BadConfig
        A setting out of range.
    """
    started = time.perf_counter()
    cfg = cfg or project.config.finetune
    check_config(cfg)
    if not resume:  # a batch size of 0 is chosen for the device once, and saved with the run
        cfg = chosen_batch(cfg, lambda: active_dims(project))
    run = open_run(project, cfg, resume)
    # a resumed run keeps its own training settings but runs where this call says
    run = replace(run, cfg=_with_runtime(run.cfg, cfg))
    with _exclusive(project, run), torch_threads(run.cfg.threads):
        for stale in run.folder.glob("tmp*.tmp"):  # a state half-written when a run was killed
            stale.unlink()
        try:
            with project.store.session() as s:
                parent = s.get(ModelVersion, run.parent["id"])
            model = load_version(project, parent, run.cfg.device)
            prepare_model(model, run.cfg)
            trainer = Trainer(project, run, model)
            trainer.train(progress)
        except BaseException:
            _discard_if_untouched(project, run)
            raise
        return _finish(project, run, trainer, started, progress)


@contextmanager
def _exclusive(project: Project, run: Run) -> Iterator[None]:
    """Hold the run for this process; refuse if another process is training it.

    Two processes on one run would both write its state and checkpoint, each at half
    speed. The lock is an OS file lock, released by the OS when a process dies, so a
    killed run never leaves it held.
    """
    import fcntl

    path = project.root / "models" / f".{run.name}.lock"
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInProgress(
                f"{run.name} of {project.root} is being trained by another process right now; wait "
                f"for it to finish (its result is then in `earmark status {project.root}`), or stop it "
                "and run this again to continue it") from None
        try:
            yield
        finally:
            if all(mv.id != run.version_id for mv in project.store.unfinished_runs()):
                path.unlink(missing_ok=True)  # nothing left to continue: no lock to keep
            fcntl.flock(f, fcntl.LOCK_UN)
