"""The training loop of one fine-tuning run: batches, steps, dev evaluation, saved state.

Training is teacher forcing on openai-whisper's model: the decoder reads
``sot_sequence_including_notimestamps + text + eot`` and the loss is the cross-entropy
of the text tokens and of EOT. Clips are packed into 30 s windows exactly as decoding
packs them, because Whisper's encoder always runs on 30 s: a 3 s clip alone in a window
would cost as much as ten of them packed together.

Modes (set up by :func:`earmark.train.trainable.prepare_model`):

- ``full``: every weight is trained (the default for tiny and base);
- ``decoder``: the encoder is frozen and its outputs are computed once per window and
  cached. Audio augmentation is off in this mode, because augmenting would mean
  running the encoder again on every batch, the cost this mode exists to avoid;
- ``lora``: PEFT LoRA adapters on the attention (query, key, value, out) and MLP
  projections of both encoder and decoder, merged into the saved checkpoint so that
  it loads with ``whisper.load_model`` like any other.

The loop's state (weights, optimizer, scheduler, step, RNG) is saved atomically to
:data:`STATE_FILE` in the run's folder, so a killed run continues where it stopped.
Runs themselves (their version row, split and record) and what becomes of the trained
model are :mod:`earmark.train.finetune`'s job."""

from __future__ import annotations

import copy
import math
import os
import random
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select
from tqdm.auto import tqdm

from earmark import audio as au
from earmark.config import FinetuneConfig, to_dict
from earmark.decode.decoder import Decoder
from earmark.errors import BadConfig
from earmark.evaluate.heldout import evaluate_audio
from earmark.evaluate.metrics import error_rates
from earmark.models.device import check_device
from earmark.store.db import ModelVersion
from earmark.store.project import Project
from earmark.train.augment import augment_wave, spec_augment
from earmark.train.card import MixedPrecision
from earmark.train.dataset import pack_epoch
from earmark.train.gate import clearly_worse, held_back, improves
from earmark.train.run import Run
from earmark.train.state_file import load_state_file
from earmark.train.teacher import IGNORE, Targets, optimizer, window_text
from earmark.train.trainable import interpolate, merge_lora, parent_weights, round_to_half, trainable_state

if TYPE_CHECKING:
    import torch
    import whisper

STATE_FILE = ".train-state.pt"
STATE_FORMAT = 2  # 2: the kept weights are the newest not clearly worse than the best
@dataclass
class _State:
    """Everything a killed run needs to continue (saved with the weights)."""

    micro: int = 0  # micro-batches done
    step: int = 0  # optimizer steps done
    history: list[dict[str, Any]] = field(default_factory=list)
    best_step: int = -1  # the evaluation with the lowest dev WER so far
    best_score: dict[str, Any] | None = None  # its dev scores (with clip errors)
    kept_step: int = -1  # the step whose weights the run will save
    kept_score: dict[str, Any] | None = None  # dev scores of those weights
    bad_evals: int = 0  # evaluations in a row clearly worse than the best
    done: bool = False
    stopped_early: bool = False
    before: dict[str, Any] | None = None  # the parent's dev scores
    anchor_before: list[str] | None = None  # the parent's decodes of the forgetting check's clips
    train_seconds: float = 0.0
    resumes: list[int] = field(default_factory=list)  # steps at which the run was resumed


def check_config(cfg: FinetuneConfig) -> None:
    """Raise :class:`BadConfig` for values that cannot train (:meth:`FinetuneConfig.problems`),
    or a device this machine lacks."""
    problems = cfg.problems()
    if problems:
        raise BadConfig("fine-tuning settings (a name_like_this is the flag --name-like-this, or "
                        "finetune.name_like_this in earmark.json): " + "; ".join(problems))
    check_device(cfg.device, "finetune.device")


class Trainer:
    """The training loop of one run: batches, steps, dev evaluation, saved state."""

    def __init__(self, project: Project, run: Run, model: "whisper.Whisper"):
        import torch

        self.project, self.run_, self.model, self.cfg = project, run, model, run.cfg
        self.decode = project.config.decode
        self.device = next(model.parameters()).device
        self.examples = list(run.split.train) + list(run.replay)
        self.dev = list(run.split.dev)
        self.anchor = list(run.anchor)
        self.audio = {e.clip_id: au.read_clip(project.clip_path(e.audio_path))
                      for e in self.examples + self.dev + self.anchor}
        self.targets = Targets(model)
        self.augment = self.cfg.augment and self.cfg.mode != "decoder"
        self.plan, self.epoch_end_steps = self._plan()
        self.total_steps = math.ceil(len(self.plan) / self.cfg.grad_accum)
        self.params, self.opt, self.sched = optimizer(model, self.cfg, self.total_steps)
        self.amp = MixedPrecision(self.device)  # autocast (and loss scaling) on a GPU only
        self.state = _State()
        self.kept: dict[str, torch.Tensor] | None = None  # the weights the run will save
        self.features: dict[tuple[int, ...], torch.Tensor] = {}  # decoder mode's cache
        # the parent's values of what trains, before any training or resumed state
        self.parent = parent_weights(model) if self.cfg.interpolate != 1.0 else {}
        self.state_path = run.folder / STATE_FILE
        self.resumed_from = 0
        self.discarded_state = ""  # why a saved state could not be used (the run started over)
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
        seqs = [self.targets.sequence(window_text([self.examples[i].text for i in w],
                                                  self.cfg.end_punctuation)) for w in windows]
        inputs, targets = (t.to(self.device) for t in self.targets.tensors(seqs))
        if self.cfg.mode == "decoder":
            with self.amp.autocast():
                logits = self.model.decoder(inputs, self._encoded(windows))
        else:
            mels = torch.stack([self._mel(w, rng, gen) for w in windows]).to(self.device)
            with self.amp.autocast():
                logits = self.model(mels, inputs)
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=IGNORE)

    # -- steps, evaluation, state -------------------------------------------------------------

    def step(self) -> float:
        """One optimizer step over up to ``grad_accum`` micro-batches; returns the loss."""
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        n = min(self.cfg.grad_accum, len(self.plan) - self.state.micro)
        total = 0.0
        for _ in range(n):
            loss = self.loss(self.state.micro) / n
            self.amp.backward(loss)
            total += float(loss.detach())
            self.state.micro += 1
        self.amp.step(self.opt, self.params, self.cfg.max_grad_norm)
        self.sched.step()
        self.state.step += 1
        return total

    def dev_score(self, as_saved: bool = False) -> dict[str, float]:
        """Decode the dev split and score it (WER, CER, decoding speed, confidence AUC).

        With ``as_saved`` the weights are first made what the checkpoint would hold
        (moved toward the parent's by ``interpolate``, rounded to float16) and restored
        after, so the score is that of the checkpoint these weights would become and the
        run needs no extra evaluation at the end.
        """
        model = self._decodable()
        kept = trainable_state(self.model) if as_saved and model is self.model else None
        if as_saved:
            self.as_saved(model)
        try:
            res = evaluate_audio(model, [self.audio[e.clip_id] for e in self.dev],
                                 [e.text for e in self.dev], self.decode)
        finally:
            if kept is not None:
                self.load_trainable(kept)
        return {"wer": res.wer, "cer": res.cer, "decode_seconds": res.decode_seconds,
                "speed": res.speed, "error_auc": res.confidence.auc, "ece": res.confidence.ece,
                "clip_errors": list(res.rates.clip_errors)}

    def _decodable(self) -> "whisper.Whisper":
        """The model ready to decode: itself in eval mode, or in LoRA mode a merged copy.

        A decoder may read weights directly, past the adapters.
        """
        self.model.eval()
        if self.cfg.mode != "lora":
            return self.model
        model = copy.deepcopy(self.model)
        merge_lora(model)
        return model

    def anchor_texts(self, model: "whisper.Whisper | None" = None) -> list[str]:
        """Decode the forgetting check's clips (with the model as it is now, by default)."""
        if not self.anchor:
            return []
        outs = Decoder(model or self._decodable(), self.decode).transcribe(
            [self.audio[e.clip_id] for e in self.anchor])
        return [o.text for o in outs]

    def drift(self, model: "whisper.Whisper") -> dict[str, Any] | None:
        """How much ``model`` changes the parent's words on the clips the parent was surest of.

        Both sides are decoded now with the same settings and packing (the parent's at the
        start of the run), so the figure is the new weights' doing, not the decoder's.
        """
        if not self.anchor or self.state.anchor_before is None:
            return None
        rates = error_rates(self.state.anchor_before, self.anchor_texts(model))
        return {"clips": len(self.anchor), "parent_words": rates.ref_words, "changed": rates.wer}

    def as_saved(self, model: "whisper.Whisper") -> None:
        """Make a plain (merged) model's trained weights what the checkpoint holds, in place."""
        interpolate(model, self.parent, self.cfg.interpolate)
        round_to_half(model)

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

    def _evaluate(self, loss: float) -> dict[str, Any]:
        """Score the weights on the dev split; keep them unless an earlier state is clearly better.

        A few dozen dev clips differ by several WER points between epochs by chance, so
        the lowest dev WER is a poor guide to which weights to keep: it often points at
        an early epoch. The newest weights (the ones the schedule has taken furthest)
        are kept unless the paired bootstrap over the dev clips says the best
        evaluation so far beats them with at least ``dev_confidence``, or unless they
        would fail the gate where the kept ones pass it (:func:`held_back`); early
        stopping counts the evaluations in a row that are clearly worse.
        """
        st = self.state
        score = self.dev_score(as_saved=True)  # as the checkpoint will be: no re-scoring at the end
        if improves(score, st.best_score):
            st.best_step, st.best_score = st.step, score
        worse, p_best = clearly_worse(score, st.best_score, self.cfg.dev_confidence)
        why_not = ""
        if worse:
            why_not = f"clearly worse than step {st.best_step}'s, p = {p_best:.2f}"
            st.bad_evals += 1
            if st.bad_evals >= self.cfg.patience and st.step < self.total_steps:
                st.done = st.stopped_early = True
        else:
            st.bad_evals = 0
            if held_back(score, st.kept_score, st.before, self.cfg.gate_margin):
                why_not = (f"dev WER {score['wer']:.3f} does not beat the parent's "
                           f"{st.before['wer']:.3f}, step {st.kept_step}'s does")
            else:
                st.kept_step, st.kept_score = st.step, score
                self.kept = trainable_state(self.model)
        st.history.append({"step": st.step, "loss": round(loss, 4),
                           **{k: v for k, v in score.items() if k != "clip_errors"},
                           "p_best_better": round(p_best, 3), "kept": not why_not,
                           "why_not_kept": why_not or None})
        return score

    def save_state(self) -> None:
        """Write the training state atomically (a kill leaves the old file or the new)."""
        import torch

        payload = {"format": STATE_FORMAT, "fingerprint": self.run_.record["fingerprint"],
                   "state": asdict(self.state), "trainable": trainable_state(self.model),
                   # the kept weights are often the current ones: not written twice
                   "kept": None if self.state.kept_step == self.state.step else self.kept,
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

        try:
            payload = load_state_file(self.state_path, self.device)
        except Exception as e:  # damaged on disk (written atomically, so not by a kill)
            aside = self.state_path.with_name(self.state_path.name + ".unreadable")
            os.replace(self.state_path, aside)
            self._start_over(f"could not be read ({type(e).__name__})", f"; the file was kept as {aside}")
            return
        if payload.get("format") != STATE_FORMAT:
            self._start_over(f"was written by another earmark version (state format "
                             f"{payload.get('format')}, this one reads {STATE_FORMAT})")
            return
        if payload.get("fingerprint") != self.run_.record["fingerprint"]:
            self._start_over("belongs to a run with other corrections or settings")
            return
        self.state = _State(**payload["state"])
        self.load_trainable(payload["trainable"])
        self.kept = payload["kept"]
        if self.kept is None and self.state.kept_step == self.state.step:
            self.kept = trainable_state(self.model)
        self.opt.load_state_dict(payload["optimizer"])
        self.sched.load_state_dict(payload["scheduler"])
        torch.set_rng_state(payload["torch_rng"])
        random.setstate(payload["python_rng"])
        np.random.set_state(payload["numpy_rng"])
        self.resumed_from = self.state.step
        self.state.resumes.append(self.state.step)

    def _start_over(self, why: str, after: str = "") -> None:
        """Note that the saved state could not be used, for the result message and the record."""
        self.discarded_state = (f"the saved training state {self.state_path} {why}, "
                                f"so this run started over from step 0{after}")

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
        if st.anchor_before is None and self.anchor and st.step == 0:
            st.anchor_before = self.anchor_texts()
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
                best = st.best_score["wer"] if st.best_score else math.inf
                bar.set_postfix(loss=f"{np.mean(losses):.3f}", dev_wer=f"{last_wer:.3f}",
                                best=f"{min(best, st.before['wer']):.3f}")
        if not st.done:
            st.done = True
            self.save_state()  # a kill while saving the version resumes straight to it
