"""The two ways a study round trains: the cheap stand-in, and the product's own `finetune`.

``cheap``: decoder-only training from the base model on everything labeled so far,
over encoder outputs computed once per clip and cached on disk, then moved back toward
the base weights by ``interpolate`` as `finetune` does. ``product``: the clips of the
pool in a project per (strategy, seed); each round's picks are saved as corrections
(starting from the hypotheses shown) and `finetune` runs with its defaults (full mode,
interpolation, dev split, gate), training on from the active model. Both give back
the model that decodes the next round.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from earmark.config import FinetuneConfig

from earmark.study_config import SimulateConfig, StudyConfig
from earmark.study.split import Row, as_dicts

if TYPE_CHECKING:
    import whisper

    from earmark.decode.types import Transcript


def typed(text: str) -> str:
    """A reference as a person types it (all-caps corpora in sentence case)."""
    from earmark.simulate.study import as_typed

    return as_typed(text)


class EncoderCache:
    """Encoder outputs per clip (alone in its window), computed once, kept as .npy files."""

    def __init__(self, folder: Path, base: "whisper.Whisper", rows: list[Row]):
        self.folder, self.base, self.rows = folder, base, rows
        folder.mkdir(parents=True, exist_ok=True)

    def get(self, idx: list[int]) -> list[np.ndarray]:
        """(frames, state) float16 arrays of the clips ``idx``."""
        from earmark.simulate.study import encode_study

        missing = [i for i in idx if not (self.folder / f"{i}.npy").exists()]
        for b in range(0, len(missing), 32):
            part = missing[b : b + 32]
            st = encode_study(self.base, as_dicts([self.rows[i] for i in part]), SimulateConfig())
            for k, i in enumerate(part):
                tmp = self.folder / f"{i}.tmp.npy"
                np.save(tmp, st.features[k, : int(st.frames[k])])
                tmp.replace(self.folder / f"{i}.npy")
        return [np.load(self.folder / f"{i}.npy") for i in idx]


def train_cheap(base: "whisper.Whisper", rows: list[Row], labeled: list[int], cache: EncoderCache,
                cfg: StudyConfig, seed: int) -> "whisper.Whisper":
    """The cheap path: a copy of ``base`` trained on the clips ``labeled``."""
    import math

    from earmark.train.pairs import train_pairs
    from earmark.train.trainable import interpolate, parent_weights

    feats = cache.get(labeled)
    frames = [f.shape[0] for f in feats]
    width = max(frames)
    stacked = np.zeros((len(feats), width, feats[0].shape[1]), dtype=np.float16)
    for k, f in enumerate(feats):
        stacked[k, : f.shape[0]] = f
    steps = max(cfg.min_steps, math.ceil(cfg.epochs * len(labeled) / cfg.batch_size))
    ft = FinetuneConfig(mode="decoder", max_steps=steps, batch_size=cfg.batch_size, lr=cfg.lr,
                        seed=seed, augment=False, device="cpu")
    model = copy.deepcopy(base)
    parent = {k: v for k, v in parent_weights(model).items() if k.startswith("decoder.")}
    train_pairs(model, [typed(rows[i].text) for i in labeled], features=stacked, frames=frames, cfg=ft)
    interpolate(model, parent, cfg.interpolate)
    return model


class ProductLoop:
    """A project holding the pool, where rounds run through `finetune`'s defaults."""

    def __init__(self, folder: Path, rows: list[Row], pool: tuple[int, ...], cfg: StudyConfig):
        from earmark.config import DecodeConfig, ProjectConfig
        from earmark.ingest import import_audio
        from earmark.store.project import init_project, open_project

        self.cfg = cfg
        if (folder / "clip_ids.json").exists():
            self.project = open_project(folder)
            self.clip_of = {int(k): v for k, v in json.loads((folder / "clip_ids.json").read_text()).items()}
            return
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "earmark.json").exists():
            init_project(folder, ProjectConfig(decode=DecodeConfig(model=cfg.model)))
        self.project = open_project(folder)
        manifest = folder.parent / f"{folder.name}.pool.jsonl"  # import refuses files inside the project
        manifest.write_text("".join(json.dumps({"audio": rows[i].audio, "speaker": rows[i].speaker}) + "\n"
                                    for i in pool))
        import_audio(self.project, manifest, progress=False)
        from sqlalchemy import select

        from earmark.store.db import Clip, Source

        with self.project.store.session() as s:
            by_path = {p: c for p, c in s.execute(select(Source.path, Clip.id).join(Clip, Clip.source_id == Source.id))}
        self.clip_of = {i: by_path[rows[i].audio] for i in pool if rows[i].audio in by_path}
        (folder / "clip_ids.json").write_text(json.dumps(self.clip_of))

    def model(self) -> "whisper.Whisper":
        """The project's active model (the base one before any round passed the gate)."""
        from earmark.models.versions import load_version

        store = self.project.store
        mv = store.active_model() or store.ensure_model_version(self.cfg.model)
        return load_version(self.project, mv, "cpu")

    def round(self, rows: list[Row], shown: dict[int, "Transcript"], picks: list[int],
              seconds: dict[int, float]) -> dict:
        """Store the hypotheses shown, save the picks' corrections, run `finetune`."""
        from sqlalchemy import select

        from earmark.ranking.rank import transcript_row
        from earmark.review.workflow import open_clip, save_correction
        from earmark.store.db import TranscriptRow as Row_
        from earmark.train.finetune import finetune

        store = self.project.store
        mv = store.active_model() or store.ensure_model_version(self.cfg.model)
        with store.session() as s:
            have = set(s.scalars(select(Row_.clip_id).where(Row_.model_version_id == mv.id)))
            for i, t in shown.items():
                cid = self.clip_of.get(i)
                if cid is not None and cid not in have:
                    s.add(transcript_row(cid, mv.id, t))
        done = {c.clip_id for c in store.latest_corrections(include_flagged=True)}
        for i in picks:  # a resumed round does not save twice
            cid = self.clip_of[i]
            if cid not in done:
                save_correction(self.project, open_clip(self.project, cid), typed(rows[i].text),
                                annotator="study", seconds_spent=seconds[i])
        ft = replace(self.project.config.finetune, device="cpu",
                     max_steps=self.cfg.finetune_max_steps or self.project.config.finetune.max_steps)
        r = finetune(self.project, ft, progress=False)
        return {"version": r.version, "activated": r.activated, "steps": r.steps,
                "dev_wer_before": r.dev_wer_before, "dev_wer_after": r.dev_wer_after,
                "train_seconds": r.train_seconds}
