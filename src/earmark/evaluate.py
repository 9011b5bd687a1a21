"""How good a model is: WER and CER, and how well its confidence finds its own errors.

Error rates are computed after Whisper's English text normalizer (so "Two, six." and
"26" compare equal) with jiwer, pooled over clips (total errors over total reference
words), as speech papers report them.

Confidence quality treats each hypothesis word's probability as a detector of word
errors: hypothesis and reference are aligned word by word (jiwer's alignment), a word
that is substituted or inserted is an error, and we report

- the AUC-ROC of ``1 - p`` as an error score (0.5 is chance, 1.0 a perfect detector);
- the expected calibration error (ECE) of ``p`` as the chance that the word is right.

The metric functions are pure (strings and numbers in, numbers out); :func:`evaluate`
wires them to a project, a model version and clips.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .config import DecodeConfig
from .errors import NoCorrections, UnfinishedModelVersion, UnknownModelVersion

if TYPE_CHECKING:
    from .project import Project
    from .store import ModelVersion


@dataclass(frozen=True)
class ErrorRates:
    """Pooled word and character error rates of a set of clips."""

    wer: float
    cer: float
    ref_words: int  # reference words after normalization (the WER denominator)
    substitutions: int
    deletions: int
    insertions: int
    skipped: int  # clips whose reference is empty after normalization (not scored)
    # word errors of each scored clip, in order: what a paired comparison of two
    # models on the same clips resamples (see :func:`prob_fewer_errors`)
    clip_errors: tuple[int, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class ConfidenceQuality:
    """Word probability as a detector of word errors."""

    auc: float  # AUC-ROC of 1 - p for "this word is wrong"; nan with one class only
    ece: float  # expected calibration error of p as P(word is right), 10 equal bins
    words: int  # hypothesis words scored (after normalization)
    error_fraction: float  # share of those words that are errors


@dataclass(frozen=True)
class EvalResult:
    """The evaluation of one model version on one set of clips."""

    model: str  # version name (or spec)
    source: str  # "dev split" or the manifest path
    clips: int
    audio_seconds: float
    rates: ErrorRates
    confidence: ConfidenceQuality
    decode_seconds: float

    @property
    def wer(self) -> float:
        return self.rates.wer

    @property
    def cer(self) -> float:
        return self.rates.cer

    @property
    def speed(self) -> float:
        """Audio seconds decoded per wall second."""
        return self.audio_seconds / self.decode_seconds if self.decode_seconds > 0 else 0.0


# --- pure metrics ---------------------------------------------------------------------

@lru_cache(maxsize=1)
def _normalizer():
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize(text: str) -> str:
    """Whisper's English normalization: lower case, no punctuation, numbers as digits."""
    return " ".join(_normalizer()(text or "").split())


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> ErrorRates:
    """Pooled WER and CER after normalization.

    Clips whose reference normalizes to nothing cannot be scored by WER and are
    counted in ``skipped`` instead.
    """
    import jiwer

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    pairs = [(normalize(r), normalize(h)) for r, h in zip(references, hypotheses)]
    kept = [(r, h) for r, h in pairs if r]
    if not kept:
        return ErrorRates(math.nan, math.nan, 0, 0, 0, 0, len(pairs))
    refs, hyps = [r for r, _ in kept], [h for _, h in kept]
    words = jiwer.process_words(refs, hyps)
    chars = jiwer.process_characters(refs, hyps)
    n_ref = sum(len(r.split()) for r in refs)
    per_clip = tuple(sum(max(c.ref_end_idx - c.ref_start_idx, c.hyp_end_idx - c.hyp_start_idx)
                         for c in chunks if c.type != "equal") for chunks in words.alignments)
    return ErrorRates(wer=float(words.wer), cer=float(chars.cer), ref_words=n_ref,
                      substitutions=words.substitutions, deletions=words.deletions,
                      insertions=words.insertions, skipped=len(pairs) - len(kept),
                      clip_errors=per_clip)


def prob_fewer_errors(errors_a: Sequence[int], errors_b: Sequence[int], rounds: int = 2000,
                      seed: int = 0) -> float:
    """How sure we can be that model A makes fewer word errors than model B on such clips.

    A paired bootstrap over clips (Bisani and Ney, 2004): the clips are resampled with
    replacement ``rounds`` times, and the result is the share of resamples in which A's
    total errors are strictly fewer than B's. Both models must have been scored on the
    same clips, in the same order; since the reference words are the same too, fewer
    errors means a lower pooled WER. A few dozen dev clips often differ by several WER
    points between two training epochs by chance alone; this says when they do not.
    """
    a, b = np.asarray(errors_a, dtype=np.int64), np.asarray(errors_b, dtype=np.int64)
    if a.shape != b.shape:
        raise ValueError(f"paired comparison needs the same clips: {a.size} and {b.size} scores")
    if a.size == 0:
        return 0.0
    idx = np.random.default_rng(seed).integers(0, a.size, size=(rounds, a.size))
    diff = a - b
    return float(np.mean(diff[idx].sum(axis=1) < 0))


@dataclass(frozen=True)
class Reduction:
    """How far model B lowers model A's word errors on the same clips, with an interval."""

    relative: float  # 1 - errors_b / errors_a over all clips: the relative WER reduction
    low: float  # the bootstrap interval's bounds at ``level``; nan with a single group
    high: float
    level: float
    groups: int  # units resampled (speakers, or clips when none are given)
    # with a target: the share of resamples whose reduction reaches it; else nan
    reach: float = math.nan


def relative_reduction(errors_a: Sequence[int], errors_b: Sequence[int],
                       groups: Sequence[object] | None = None, level: float = 0.95,
                       rounds: int = 2000, seed: int = 0, target: float | None = None) -> Reduction:
    """The relative WER reduction from model A to model B, with a bootstrap interval.

    Both models were scored on the same clips, so they share the reference words and
    the relative reduction of the pooled WER is ``1 - errors_b / errors_a``. The
    interval resamples ``groups`` (e.g. each clip's speaker) with replacement and takes
    every clip of a drawn group, since one speaker's clips err together: the spread
    then says how much the figure would move with other speakers like these. Without
    groups each clip is its own.

    Parameters
    ----------
    errors_a, errors_b
        Word errors per clip (:attr:`ErrorRates.clip_errors`), in the same clip order.
    groups
        One label per clip; clips with the same label are drawn together.
    level
        Coverage of the percentile interval, e.g. 0.95.
    rounds, seed
        Bootstrap resamples and their seed.
    target
        A reduction to test for, e.g. 0.4: :attr:`Reduction.reach` is the share of
        resamples that reach it.
    """
    a, b = np.asarray(errors_a, dtype=np.int64), np.asarray(errors_b, dtype=np.int64)
    if a.shape != b.shape:
        raise ValueError(f"paired comparison needs the same clips: {a.size} and {b.size} scores")
    labels = list(range(a.size)) if groups is None else list(groups)
    if len(labels) != a.size:
        raise ValueError(f"{len(labels)} group labels for {a.size} clips")
    if a.sum() == 0:
        raise ValueError("model A makes no word errors on these clips: no reduction to measure")
    _, index = np.unique(np.asarray([str(g) for g in labels]), return_inverse=True)
    n = int(index.max()) + 1
    relative = float(1.0 - b.sum() / a.sum())
    if n < 2:  # one speaker drawn again is the same speaker: no spread to speak of
        return Reduction(relative=relative, low=math.nan, high=math.nan, level=level, groups=n,
                         reach=math.nan if target is None else float(relative >= target))
    per_a, per_b = np.bincount(index, a, n), np.bincount(index, b, n)
    draws = np.random.default_rng(seed).integers(0, n, size=(rounds, n))
    sums_a, sums_b = per_a[draws].sum(axis=1), per_b[draws].sum(axis=1)
    # a resample whose speakers A got all right has no reduction to speak of: left out
    rel = 1.0 - sums_b[sums_a > 0] / sums_a[sums_a > 0]
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(rel, [tail, 100 - tail])
    return Reduction(relative=relative, low=float(low), high=float(high),
                     level=level, groups=n,
                     reach=math.nan if target is None else float(np.mean(rel >= target)))


def _token_owners(words: Sequence[str]) -> tuple[list[str], list[int]]:
    """Normalize a word sequence as a whole and say which word each token came from.

    The normalizer rewrites across word boundaries ("two six" -> "26"), so each prefix
    is normalized in turn and the tokens it adds (or rewrites) belong to the word that
    was just added.
    """
    tokens: list[str] = []
    owners: list[int] = []
    for i in range(len(words)):
        current = normalize(" ".join(w.strip() for w in words[: i + 1])).split()
        keep = 0
        while keep < min(len(tokens), len(current)) and tokens[keep] == current[keep]:
            keep += 1
        owners = owners[:keep] + [i] * (len(current) - keep)
        tokens = current
    return tokens, owners


def word_error_labels(reference: str, words: Sequence[str]) -> list[int | None]:
    """Label each hypothesis word 1 (an error), 0 (right) or None (not scored).

    Parameters
    ----------
    reference
        The reference transcript of the clip.
    words
        The hypothesis words as the model wrote them (with punctuation and spaces).

    Returns
    -------
    list
        One label per word. A word is an error when any of its normalized tokens is
        substituted or inserted in the alignment with the reference; a word with no
        token of its own (punctuation, or merged into the next word by the
        normalizer) is not scored.
    """
    import jiwer

    tokens, owners = _token_owners(words)
    labels: list[int | None] = [None] * len(words)
    if not tokens:
        return labels
    ref = normalize(reference)
    wrong = [True] * len(tokens)  # an empty reference makes every word an insertion
    if ref:
        for chunk in jiwer.process_words(ref, " ".join(tokens)).alignments[0]:
            if chunk.type == "equal":
                for k in range(chunk.hyp_start_idx, chunk.hyp_end_idx):
                    wrong[k] = False
    for k, i in enumerate(owners):
        labels[i] = max(labels[i] or 0, int(wrong[k]))
    return labels


def roc_auc(errors: Sequence[int], scores: Sequence[float]) -> float:
    """AUC-ROC of ``scores`` as a detector of ``errors`` (1 = error); nan with one class."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(errors, dtype=int)
    if y.size == 0 or y.min() == y.max():
        return math.nan
    return float(roc_auc_score(y, np.asarray(scores, dtype=float)))


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[int],
                               n_bins: int = 10) -> float:
    """ECE: the bin-size-weighted mean gap between confidence and accuracy.

    Parameters
    ----------
    confidence
        Predicted probabilities that each item is right, in [0, 1].
    correct
        1 where the item is right, 0 where it is wrong.
    n_bins
        Equal-width bins over [0, 1]; a confidence of exactly 1 falls in the last one.
    """
    p = np.clip(np.asarray(confidence, dtype=float), 0.0, 1.0)
    y = np.asarray(correct, dtype=float)
    if p.size == 0:
        return math.nan
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            total += mask.sum() / p.size * abs(p[mask].mean() - y[mask].mean())
    return float(total)


def confidence_quality(references: Sequence[str],
                       word_probs: Sequence[Sequence[tuple[str, float]]]) -> ConfidenceQuality:
    """Score word probabilities as error detectors over many clips.

    Parameters
    ----------
    references
        Reference transcript per clip.
    word_probs
        Per clip, the hypothesis words with their probabilities, in order.
    """
    labels: list[int] = []
    probs: list[float] = []
    for ref, words in zip(references, word_probs):
        for lab, (_, p) in zip(word_error_labels(ref, [w for w, _ in words]), words):
            if lab is not None:
                labels.append(lab)
                probs.append(float(p))
    if not labels:
        return ConfidenceQuality(math.nan, math.nan, 0, math.nan)
    return ConfidenceQuality(
        auc=roc_auc(labels, [1.0 - p for p in probs]),
        ece=expected_calibration_error(probs, [1 - lab for lab in labels]),
        words=len(labels), error_fraction=float(np.mean(labels)))


# --- wiring: a project, a model version, clips ---------------------------------------

def find_version(project: "Project", model: str | None) -> "ModelVersion":
    """The version named (or with spec) ``model``; the active one when ``model`` is None.

    Raises
    ------
    UnknownModelVersion
        No such version; the message lists the known ones.
    UnfinishedModelVersion
        The version is a fine-tuning run that has not finished (no checkpoint yet).
    """
    from .ranking import check_ready, lookup_version, unknown_version

    store = project.store
    if model is None:
        mv = store.active_model()
        if mv is None:
            mv = store.ensure_model_version(project.config.decode.model)
        return mv
    mv = lookup_version(project, model)
    if mv is None:
        raise unknown_version(project, model)
    check_ready(project, mv)
    return mv


def model_to_evaluate(project: "Project", model: str | None) -> tuple[str, str, "ModelVersion | None"]:
    """(name, spec, version) of what ``model`` asks to evaluate.

    A version's name or spec gives that version; otherwise a checkpoint path or a
    Whisper name is evaluated as it is, without becoming a version of the project
    (evaluating is looking, and a look should not change what ``rank`` uses).

    Raises
    ------
    UnknownModelVersion
        ``model`` is none of these; the message lists the project's versions.
    UnfinishedModelVersion
        ``model`` names a fine-tuning run that has not finished.
    """
    import whisper

    from .models import is_model_spec, looks_like_path, normalize_spec
    from .ranking import lookup_version

    if model is not None and lookup_version(project, model) is None:
        # a path that does not exist is still meant as a path: load_model says it is missing
        if is_model_spec(model) or looks_like_path(model):
            return model, normalize_spec(model), None
    try:
        mv = find_version(project, model)
    except UnfinishedModelVersion:
        raise
    except UnknownModelVersion as exc:
        raise UnknownModelVersion(f"{exc}; or give a checkpoint path or a Whisper name "
                                  f"({', '.join(whisper.available_models())})") from exc
    return mv.name, mv.spec, mv


@dataclass(frozen=True)
class HeldOut:
    """Clips to evaluate on, with their references."""

    audios: list[np.ndarray]  # float32, 16 kHz
    references: list[str]
    # what a bootstrap over these clips draws together: "speaker:NAME" when the speaker is
    # known, else "clip:N" (each clip its own)
    groups: list[str]
    source: str  # "dev split" or the manifest's path


def manifest_clips(path: Path | str) -> HeldOut:
    """Audio, reference text and speaker of every manifest row that has a text."""
    from . import audio as au
    from .ingest import read_manifest

    rows = [r for r in read_manifest(Path(path)) if r.text]
    if not rows:
        raise NoCorrections(f"{path}: no row has a 'text' reference; evaluation needs references")
    return HeldOut(audios=[au.load_audio(r.audio) for r in rows], references=[r.text or "" for r in rows],
                   groups=[f"speaker:{r.speaker}" if r.speaker else f"clip:{i}" for i, r in enumerate(rows)],
                   source=str(path))


def dev_clips(project: "Project") -> HeldOut:
    """Audio and corrected text of the project's dev split (see :mod:`earmark.dataset`)."""
    from . import audio as au
    from .dataset import current_split

    try:
        split = current_split(project)
    except NoCorrections as exc:
        raise NoCorrections(f"{project.root}: no dev split to evaluate on ({exc}); pass a held-out "
                            "manifest with --manifest, or correct more clips first") from exc
    return HeldOut(audios=[au.read_clip(project.clip_path(ex.audio_path)) for ex in split.dev],
                   references=[ex.text for ex in split.dev], groups=[ex.group for ex in split.dev],
                   source="dev split")


def evaluate_audio(model_obj, audios: Sequence[np.ndarray], references: Sequence[str],
                   decode: DecodeConfig = DecodeConfig(), name: str = "model",
                   source: str = "clips", progress: bool = False) -> EvalResult:
    """Transcribe clips with a loaded model and score them against their references
    (with ``progress``, a bar of the clips decoded on stderr)."""
    from tqdm.auto import tqdm

    from .transcribe import Decoder

    start = time.perf_counter()
    with tqdm(total=len(audios), unit="clip", desc=f"evaluate {name}", disable=not progress,
              dynamic_ncols=True) as bar:
        outs = Decoder(model_obj, decode).transcribe(list(audios), on_batch=bar.update)
    seconds = time.perf_counter() - start
    return EvalResult(
        model=name, source=source, clips=len(audios),
        audio_seconds=float(sum(a.size for a in audios) / 16_000),
        rates=error_rates(references, [o.text for o in outs]),
        confidence=confidence_quality(references, [[(w.word, w.p) for w in o.words] for o in outs]),
        decode_seconds=seconds)


def evaluate(project: "Project", model: str | None = None, manifest: Path | str | None = None,
             decode: DecodeConfig | None = None, progress: bool = False) -> EvalResult:
    """WER, CER and confidence quality of a model version on a manifest or the dev split.

    Parameters
    ----------
    project
        An open project.
    model
        A version's name or spec, or a checkpoint path or Whisper name that is not a
        version (evaluated without being added to the project); default the active
        version.
    manifest
        A JSONL/CSV manifest with ``audio`` and ``text``; default the dev split held
        out from the corrections.
    decode
        Decoding settings; default the project's.
    progress
        Show a progress bar of the clips decoded (stderr).

    Raises
    ------
    NoCorrections
        No manifest was given and the project has no corrections to hold out.
    UnknownModelVersion
        ``model`` is neither a version of the project, a checkpoint path nor a Whisper
        name (:class:`UnfinishedModelVersion`: a fine-tuning run still going).
    BadConfig
        A decoding setting out of range, or a device this machine lacks.
    ModelWeightsNotFound, CorruptCheckpoint
        The model cannot load; the message names the file and what to do.
    """
    # settings and model first: a mistake there is found before any audio is read
    decode = _checked(project, decode)
    target = model_to_evaluate(project, model)
    return _evaluate_on(project, target, _held_out(project, manifest), decode, progress)


@dataclass(frozen=True)
class Comparison:
    """Two models evaluated on the same clips: is the candidate better, and how sure is that?"""

    baseline: EvalResult
    candidate: EvalResult
    # the candidate's relative WER reduction from the baseline's, with a bootstrap interval
    # over the clips' speakers (clips without one count alone); None when the baseline
    # makes no word error, so there is nothing to reduce
    reduction: Reduction | None
    by: str  # what the interval draws: "speaker", "clip", or "speaker and clip" (some unknown)


def compare(project: "Project", model: str | None = None, against: str = "tiny.en",
            manifest: Path | str | None = None, decode: DecodeConfig | None = None,
            level: float = 0.95, progress: bool = False) -> Comparison:
    """Evaluate ``model`` and ``against`` on the same clips, and the reduction between them.

    The clips and every argument are those of :func:`evaluate`; ``against`` is the
    baseline (a version, a checkpoint path or a Whisper name). The reduction's interval
    (at ``level``) resamples whole speakers where the manifest or the corrections name
    them: 25 speakers are few, and a figure on them moves with who they are.
    """
    decode = _checked(project, decode)
    targets = model_to_evaluate(project, against), model_to_evaluate(project, model)
    clips = _held_out(project, manifest)
    baseline, candidate = (_evaluate_on(project, t, clips, decode, progress) for t in targets)
    groups = [g for g, ref in zip(clips.groups, clips.references) if normalize(ref)]
    kinds = {g.split(":", 1)[0] for g in groups}
    by = "speaker and clip" if len(kinds) > 1 else next(iter(kinds), "clip")
    reduction = (relative_reduction(baseline.rates.clip_errors, candidate.rates.clip_errors, groups, level)
                 if sum(baseline.rates.clip_errors) else None)
    return Comparison(baseline=baseline, candidate=candidate, reduction=reduction, by=by)


def _checked(project: "Project", decode: DecodeConfig | None) -> DecodeConfig:
    from .models import check_decode_config

    decode = decode or project.config.decode
    check_decode_config(decode)
    return decode


def _held_out(project: "Project", manifest: Path | str | None) -> HeldOut:
    return manifest_clips(manifest) if manifest is not None else dev_clips(project)


def _evaluate_on(project: "Project", target: tuple[str, str, "ModelVersion | None"], clips: HeldOut,
                 decode: DecodeConfig, progress: bool) -> EvalResult:
    from dataclasses import replace

    from .models import load_model, torch_threads
    from .ranking import load_version

    name, spec, mv = target
    decode = replace(decode, model=spec)
    with torch_threads(decode.threads):
        loaded = load_version(project, mv, decode.device) if mv else load_model(spec, decode.device)
        return evaluate_audio(loaded, clips.audios, clips.references, decode, name, clips.source, progress)
