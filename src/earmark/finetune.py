"""Fine-tune the active model on the saved corrections, as a new model version.

corrections -> dataset (train / dev split, replay) -> training loop -> checkpoint +
record -> gate. The new version becomes active only if it beats the active one on the
dev split (the gate); otherwise it is kept with status ``rejected``.

Training is teacher forcing on openai-whisper's model: the decoder reads
``sot_sequence_including_notimestamps + text + eot`` and the loss is the cross-entropy
of the text tokens and of EOT. Clips are packed into 30 s windows exactly as decoding
packs them, because Whisper's encoder always runs on 30 s: a 3 s clip alone in a window
would cost as much as ten of them packed together.

Modes:

- ``full``: every weight is trained (the default for tiny and base);
- ``decoder``: the encoder is frozen and its outputs are computed once per window and
  cached. Audio augmentation is off in this mode, because augmenting would mean
  running the encoder again on every batch, the cost this mode exists to avoid;
- ``lora``: PEFT LoRA adapters on the attention (query, key, value, out) and MLP
  projections of both encoder and decoder, merged into the saved checkpoint so that
  it loads with ``whisper.load_model`` like any other.

A run is safe to kill: the training state (weights, optimizer, scheduler, step, RNG)
is saved atomically every ``save_every`` steps and after every dev evaluation to
``PROJECT/models/<name>/.train-state.pt``; the active model is changed only at the end,
in one transaction, after the gate. ``finetune(resume=True)`` (or running again with
the same corrections and config) continues from the last saved state.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import random
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import func, select
from tqdm.auto import tqdm

from . import audio as au
from .augment import augment_wave, spec_augment
from .config import FinetuneConfig, from_dict, to_dict
from .dataset import Example, Split, correction_examples, pack_epoch, previous_dev_groups, \
    replay_examples, split_dev
from .errors import BadConfig, NoCorrections, NothingToResume
from .evaluate import evaluate_audio
from .project import Project
from .store import Clip, ModelVersion, dumps

if TYPE_CHECKING:
    import torch
    import whisper

MODES = ("full", "decoder", "lora")
STATE_FILE = ".train-state.pt"
LORA_TARGETS = r".*blocks\.\d+\.(attn|cross_attn)\.(query|key|value|out)|.*blocks\.\d+\.mlp\.(0|2)"
IGNORE = -100  # target id that the loss skips (prompt and padding)


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
    resumed_from_step: int  # 0 for a fresh run
    train_seconds: float  # training and dev evaluation, over all resumes
    total_seconds: float  # wall time of this call
    checkpoint: Path


@dataclass
class _Run:
    """A fine-tuning run's identity: its version row, config and data."""

    version_id: int
    name: str
    folder: Path
    cfg: FinetuneConfig
    parent: dict[str, Any]  # {"id", "name", "spec"}
    split: Split
    replay: tuple[Example, ...]
    record: dict[str, Any]


@dataclass
class _State:
    """Everything a killed run needs to continue (saved with the weights)."""

    micro: int = 0  # micro-batches done
    step: int = 0  # optimizer steps done
    history: list[dict[str, Any]] = field(default_factory=list)
    best_wer: float = math.inf
    best_step: int = -1
    bad_evals: int = 0
    done: bool = False
    stopped_early: bool = False
    before: dict[str, float] | None = None  # the parent's dev scores
    best_score: dict[str, float] | None = None  # dev scores of the best state
    train_seconds: float = 0.0
    resumes: list[int] = field(default_factory=list)  # steps at which the run was resumed


# --- run setup ------------------------------------------------------------------------

def check_config(cfg: FinetuneConfig) -> None:
    """Raise :class:`BadConfig` for values that cannot train."""
    problems = []
    if cfg.mode not in MODES:
        problems.append(f"mode {cfg.mode!r} is not one of {', '.join(MODES)}")
    if cfg.epochs < 1 and cfg.max_steps < 1:
        problems.append("epochs must be at least 1")
    if cfg.batch_size < 1 or cfg.grad_accum < 1:
        problems.append("batch_size and grad_accum must be at least 1")
    if not cfg.lr > 0:
        problems.append(f"lr must be positive (got {cfg.lr})")
    if not 0 < cfg.dev_fraction < 1:
        problems.append(f"dev_fraction must be between 0 and 1 (got {cfg.dev_fraction})")
    if cfg.replay_fraction < 0:
        problems.append("replay_fraction must be 0 or more")
    if problems:
        raise BadConfig("fine-tuning config: " + "; ".join(problems))


def _fingerprint(correction_ids: list[int], cfg: FinetuneConfig, parent_id: int) -> str:
    payload = dumps({"corrections": correction_ids, "config": to_dict(cfg), "parent": parent_id})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _next_name(s) -> str:
    n = (s.scalar(select(func.count()).where(ModelVersion.name.like("ft-%"))) or 0) + 1
    while s.scalar(select(func.count()).where(ModelVersion.name == f"ft-{n:03d}")):
        n += 1
    return f"ft-{n:03d}"


def _create_run(project: Project, cfg: FinetuneConfig, parent: ModelVersion,
                examples: list[Example], fingerprint: str) -> _Run:
    split = split_dev(examples, cfg.dev_fraction, cfg.dev_min_clips, previous_dev_groups(project))
    replay = replay_examples(project, parent.id, round(cfg.replay_fraction * len(split.train)))
    record = {
        "parent": {"id": parent.id, "name": parent.name, "spec": parent.spec},
        "fingerprint": fingerprint,
        "corrections": [e.correction_id for e in examples],
        "train_clips": [e.clip_id for e in split.train],
        "dev_clips": [e.clip_id for e in split.dev],
        "dev_groups": list(split.dev_groups),
        "split_by": split.by,
        "replay": [[e.clip_id, e.text] for e in replay],
        "decode": to_dict(project.config.decode),  # dev scores hold for these settings only
        "started_at": datetime.now(timezone.utc).isoformat(),
    }
    with project.store.session() as s:
        name = _next_name(s)
        folder = project.root / "models" / name
        record["version"] = name
        record["checkpoint"] = f"models/{name}/model.pt"
        mv = ModelVersion(name=name, spec=str((folder / "model.pt").resolve()), parent_id=parent.id,
                          active=False, status="training", config=to_dict(cfg), record=record)
        s.add(mv)
        s.flush()
        vid = mv.id
    folder.mkdir(parents=True, exist_ok=True)
    return _Run(vid, name, folder, cfg, record["parent"], split, tuple(replay), record)


def _reopen_run(project: Project, mv: ModelVersion) -> _Run:
    """Rebuild an unfinished run from its row: same config, corrections and split."""
    record = dict(mv.record)
    cfg = from_dict(FinetuneConfig, mv.config)
    by_clip = {e.clip_id: e for e in correction_examples(project, record["corrections"])}
    train = tuple(by_clip[c] for c in record["train_clips"] if c in by_clip)
    dev = tuple(by_clip[c] for c in record["dev_clips"] if c in by_clip)
    texts = dict((int(c), t) for c, t in record.get("replay", []))
    with project.store.session() as s:
        clips = list(s.scalars(select(Clip).where(Clip.id.in_(list(texts)))))
    replay = tuple(Example(c.id, c.audio_path, texts[c.id], c.duration, c.speaker, None) for c in clips)
    split = Split(train, dev, tuple(record["dev_groups"]), record.get("split_by", "speaker"))
    folder = project.root / "models" / mv.name
    folder.mkdir(parents=True, exist_ok=True)
    return _Run(mv.id, mv.name, folder, cfg, record["parent"], split, replay, record)


def open_run(project: Project, cfg: FinetuneConfig, resume: bool = False) -> _Run:
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
    with store.session() as s:
        unfinished = list(s.scalars(select(ModelVersion).where(ModelVersion.status == "training")
                                    .order_by(ModelVersion.id.desc())))
    if resume:
        if not unfinished:
            raise NothingToResume(f"{project.root}: no unfinished fine-tuning run to resume; "
                                  f"start one with `earmark finetune {project.root}`")
        return _reopen_run(project, unfinished[0])
    examples = correction_examples(project)
    if not examples:
        raise NoCorrections(f"{project.root}: no saved corrections to fine-tune on (flagged clips "
                            f"do not count); correct clips with `earmark review {project.root}` first")
    parent = store.active_model() or store.ensure_model_version(project.config.decode.model)
    fp = _fingerprint([e.correction_id for e in examples], cfg, parent.id)  # type: ignore[misc]
    for mv in unfinished:
        if (mv.record or {}).get("fingerprint") == fp:
            return _reopen_run(project, mv)
    return _create_run(project, cfg, parent, examples, fp)


# --- the model ------------------------------------------------------------------------

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


def merge_lora(model: "whisper.Whisper") -> None:
    """Fold LoRA adapters into their base weights and remove the wrappers."""
    from peft.tuners.lora import LoraLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, module.get_base_layer())


def trainable_state(model: "torch.nn.Module") -> dict[str, "torch.Tensor"]:
    """A copy of the weights being trained (all that differs from the parent)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _round_to_half(model: "torch.nn.Module") -> None:
    # the checkpoint is float16 like Whisper's releases; evaluate what will be saved
    for p in model.parameters():
        p.data = p.data.half().float()


SENTENCE_END = (".", "?", "!", "。", "？", "！", "…")


def window_text(texts: list[str], end_punctuation: bool = True) -> str:
    """The target text of a packed window: its clips' texts in order.

    With ``end_punctuation`` a clip's text that does not end a sentence gets a full
    stop, as Whisper writes at the end of an utterance; the packed decoder relies on it
    to tell where one clip's words end (see ``earmark.transcribe``).
    """
    parts = [t.strip() for t in texts if t.strip()]
    if end_punctuation:
        parts = [t if t.endswith(SENTENCE_END) else t + "." for t in parts]
    return " ".join(parts)


def improves(score: dict[str, float], best: dict[str, float] | None) -> bool:
    """Whether a dev score beats the best so far: lower WER, or the same WER and lower CER.

    A dev split of a few dozen clips often ties on WER between epochs while CER, which
    counts finer, still falls; without the tie-break early stopping would keep an older,
    less trained state.
    """
    if best is None:
        return True
    return (score["wer"], score["cer"]) < (best["wer"], best["cer"])


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then linear decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


# --- the training loop ------------------------------------------------------------------

class Trainer:
    """The training loop of one run: batches, steps, dev evaluation, saved state."""

    def __init__(self, project: Project, run: _Run, model: "whisper.Whisper"):
        import torch
        import whisper

        self.project, self.run_, self.model, self.cfg = project, run, model, run.cfg
        self.decode = project.config.decode
        self.device = next(model.parameters()).device
        self.examples = list(run.split.train) + list(run.replay)
        self.dev = list(run.split.dev)
        self.audio = {e.clip_id: au.read_clip(project.clip_path(e.audio_path))
                      for e in self.examples + self.dev}
        self.tokenizer = whisper.tokenizer.get_tokenizer(
            model.is_multilingual, num_languages=model.num_languages,
            language="en" if model.is_multilingual else None, task="transcribe")
        self.prompt = list(self.tokenizer.sot_sequence_including_notimestamps)
        self.augment = self.cfg.augment and self.cfg.mode != "decoder"
        self.plan, self.epoch_end_steps = self._plan()
        self.total_steps = math.ceil(len(self.plan) / self.cfg.grad_accum)
        params = [p for p in model.parameters() if p.requires_grad]
        self.params = params
        self.opt = torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        warm = max(1, round(self.cfg.warmup_fraction * self.total_steps))
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: lr_factor(s, self.total_steps, warm))
        self.state = _State()
        self.best: dict[str, torch.Tensor] | None = None
        self.features: dict[tuple[int, ...], torch.Tensor] = {}  # decoder mode's cache
        self.state_path = run.folder / STATE_FILE
        self.resumed_from = 0
        if self.state_path.is_file():
            self._load_state()

    # -- the plan: which windows each micro-batch holds ------------------------------------

    def _plan(self) -> tuple[list[list[list[int]]], set[int]]:
        cfg = self.cfg
        durations = [e.duration for e in self.examples]
        stretch = 1.0 / min(cfg.augmentation.speed_factors or (1.0,)) if self.augment else 1.0
        fixed = pack_epoch(durations, random.Random(cfg.seed), self.decode, cfg.pack, stretch)
        plan: list[list[list[int]]] = []
        ends: set[int] = set()
        for epoch in range(max(cfg.epochs, 1)):
            rng = random.Random(cfg.seed * 1_000_003 + epoch)
            if cfg.mode == "decoder":  # fixed windows, so their encoder outputs can be cached
                windows = list(fixed)
                rng.shuffle(windows)
            else:
                windows = pack_epoch(durations, rng, self.decode, cfg.pack, stretch)
            plan += [windows[i : i + cfg.batch_size] for i in range(0, len(windows), cfg.batch_size)]
            ends.add(math.ceil(len(plan) / cfg.grad_accum))
        if cfg.max_steps:
            plan = plan[: cfg.max_steps * cfg.grad_accum]
        return plan, ends

    # -- batches ---------------------------------------------------------------------------

    def _tokens(self, text: str) -> list[int]:
        ids = self.tokenizer.encode(" " + text) if text else []
        seq = self.prompt + ids + [self.tokenizer.eot]
        return seq[: self.model.dims.n_text_ctx + 1]

    def _targets(self, seqs: list[list[int]]) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Inputs (padded with EOT) and targets (prompt and padding ignored)."""
        import torch

        width = max(len(s) for s in seqs) - 1
        inputs = torch.full((len(seqs), width), self.tokenizer.eot, dtype=torch.long)
        targets = torch.full((len(seqs), width), IGNORE, dtype=torch.long)
        skip = len(self.prompt) - 1  # targets that are still prompt tokens
        for i, s in enumerate(seqs):
            inputs[i, : len(s) - 1] = torch.tensor(s[:-1])
            targets[i, skip : len(s) - 1] = torch.tensor(s[skip + 1 :])
        return inputs.to(self.device), targets.to(self.device)

    def _wave(self, window: list[int], rng: random.Random, gen: "torch.Generator") -> "torch.Tensor":
        import torch

        gap = torch.zeros(int(self.decode.pack_gap_seconds * au.SAMPLE_RATE))
        pieces = []
        for k, i in enumerate(window):
            clip = torch.from_numpy(self.audio[self.examples[i].clip_id])
            if self.augment:
                clip = augment_wave(clip, self.cfg.augmentation, rng, gen)
            pieces += [gap, clip] if k else [clip]
        return torch.cat(pieces)

    def _mel(self, window: list[int], rng: random.Random, gen: "torch.Generator") -> "torch.Tensor":
        import whisper

        wave = self._wave(window, rng, gen)
        mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(wave), self.model.dims.n_mels)
        if self.augment:
            mel = spec_augment(mel, min(wave.numel() / au.SAMPLE_RATE, 30.0), self.cfg.augmentation, gen)
        return mel

    def _encoded(self, windows: list[list[int]]) -> "torch.Tensor":
        """Encoder outputs of fixed windows, computed once (decoder mode)."""
        import torch

        todo = [w for w in windows if tuple(w) not in self.features]
        if todo:
            mels = torch.stack([self._mel(w, random.Random(0), torch.Generator()) for w in todo])
            with torch.no_grad():
                out = self.model.embed_audio(mels.to(self.device))
            for w, f in zip(todo, out):
                self.features[tuple(w)] = f
        return torch.stack([self.features[tuple(w)] for w in windows])

    def loss(self, micro: int) -> "torch.Tensor":
        """Mean cross-entropy of the text and EOT tokens of micro-batch ``micro``."""
        import torch
        import torch.nn.functional as F

        windows = self.plan[micro]
        # per micro-batch seeds: a resumed run draws the same augmentation
        rng = random.Random(self.cfg.seed * 7_919 + micro)
        gen = torch.Generator().manual_seed(self.cfg.seed * 104_729 + micro)
        seqs = [self._tokens(window_text([self.examples[i].text for i in w], self.cfg.end_punctuation))
                for w in windows]
        inputs, targets = self._targets(seqs)
        if self.cfg.mode == "decoder":
            logits = self.model.decoder(inputs, self._encoded(windows))
        else:
            mels = torch.stack([self._mel(w, rng, gen) for w in windows]).to(self.device)
            logits = self.model(mels, inputs)
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=IGNORE)

    # -- steps, evaluation, state -------------------------------------------------------------

    def step(self) -> float:
        """One optimizer step over up to ``grad_accum`` micro-batches; returns the loss."""
        import torch

        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        n = min(self.cfg.grad_accum, len(self.plan) - self.state.micro)
        total = 0.0
        for _ in range(n):
            loss = self.loss(self.state.micro) / n
            loss.backward()
            total += float(loss.detach())
            self.state.micro += 1
        torch.nn.utils.clip_grad_norm_(self.params, self.cfg.max_grad_norm)
        self.opt.step()
        self.sched.step()
        self.state.step += 1
        return total

    def dev_score(self, as_saved: bool = False) -> dict[str, float]:
        """Decode the dev split and score it (WER, CER, decoding speed, confidence AUC).

        With ``as_saved`` the weights are rounded to float16 for the evaluation (and
        restored after), so the score is that of the checkpoint these weights would
        become and the run needs no extra evaluation at the end.
        """
        self.model.eval()
        model, kept = self.model, None
        if self.cfg.mode == "lora":
            # score a merged copy: a decoder may read weights directly, past the adapters
            model = copy.deepcopy(self.model)
            merge_lora(model)
        elif as_saved:
            kept = trainable_state(self.model)
        if as_saved:
            _round_to_half(model)
        try:
            res = evaluate_audio(model, [self.audio[e.clip_id] for e in self.dev],
                                 [e.text for e in self.dev], self.decode)
        finally:
            if kept is not None:
                self.load_trainable(kept)
        return {"wer": res.wer, "cer": res.cer, "decode_seconds": res.decode_seconds,
                "speed": res.speed, "error_auc": res.confidence.auc, "ece": res.confidence.ece}

    def parent_score(self) -> dict[str, float]:
        """The parent's dev scores: from an earlier run's record on the same dev clips, or decoded now.

        Greedy decoding is deterministic, so a score measured for the same model, clips
        and decoding settings is reused rather than decoded again.
        """
        parent, dev = self.run_.parent, self.run_.record["dev_clips"]
        decode = to_dict(self.decode)
        with self.project.store.session() as s:
            rows = list(s.execute(select(ModelVersion.id, ModelVersion.record)))
        for vid, rec in rows:
            rec = rec or {}
            if rec.get("dev_clips") != dev or rec.get("decode") != decode:
                continue
            if rec.get("parent", {}).get("id") == parent["id"] and rec.get("dev_before"):
                return {**rec["dev_before"], "reused_from": rec.get("version")}
            if vid == parent["id"] and rec.get("dev_after"):
                return {**rec["dev_after"], "reused_from": rec.get("version")}
        return self.dev_score()

    def _eval_due(self) -> bool:
        s = self.state.step
        if s >= self.total_steps:
            return True
        return s % self.cfg.eval_every == 0 if self.cfg.eval_every else s in self.epoch_end_steps

    def _evaluate(self, loss: float) -> dict[str, float]:
        st = self.state
        score = self.dev_score(as_saved=True)  # as the checkpoint will be: no re-scoring at the end
        st.history.append({"step": st.step, "loss": round(loss, 4), **score})
        if improves(score, st.best_score):
            st.best_wer, st.best_step, st.bad_evals = score["wer"], st.step, 0
            st.best_score = score
            self.best = trainable_state(self.model)
        else:
            st.bad_evals += 1
            if st.bad_evals >= self.cfg.patience and st.step < self.total_steps:
                st.done = st.stopped_early = True
        return score

    def save_state(self) -> None:
        """Write the training state atomically (a kill leaves the old file or the new)."""
        import torch

        payload = {"format": 1, "fingerprint": self.run_.record["fingerprint"],
                   "state": asdict(self.state), "trainable": trainable_state(self.model),
                   # the best weights are often the current ones: not written twice
                   "best": None if self.state.best_step == self.state.step else self.best,
                   "optimizer": self.opt.state_dict(),
                   "scheduler": self.sched.state_dict(), "torch_rng": torch.get_rng_state(),
                   "python_rng": random.getstate(), "numpy_rng": np.random.get_state()}
        fd, tmp = tempfile.mkstemp(dir=self.state_path.parent, suffix=".tmp")
        os.close(fd)
        try:
            torch.save(payload, tmp)
            os.replace(tmp, self.state_path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _load_state(self) -> None:
        import torch

        # our own file, written by save_state; it holds RNG states, not only tensors
        payload = torch.load(self.state_path, map_location=self.device, weights_only=False)
        if payload.get("fingerprint") != self.run_.record["fingerprint"]:
            return  # a state from some other run: start over
        self.state = _State(**payload["state"])
        self.load_trainable(payload["trainable"])
        self.best = payload["best"]
        if self.best is None and self.state.best_step == self.state.step:
            self.best = trainable_state(self.model)
        self.opt.load_state_dict(payload["optimizer"])
        self.sched.load_state_dict(payload["scheduler"])
        torch.set_rng_state(payload["torch_rng"])
        random.setstate(payload["python_rng"])
        np.random.set_state(payload["numpy_rng"])
        self.resumed_from = self.state.step
        self.state.resumes.append(self.state.step)

    def load_trainable(self, weights: dict[str, "torch.Tensor"]) -> None:
        """Put saved trained weights back into the model."""
        import torch

        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for n, w in weights.items():
                params[n].copy_(w)

    def train(self, progress: bool = True) -> None:
        """Run (or continue) the loop until the last step or early stopping."""
        st = self.state
        if st.before is None:
            st.before = self.parent_score()
        bar = tqdm(total=self.total_steps, initial=st.step, unit="step", disable=not progress,
                   desc=f"finetune {self.run_.name} ({self.cfg.mode})", dynamic_ncols=True)
        last_wer = st.history[-1]["wer"] if st.history else st.before["wer"]
        losses: list[float] = []
        with bar:
            while not st.done and st.step < self.total_steps:
                start = time.perf_counter()
                losses = (losses + [self.step()])[-10:]
                evaluated = self._eval_due()
                if evaluated:
                    last_wer = self._evaluate(float(np.mean(losses)))["wer"]
                st.train_seconds += time.perf_counter() - start
                if evaluated or st.step % max(1, self.cfg.save_every) == 0:
                    self.save_state()
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(losses):.3f}", dev_wer=f"{last_wer:.3f}",
                                best=f"{min(st.best_wer, st.before['wer']):.3f}")
        if not st.done:
            st.done = True
            self.save_state()  # a kill while saving the version resumes straight to it


# --- finishing: checkpoint, record, gate ---------------------------------------------------

def _write_json(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)


def gate_message(name: str, parent: str, before: float, after: float, n_dev: int,
                 margin: float) -> tuple[bool, str]:
    """Whether the new version beats the active one on dev WER, and a sentence saying so."""
    passed = after < before - margin
    if passed:
        return True, (f"{name} is now the active model: dev WER {before:.3f} -> {after:.3f} "
                      f"({(before - after) / before if before else 0:.0%} lower) on {n_dev} held-out clips")
    return False, (f"{name} was kept but NOT activated: its dev WER {after:.3f} does not beat the "
                   f"active {parent}'s {before:.3f} on the same {n_dev} held-out clips"
                   f"{f' by more than {margin:g}' if margin else ''}; {parent} stays active. "
                   "Try more corrections, a lower --lr, or --mode decoder")


def _finish(project: Project, run: _Run, trainer: Trainer, started: float) -> FinetuneResult:
    st, cfg, model = trainer.state, run.cfg, trainer.model
    if trainer.best is not None:
        trainer.load_trainable(trainer.best)
    if cfg.mode == "lora":
        merge_lora(model)
    _round_to_half(model)
    after = st.best_score  # scored on exactly these (merged, float16) weights
    if after is None:
        after = trainer.dev_score()
    before = st.before or {}
    passed, message = gate_message(run.name, run.parent["name"], before["wer"], after["wer"],
                                   len(run.split.dev), cfg.gate_margin)
    if after["speed"] and before.get("speed") and after["speed"] < before["speed"] / 2:
        message += (f"; warning: dev decoding is {before['speed'] / after['speed']:.1f}x slower than "
                    "before, a sign of looping output")
    from .models import save_checkpoint

    checkpoint = save_checkpoint(model, run.folder / "model.pt",
                                 {"version": run.name, "parent": run.parent["name"]})
    record = {**run.record, "config": to_dict(cfg),
              "dev_wer_before": before["wer"], "dev_wer_after": after["wer"],
              "dev_cer_before": before["cer"], "dev_cer_after": after["cer"],
              "decode_speed_before": before["speed"], "decode_speed_after": after["speed"],
              "dev_before": before, "dev_after": after, "history": st.history,
              "steps": st.step, "total_steps": trainer.total_steps, "best_step": st.best_step,
              "stopped_early": st.stopped_early, "resumes": st.resumes,
              "train_seconds": round(st.train_seconds, 2),
              "finished_at": datetime.now(timezone.utc).isoformat(),
              "gate": {"passed": passed, "message": message}}
    _write_json(run.folder / "record.json", record)
    with project.store.session() as s:  # one transaction: status, record and activation
        mv = s.get(ModelVersion, run.version_id)
        mv.status, mv.record = ("ready" if passed else "rejected"), record
        if passed:
            s.execute(ModelVersion.__table__.update().values(active=False))
            mv.active = True
    trainer.state_path.unlink(missing_ok=True)
    return FinetuneResult(
        version=run.name, version_id=run.version_id, parent=run.parent["name"], activated=passed,
        message=message, dev_wer_before=before["wer"], dev_wer_after=after["wer"],
        dev_cer_before=before["cer"], dev_cer_after=after["cer"],
        decode_speed_before=before["speed"], decode_speed_after=after["speed"],
        train_clips=len(run.split.train), dev_clips=len(run.split.dev), replay_clips=len(run.replay),
        steps=st.step, stopped_early=st.stopped_early, resumed_from_step=trainer.resumed_from,
        train_seconds=st.train_seconds, total_seconds=time.perf_counter() - started,
        checkpoint=checkpoint)


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
    from .models import load_model, resolve_device, torch_threads

    started = time.perf_counter()
    cfg = cfg or project.config.finetune
    check_config(cfg)
    run = open_run(project, cfg, resume)
    with torch_threads(run.cfg.threads):
        model = load_model(run.parent["spec"], resolve_device(run.cfg.device))
        prepare_model(model, run.cfg)
        trainer = Trainer(project, run, model)
        trainer.train(progress)
        return _finish(project, run, trainer, started)


# --- in-memory training (no project) ---------------------------------------------------------

def train_pairs(model: "whisper.Whisper", texts: list[str], *, audios: list[np.ndarray] | None = None,
                features: Any = None, frames: list[int] | None = None,
                cfg: FinetuneConfig = FinetuneConfig(mode="decoder")) -> "whisper.Whisper":
    """Fine-tune ``model`` in place on (clip, text) pairs held in memory; return it.

    The library's training step without a project, store, dev split or gate (used by
    :mod:`earmark.simulate`). One clip per window, no packing or augmentation; the
    same teacher forcing and AdamW schedule as :class:`Trainer`. Runs
    ``cfg.max_steps`` steps, or ``cfg.epochs`` passes over the clips.

    Parameters
    ----------
    model
        A loaded Whisper model; prepared for ``cfg.mode`` here and left in eval mode.
    texts
        The reference transcript of each clip.
    audios
        The clips (float32, 16 kHz); needed unless ``features`` are given.
    features
        ``decoder`` mode only: each clip's encoder output, ``(clips, frames, state)``
        (array or tensor, any float dtype), computed once by the caller.
    frames
        With ``features``: encoder positions each clip needs; a batch is cut to its
        longest, so short clips train on short contexts, as they are decoded.
    cfg
        Mode, steps or epochs, batch size, learning rate, seed.
    """
    import torch
    import torch.nn.functional as F
    import whisper

    check_config(cfg)
    if features is None and audios is None:
        raise BadConfig("train_pairs needs audios or (decoder mode) features")
    if features is not None and cfg.mode != "decoder":
        raise BadConfig("encoder outputs can only train in decoder mode (the encoder is frozen)")
    device = next(model.parameters()).device
    prepare_model(model, cfg)
    tk = whisper.tokenizer.get_tokenizer(model.is_multilingual, num_languages=model.num_languages,
                                         language="en" if model.is_multilingual else None,
                                         task="transcribe")
    prompt = list(tk.sot_sequence_including_notimestamps)
    seqs = [(prompt + (tk.encode(" " + t.strip()) if t.strip() else []) + [tk.eot])
            [: model.dims.n_text_ctx + 1] for t in texts]
    per_epoch = math.ceil(len(texts) / cfg.batch_size)
    total = cfg.max_steps or cfg.epochs * per_epoch
    rng = random.Random(cfg.seed)
    batches: list[list[int]] = []
    while len(batches) < total:
        order = list(range(len(texts)))
        rng.shuffle(order)
        batches += [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, round(cfg.warmup_fraction * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, warm))
    skip = len(prompt) - 1
    model.train()
    for idx in batches[:total]:
        width = max(len(seqs[i]) for i in idx) - 1
        inputs = torch.full((len(idx), width), tk.eot, dtype=torch.long)
        targets = torch.full((len(idx), width), IGNORE, dtype=torch.long)
        for row, i in enumerate(idx):
            s = seqs[i]
            inputs[row, : len(s) - 1] = torch.tensor(s[:-1])
            targets[row, skip : len(s) - 1] = torch.tensor(s[skip + 1 :])
        inputs, targets = inputs.to(device), targets.to(device)
        if features is not None:
            cut = max(frames[i] for i in idx) if frames else None
            xa = torch.stack([torch.as_tensor(features[i][:cut]) for i in idx]).to(device, torch.float32)
            logits = model.decoder(inputs, xa)
        else:
            mels = torch.stack([whisper.log_mel_spectrogram(
                whisper.pad_or_trim(torch.from_numpy(audios[i])), model.dims.n_mels)  # type: ignore[index]
                for i in idx]).to(device)
            logits = model(mels, inputs)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        opt.step()
        sched.step()
    model.eval()
    if cfg.mode == "lora":
        merge_lora(model)
    model.requires_grad_(False)
    return model
