"""The active-learning loop replayed with reference transcripts as the annotator.

For each seed the manifest's speakers are split into a pool, a dev set and a test set
(speaker-disjoint). Round 0 scores the zero-shot model; every later round ranks the
unlabeled pool with the current model, lets a strategy pick clips until the round's
budget of audio minutes is spent, takes the references as the corrections, fine-tunes
the base model (decoder only) on everything labeled so far, and scores the result.

Compute is the constraint, so the encoder runs once per clip: in decoder-only
fine-tuning it is frozen, and its outputs serve the ranking, the training, the
evaluation and the diversity strategy's embeddings (mean over the clip's own frames)
for the whole run. Each clip sits alone at the start of its window; decoding and
training keep only the encoder positions that cover the clip plus a margin.
"""

from __future__ import annotations

import csv
import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from earmark.audio import read_clip
from earmark.config import SAMPLE_RATE, DecodeConfig, FinetuneConfig, SimulateConfig, to_dict
from earmark.decode.decoder import Decoder
from earmark.decode.types import Transcript
from earmark.errors import BadConfig
from earmark.evaluate.metrics import error_rates, normalize, roc_auc, word_error_labels
from earmark.ingest import manifest_records
from earmark.models.loading import load_model, torch_threads, usable_threads
from earmark.ranking.scoring import clip_scores, transcript_scores
from earmark.ranking.strategies import DEFAULT_STRATEGY, Candidate, get_strategy
from earmark.train.pairs import train_pairs

if TYPE_CHECKING:
    import whisper

POSITIONS_PER_SECOND = 50  # encoder positions per second of audio


@dataclass(frozen=True)
class Study:
    """The clips of a simulation and their encoder outputs (computed once)."""

    ids: list[str]
    speakers: list[str]
    texts: list[str]
    durations: np.ndarray  # seconds
    features: np.ndarray  # (clips, frames, state) float16: encoder outputs, clip at t=0
    frames: np.ndarray  # encoder positions each clip uses
    embeddings: np.ndarray  # (clips, state): mean over the clip's own frames


@dataclass(frozen=True)
class RoundResult:
    """One (strategy, seed, round) point of a learning curve."""

    strategy: str
    seed: int
    round: int
    labeled_clips: int
    labeled_minutes: float
    changed_minutes: float  # audio minutes labeled so far whose hypothesis a person changed
    test_wer: float
    dev_wer: float
    seconds: float  # wall time of the round


# --- data -------------------------------------------------------------------------------

def read_manifest(path: Path | str) -> list[dict[str, Any]]:
    """Rows of a JSONL or CSV manifest (audio, text, speaker, duration), audio made absolute.

    Raises
    ------
    BadManifest
        Missing, unreadable or malformed (see :func:`earmark.ingest.manifest_records`).
    BadConfig
        A row lacks the audio, text or speaker that a simulation needs; its line is named.
    """
    path = Path(path)
    rows = []
    for n, r in manifest_records(path):
        if not r.get("audio") or "speaker" not in r or "text" not in r:
            raise BadConfig(f"{path}:{n}: simulate needs 'audio', 'speaker' and 'text' on every row")
        rows.append({**r, "audio": str((path.parent / r["audio"]).resolve())})
    return rows


def as_typed(text: str) -> str:
    """A reference as a person would type the correction: all-caps corpora (such as
    speechocean762) in sentence case, since training Whisper on all-caps text teaches it
    rare upper-case tokens and made the test WER worse here; other text unchanged."""
    return text.capitalize() if text.isupper() else text


def split_speakers(speakers: Sequence[str], seed: int, n_test: int,
                   n_dev: int) -> tuple[set[str], set[str], set[str]]:
    """Speaker-disjoint (pool, dev, test) sets, drawn with ``seed``."""
    names = sorted(set(speakers))
    if n_test + n_dev >= len(names):
        raise BadConfig(f"{len(names)} speakers cannot give {n_test} test and {n_dev} dev "
                        "speakers and still leave a pool; pass smaller --test-speakers and "
                        "--dev-speakers, or a manifest with more speakers")
    random.Random(seed).shuffle(names)
    return set(names[n_test + n_dev :]), set(names[n_test : n_test + n_dev]), set(names[:n_test])


def choose_speakers(rows: list[dict[str, Any]], n: int, seed: int = 0) -> list[dict[str, Any]]:
    """The rows of ``n`` speakers drawn with ``seed`` (all rows when ``n`` is 0)."""
    names = sorted({r["speaker"] for r in rows})
    if not n or n >= len(names):
        return rows
    keep = set(random.Random(seed).sample(names, n))
    return [r for r in rows if r["speaker"] in keep]


def encode_study(model: "whisper.Whisper", rows: list[dict[str, Any]], cfg: SimulateConfig,
                 width: int | None = None) -> Study:
    """Run the encoder once per clip (alone in its window) and keep what later rounds need.

    ``width``: encoder positions kept per clip (default: what the longest clip of
    ``rows`` needs); parts encoded apart must share it, so that a batch cut to its
    longest clip reads real encoder states for the shorter ones, never padding.
    """
    import torch
    import whisper

    encoder = model.encoder  # float32: the simulation decodes with quantize="none"
    audios = [read_clip(r["audio"]) for r in rows]
    durations = np.array([min(a.size / SAMPLE_RATE, 30.0) for a in audios])
    margin = cfg.context_margin_seconds * POSITIONS_PER_SECOND
    frames = np.minimum(np.ceil(durations * POSITIONS_PER_SECOND + margin), 1500).astype(int)
    width = max(int(frames.max()), width or 0)
    feats = np.zeros((len(rows), width, model.dims.n_audio_state), dtype=np.float16)
    emb = np.zeros((len(rows), model.dims.n_audio_state), dtype=np.float32)
    for b in range(0, len(rows), 8):
        mels = torch.stack([whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(a)),
                                                        model.dims.n_mels) for a in audios[b : b + 8]])
        with torch.inference_mode():
            out = encoder(mels).float().numpy()
        for k, f in enumerate(out):
            i = b + k
            feats[i] = f[:width]
            own = max(1, int(durations[i] * POSITIONS_PER_SECOND))
            emb[i] = f[:own].mean(axis=0)
    return Study(ids=[str(r.get("id", r["audio"])) for r in rows], speakers=[r["speaker"] for r in rows],
                 texts=[as_typed(r["text"]) for r in rows], durations=durations, features=feats,
                 frames=frames, embeddings=emb)


# --- decoding and training over cached encoder outputs -------------------------------------

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


def candidates(study: Study, transcripts: dict[int, "Transcript"], idx: Sequence[int]) -> list:
    """Selection candidates of the clips ``idx`` (clip id = study index)."""
    out = []
    for i in idx:
        t = transcripts.get(i) if transcripts else None
        scores = {} if t is None else transcript_scores(t)
        out.append(Candidate(int(i), float(study.durations[i]), scores,
                             tuple(float(v) for v in study.embeddings[i])))
    return out


def finetune_config(cfg: SimulateConfig, n_clips: int, seed: int) -> FinetuneConfig:
    """Decoder-only training for a round: ``epochs`` passes, at least ``min_steps`` steps."""
    steps = max(cfg.min_steps, math.ceil(cfg.epochs * n_clips / cfg.batch_size))
    return FinetuneConfig(mode="decoder", max_steps=steps, batch_size=cfg.batch_size, lr=cfg.lr,
                          seed=seed, augment=False, device="cpu")


# --- the loop ------------------------------------------------------------------------------

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
                candidates(study, current if scored else {}, unlabeled), budget_seconds=budget)]
            # baselines decode only their picks, with the previous round's model (`decoder`)
            if rnd > 1 and any(i not in current for i in picked):
                current = {**current, **decode(decoder, study, [i for i in picked if i not in current],
                                               cfg.batch_decode)}
            changed_min += changed(study, current, picked)
            labeled += picked
            model = copy.deepcopy(base)
            train_pairs(model, [study.texts[i] for i in labeled], features=study.features[labeled],
                        frames=[int(study.frames[i]) for i in labeled],
                        cfg=finetune_config(cfg, len(labeled), seed * 1000 + rnd))
            decoder = Decoder(model, replace(decode_cfg, quantize="none", batch_size=cfg.batch_decode))
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


def _worker(args: tuple) -> list[RoundResult]:
    import torch

    cfg, decode_cfg, seed, zero_shot, partial = args
    torch.set_num_threads(usable_threads(cfg.threads) or 1)
    base = load_model(cfg.model, "cpu")
    return run_seed(base, _SHARED["study"], cfg, decode_cfg, seed, zero_shot,
                    log=lambda m: print(m, flush=True), partial=partial)


_SHARED: dict[str, Any] = {}  # what forked workers read without pickling (the study)


def _encode_worker(args: tuple) -> Study:
    import torch

    cfg, rows, width = args
    torch.set_num_threads(usable_threads(cfg.threads) or 1)
    return encode_study(load_model(cfg.model, "cpu"), rows, cfg, width)


def _concat(parts: list[Study]) -> Study:
    width = max(p.features.shape[1] for p in parts)
    feats = np.concatenate([np.pad(p.features, ((0, 0), (0, width - p.features.shape[1]), (0, 0)))
                            for p in parts])
    return Study(ids=[i for p in parts for i in p.ids], speakers=[x for p in parts for x in p.speakers],
                 texts=[t for p in parts for t in p.texts],
                 durations=np.concatenate([p.durations for p in parts]), features=feats,
                 frames=np.concatenate([p.frames for p in parts]),
                 embeddings=np.concatenate([p.embeddings for p in parts]))


# --- error detection -----------------------------------------------------------------------

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


# --- the summary -----------------------------------------------------------------------------

def minutes_to_reach(minutes: Sequence[float], wers: Sequence[float], target: float) -> float | None:
    """Labeled minutes at which a curve first reaches ``target`` WER (linear in between).

    None when it never does.
    """
    for k, (m, w) in enumerate(zip(minutes, wers)):
        if w <= target:
            if k == 0:
                return float(m)
            m0, w0 = minutes[k - 1], wers[k - 1]
            return float(m0 + (m - m0) * (w0 - target) / (w0 - w)) if w0 != w else float(m)
    return None


def curve_area(minutes: Sequence[float], wers: Sequence[float]) -> float:
    """Area under a learning curve (WER x labeled minutes, trapezoids); lower is better."""
    m, w = np.asarray(minutes, dtype=float), np.asarray(wers, dtype=float)
    return float(np.sum((m[1:] - m[:-1]) * (w[1:] + w[:-1]) / 2)) if m.size > 1 else 0.0


def mean_curves(results: Sequence[RoundResult]) -> dict[str, dict[str, list[float]]]:
    """Per strategy, per round: mean labeled minutes and mean, min, max test WER over seeds."""
    out: dict[str, dict[str, list[float]]] = {}
    for name in dict.fromkeys(r.strategy for r in results):
        rounds = sorted({r.round for r in results if r.strategy == name})
        c: dict[str, list[float]] = {"minutes": [], "wer": [], "lo": [], "hi": [], "dev_wer": [],
                                     "changed": []}
        for k in rounds:
            rs = [r for r in results if r.strategy == name and r.round == k]
            c["minutes"].append(float(np.mean([r.labeled_minutes for r in rs])))
            w = [r.test_wer for r in rs]
            c["wer"].append(float(np.mean(w)))
            c["lo"].append(float(np.min(w)))
            c["hi"].append(float(np.max(w)))
            c["dev_wer"].append(float(np.mean([r.dev_wer for r in rs])))
            c["changed"].append(float(np.mean([r.changed_minutes for r in rs])))
        out[name] = c
    return out


def summarize(results: Sequence[RoundResult], baseline: str = "random") -> dict[str, dict[str, Any]]:
    """Per strategy: final test WER, minutes to reach the baseline's final WER, saving, area.

    ``label_saving`` is None where it cannot be computed, and ``label_saving_note`` then
    says why (the strategy never reached the baseline's final WER, or the baseline
    labeled no audio); otherwise the note is None.
    """
    curves = mean_curves(results)
    if baseline not in curves:
        raise BadConfig(f"the summary compares with {baseline!r}: add it to the strategies")
    target, full = curves[baseline]["wer"][-1], curves[baseline]["minutes"][-1]
    start = curves[baseline]["wer"][0]
    # a baseline that ended no better than it began sets a target every curve meets at
    # 0 minutes: a "100 % saving" there would say nothing about the strategies
    flat = (f"{baseline} ended no lower than its round-0 WER ({start:.4f}), so there is no "
            "labeling to save; run more rounds or a larger --budget" if target >= start else None)
    out = {}
    for name, c in curves.items():
        reach = minutes_to_reach(c["minutes"], c["wer"], target)
        note = (flat if flat else f"never reached {baseline}'s final WER" if reach is None
                else f"{baseline} labeled no audio" if not full else None)
        out[name] = {"final_test_wer": c["wer"][-1], "final_dev_wer": c["dev_wer"][-1],
                     "final_minutes": c["minutes"][-1], "changed_minutes": c["changed"][-1],
                     "minutes_to_random_final": reach,
                     "label_saving": None if note else 1 - reach / full,
                     "label_saving_note": note,
                     "curve_area": curve_area(c["minutes"], c["wer"])}
    return out


def _merit(s: dict[str, Any]) -> tuple[float, float]:
    """The summary's order of strategies, larger is better: label saving first (none at
    all when it cannot be computed), then a smaller curve area."""
    saving = s["label_saving"]
    return (-math.inf if saving is None else saving, -s["curve_area"])


def best_strategy(summary: dict[str, dict[str, Any]], baseline: str = "random") -> str | None:
    """The strategy ahead of all others that is also ahead of ``baseline``, or None.

    Ahead means a larger label saving, or an equal one with a smaller curve area (the
    order of :func:`_merit`). Without this check the least bad of the other strategies
    would be named best even when it lost to random selection on every measure.
    """
    bar = _merit(summary[baseline])
    ahead = [k for k, s in summary.items() if k != baseline and _merit(s) > bar]
    return max(ahead, key=lambda k: _merit(summary[k])) if ahead else None


def saving_text(s: dict[str, Any]) -> str:
    """A strategy's label saving for people: a percentage, or "n/a" and the reason."""
    if s["label_saving"] is None:
        return f"n/a ({s.get('label_saving_note') or 'not computed'})"
    return f"{s['label_saving']:.0%}"


def verdict(summary: dict[str, dict[str, Any]], baseline: str = "random") -> str:
    """One line naming the best strategy, or saying that none beat ``baseline``, with figures."""
    base = summary[baseline]
    others = [k for k in summary if k != baseline]
    if not others:
        return (f"no strategy to compare with {baseline} (final test WER "
                f"{base['final_test_wer']:.4f}, curve area {base['curve_area']:.3f})")
    best = best_strategy(summary, baseline)
    name = best or max(others, key=lambda k: _merit(summary[k]))
    s = summary[name]
    figures = (f"label saving {saving_text(s)}; final test WER {s['final_test_wer']:.4f} vs "
               f"{baseline} {base['final_test_wer']:.4f}; curve area {s['curve_area']:.3f} vs "
               f"{base['curve_area']:.3f}")
    if best is None:
        return f"no strategy beat {baseline}: the closest, {name}, had {figures}"
    return f"best: {name} ({figures})"


def plot(results: Sequence[RoundResult], path: Path) -> Path:
    """Learning curves: test WER against labeled minutes, a band (min-max) over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=90)
    for name, c in mean_curves(results).items():
        style = "--" if name in ("random", "longest-first") else "-"
        (line,) = ax.plot(c["minutes"], c["wer"], style, marker="o", ms=3, label=name)
        ax.fill_between(c["minutes"], c["lo"], c["hi"], color=line.get_color(), alpha=0.12)
    ax.set_xlabel("labeled audio (minutes)")
    ax.set_ylabel("test WER")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Active learning on held-out speakers (mean, band: min-max over seeds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def summary_table(summary: dict[str, dict[str, Any]]) -> str:
    """The summary as a Markdown table."""
    lines = ["| strategy | final test WER | final dev WER | labeled min | changed min | "
             "min to random's final WER | label saving | curve area |",
             "|---|---|---|---|---|---|---|---|"]
    for name, s in sorted(summary.items(), key=lambda kv: kv[1]["curve_area"]):
        reach = "not reached" if s["minutes_to_random_final"] is None else f"{s['minutes_to_random_final']:.2f}"
        saving = "n/a" if s["label_saving"] is None else f"{s['label_saving']:.0%}"
        lines.append(f"| {name} | {s['final_test_wer']:.4f} | {s['final_dev_wer']:.4f} | "
                     f"{s['final_minutes']:.2f} | {s['changed_minutes']:.2f} | {reach} | {saving} | "
                     f"{s['curve_area']:.3f} |")
    return "\n".join(lines)


# --- entry point -------------------------------------------------------------------------------

def simulate(manifest: Path | str, cfg: SimulateConfig = SimulateConfig(), out: Path | str = "simulate",
             log: Any = print) -> dict[str, Any]:
    """Replay the loop for every strategy and seed; write the curves, plot and summary to ``out``.

    Returns
    -------
    dict
        ``summary`` (per strategy), ``error_detection`` (AUCs of the zero-shot model on
        the first seed's test set), ``best_strategy`` (None, null in summary.json, when
        no strategy beat random; see :func:`best_strategy`), ``best_label_saving`` (None
        then too, or when it cannot be computed), ``verdict`` (that finding as a line
        for people) and the rest of ``summary.json``.

    Raises
    ------
    BadConfig
        An unknown strategy, no "random" to compare with, a bad round/seed/budget count,
        or too few speakers for the test and dev sets: all before any model work.
    """
    for name in cfg.strategies:
        get_strategy(name)  # an unknown name fails before any work
    if problems := cfg.problems():
        raise BadConfig("; ".join(problems))
    with torch_threads(cfg.threads):
        return _simulate(Path(manifest), cfg, Path(out), log)


def _simulate(manifest: Path, cfg: SimulateConfig, out: Path, log: Any) -> dict[str, Any]:
    """The body of :func:`simulate`, under its thread count."""
    started = time.perf_counter()
    rows = choose_speakers(read_manifest(manifest), cfg.speakers)
    # every seed splits the same speakers, so one split tells whether there are enough,
    # before the model loads and encodes the clips (which takes a while)
    split_speakers([r["speaker"] for r in rows], 0, cfg.test_speakers, cfg.dev_speakers)
    out.mkdir(parents=True, exist_ok=True)
    decode_cfg = DecodeConfig(model=cfg.model, batch_size=cfg.batch_decode)
    base = load_model(cfg.model, "cpu")
    import multiprocessing as mp

    if cfg.workers > 1:
        k = -(-len(rows) // cfg.workers)
        longest = max(float(r.get("duration") or 30.0) for r in rows)
        width = min(1500, math.ceil((longest + cfg.context_margin_seconds) * POSITIONS_PER_SECOND))
        with mp.get_context("fork").Pool(cfg.workers) as p:
            study = _concat(p.map(_encode_worker, [(cfg, rows[i : i + k], width)
                                                   for i in range(0, len(rows), k)]))
    else:
        study = encode_study(base, rows, cfg)
    log(f"encoded {len(rows)} clips ({study.durations.sum() / 60:.1f} min, "
        f"{len(set(study.speakers))} speakers) in {time.perf_counter() - started:.0f} s")
    # the zero-shot model's transcripts: round 0 and the first ranking of every seed
    t0 = time.perf_counter()
    zero_shot = decode(Decoder(base, replace(decode_cfg, quantize="none")), study,
                       range(len(rows)), cfg.batch_decode)
    log(f"zero-shot decoding: {time.perf_counter() - t0:.0f} s")
    seeds = list(range(cfg.seeds))
    partial = out / "rounds.partial.jsonl"
    partial.unlink(missing_ok=True)
    if cfg.workers > 1 and len(seeds) > 1:
        _SHARED["study"] = study  # forked workers see it
        try:
            with mp.get_context("fork").Pool(min(cfg.workers, len(seeds))) as p:
                parts = p.map(_worker, [(cfg, decode_cfg, s, zero_shot, partial) for s in seeds])
        finally:
            _SHARED.clear()
    else:
        parts = [run_seed(base, study, cfg, decode_cfg, s, zero_shot, log, partial) for s in seeds]
    results = [r for part in parts for r in part]
    _, _, test0 = split_speakers(study.speakers, 0, cfg.test_speakers, cfg.dev_speakers)
    detection = error_detection(study, zero_shot, [i for i, s in enumerate(study.speakers) if s in test0])
    record = write_outputs(results, detection, cfg, out, time.perf_counter() - started, len(rows))
    # the partial file only keeps what a stopped run measured; rounds.json now holds it all
    partial.unlink(missing_ok=True)
    return record


def write_outputs(results: Sequence[RoundResult], detection: dict[str, float], cfg: SimulateConfig,
                  out: Path, seconds: float, clips: int) -> dict[str, Any]:
    """rounds.csv / rounds.json, learning_curve.png and summary.json in ``out``."""
    rows = [asdict(r) for r in results]
    with (out / "rounds.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (out / "rounds.json").write_text(json.dumps(rows, indent=1) + "\n")
    summary = summarize(results)
    best = best_strategy(summary)
    default_score = {"errors-per-second": "errors_per_second", "min-word-prob": "min_word_prob",
                     "least-confidence": "least_confidence", "entropy": "entropy"}.get(DEFAULT_STRATEGY)
    word_measure = {"errors_per_second": "word_auc_word_prob", "min_word_prob": "word_auc_word_prob",
                    "least_confidence": "word_auc_least_confidence", "entropy": "word_auc_entropy"}
    record = {"summary": summary, "error_detection": detection, "best_strategy": best,
              "best_label_saving": None if best is None else summary[best]["label_saving"],
              "verdict": verdict(summary),
              "default_strategy": DEFAULT_STRATEGY,
              "default_error_auc": detection.get(word_measure.get(default_score or "", ""), math.nan),
              "config": to_dict(cfg), "clips": clips, "seconds": round(seconds, 1),
              "table": summary_table(summary)}
    (out / "summary.json").write_text(json.dumps(record, indent=2, default=float) + "\n")
    plot(results, out / "learning_curve.png")
    return record
