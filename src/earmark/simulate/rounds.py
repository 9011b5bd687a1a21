"""One seed of a simulation, round by round: decoding over the cached encoder outputs,
selection by each strategy, decoder-only fine-tuning on everything labeled, and how
well the zero-shot model's confidence finds its word errors.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from earmark.config import DecodeConfig, FinetuneConfig

from earmark.study_config import SimulateConfig
from earmark.decode.decoder import Decoder
from earmark.decode.types import Transcript
from earmark.evaluate.metrics import error_rates, normalize, roc_auc, word_error_labels
from earmark.ranking.scoring import clip_scores, transcript_scores
from earmark.ranking.strategies import Candidate, get_strategy
from earmark.simulate.study import RoundResult, Study, split_speakers
from earmark.train.pairs import train_pairs

if TYPE_CHECKING:
    import whisper


def decode(decoder: Any, study: Study, idx: Sequence[int], batch: int = 16) -> dict[int, "Transcript"]:
    """Transcripts of the clips ``idx``, decoded from their cached encoder outputs.

    Clips are batched by length, and each batch keeps only the positions its longest
    clip needs.
    """
    order = sorted(idx, key=lambda i: (study.durations[i], i))
    out: dict[int, Transcript] = {}
    for b in range(0, len(order), batch):
        chunk = order[b : b + batch]
        cut = int(study.frames[chunk].max())
        ts = decoder.transcribe_features(study.features[chunk, :cut],
                                         [float(study.durations[i]) for i in chunk])
        out.update(zip(chunk, ts))
    return out


def corpus_wer(study: Study, transcripts: dict[int, "Transcript"], idx: Sequence[int]) -> float:
    """Pooled WER (Whisper's normalizer) of the clips ``idx``."""
    return error_rates([study.texts[i] for i in idx], [transcripts[i].text for i in idx]).wer


def changed(study: Study, transcripts: dict[int, "Transcript"], idx: Sequence[int]) -> float:
    """Audio minutes of the clips ``idx`` whose hypothesis differs from the reference."""
    return float(sum(study.durations[i] for i in idx
                     if normalize(transcripts[i].text) != normalize(study.texts[i])) / 60)


def study_candidates(study: Study, transcripts: dict[int, "Transcript"], idx: Sequence[int]) -> list:
    """Selection candidates of the clips ``idx`` (clip id = study index)."""
    out = []
    for i in idx:
        t = transcripts.get(i) if transcripts else None
        scores = {} if t is None else transcript_scores(t)
        out.append(Candidate(int(i), float(study.durations[i]), scores,
                             tuple(float(v) for v in study.embeddings[i])))
    return out


def round_finetune_config(cfg: SimulateConfig, n_clips: int, seed: int) -> FinetuneConfig:
    """Decoder-only training for a round: ``epochs`` passes, at least ``min_steps`` steps."""
    steps = max(cfg.min_steps, math.ceil(cfg.epochs * n_clips / cfg.batch_size))
    return FinetuneConfig(mode="decoder", max_steps=steps, batch_size=cfg.batch_size, lr=cfg.lr,
                          seed=seed, augment=False, device=cfg.device)


def run_seed(base: "whisper.Whisper", study: Study, cfg: SimulateConfig, decode_cfg: DecodeConfig,
             seed: int, zero_shot: dict[int, "Transcript"], log: Any = print,
             partial: Path | None = None) -> list[RoundResult]:
    """Every strategy's rounds for one seed (one speaker split).

    With ``partial``, each round is also appended to that JSONL file as it finishes,
    so a long run that is stopped keeps what it measured.
    """
    import copy

    pool_s, dev_s, test_s = split_speakers(study.speakers, seed, cfg.test_speakers, cfg.dev_speakers)
    pool = [i for i, s in enumerate(study.speakers) if s in pool_s]
    dev = [i for i, s in enumerate(study.speakers) if s in dev_s]
    test = [i for i, s in enumerate(study.speakers) if s in test_s]
    budget = cfg.budget_minutes * 60
    results: list[RoundResult] = []
    zero = dict(test_wer=corpus_wer(study, zero_shot, test), dev_wer=corpus_wer(study, zero_shot, dev))
    for name in cfg.strategies:
        strategy = get_strategy(name, seed=seed)
        scored = strategy.score_name is not None  # random, longest-first: no pool decoding
        results.append(RoundResult(name, seed, 0, 0, 0.0, 0.0, seconds=0.0, **zero))
        labeled: list[int] = []
        changed_min = 0.0
        current = zero_shot  # the current model's transcripts of the pool (when decoded)
        decoder = None  # the latest round's model; round 1 needs none (zero-shot covers all)
        for rnd in range(1, cfg.rounds + 1):
            start = time.perf_counter()
            done = set(labeled)
            unlabeled = [i for i in pool if i not in done]
            picked = [c.clip_id for c in strategy.select(
                study_candidates(study, current if scored else {}, unlabeled), budget_seconds=budget)]
            # baselines decode only their picks, with the previous round's model (`decoder`)
            if rnd > 1 and any(i not in current for i in picked):
                current = {**current, **decode(decoder, study, [i for i in picked if i not in current],
                                               cfg.batch_decode)}
            changed_min += changed(study, current, picked)
            labeled += picked
            model = copy.deepcopy(base)
            train_pairs(model, [study.texts[i] for i in labeled], features=study.features[labeled],
                        frames=[int(study.frames[i]) for i in labeled],
                        cfg=round_finetune_config(cfg, len(labeled), seed * 1000 + rnd))
            # float32 on a CPU (the figures so far); a GPU's half precision (decode_cfg) there
            decoder = Decoder(model, replace(decode_cfg, batch_size=cfg.batch_decode,
                                             quantize="none" if cfg.device == "cpu" else decode_cfg.quantize))
            done = set(labeled)
            rest = [i for i in pool if i not in done] if scored and rnd < cfg.rounds else []
            ts = decode(decoder, study, test + dev + rest, cfg.batch_decode)
            current = {i: ts[i] for i in rest}
            r = RoundResult(name, seed, rnd, len(labeled), float(study.durations[labeled].sum() / 60),
                            changed_min, corpus_wer(study, ts, test), corpus_wer(study, ts, dev),
                            time.perf_counter() - start)
            results.append(r)
            if partial is not None:
                with partial.open("a") as f:
                    f.write(json.dumps(asdict(r)) + "\n")
            log(f"seed {seed} {name:>26} round {rnd}: {r.labeled_minutes:5.2f} min labeled, "
                f"test WER {r.test_wer:.4f}, dev WER {r.dev_wer:.4f} ({r.seconds:.0f} s)")
    return results


def error_detection(study: Study, transcripts: dict[int, "Transcript"], idx: Sequence[int]) -> dict[str, float]:
    """AUC-ROC of each confidence measure as a detector of word errors (and of clips with errors).

    Word level: ``1 - p(word)`` (the per-word term of ``errors-per-second`` and of
    ``min-word-prob``); ``1 - exp(mean token logprob)`` over the word's tokens (the
    least-confidence measure at word level); mean token entropy over the word's tokens.
    Clip level: each clip score against "the clip has at least one word error".
    """
    labels: list[int] = []
    word_p, word_lc, word_ent = [], [], []
    clip_err: list[int] = []
    clip_sc: dict[str, list[float]] = {}
    for i in idx:
        t = transcripts[i]
        words = list(t.words)
        labs = word_error_labels(study.texts[i], [w.word for w in words])
        pos = 0
        tokens = list(t.tokens)
        for w, lab in zip(words, labs):
            toks = tokens[pos : pos + w.n_tokens] or tokens[-1:]
            pos += w.n_tokens
            if lab is None or not toks:
                continue
            labels.append(lab)
            word_p.append(1 - w.p)
            word_lc.append(1 - math.exp(float(np.mean([x.logprob for x in toks]))))
            word_ent.append(float(np.mean([x.entropy for x in toks])))
        clip_err.append(int(normalize(t.text) != normalize(study.texts[i])))
        sc = clip_scores(token_logprobs=[x.logprob for x in t.tokens],
                         token_entropies=[x.entropy for x in t.tokens],
                         word_probs=[w.p for w in t.words], duration=float(study.durations[i]))
        for k, v in sc.items():
            clip_sc.setdefault(k, []).append(v)
    out = {"word_auc_word_prob": roc_auc(labels, word_p),
           "word_auc_least_confidence": roc_auc(labels, word_lc),
           "word_auc_entropy": roc_auc(labels, word_ent),
           "words": len(labels), "word_error_fraction": float(np.mean(labels)) if labels else math.nan}
    for k, v in clip_sc.items():
        out[f"clip_auc_{k}"] = roc_auc(clip_err, v)
    return out
