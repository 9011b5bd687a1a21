"""How good a model is on held-out clips: WER and CER, and how well its confidence finds
its own errors, for a version of a project on a manifest or the dev split.

The metrics themselves are pure functions in :mod:`earmark.evaluate.metrics`; this module loads
the model and the clips, decodes them as ``rank`` does, and scores the result.
:func:`compare` evaluates two models on the same clips and gives the relative WER
reduction between them with an interval over the speakers.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


import numpy as np

from earmark import audio as au
from earmark.config import DecodeConfig
from earmark.decode.decoder import Decoder
from earmark.decode.gpu import for_device
from earmark.errors import (BadManifest, EarmarkWarning, NoCorrections, UnfinishedModelVersion,
                            UnknownModelVersion, UnreadableAudio)
from earmark.evaluate.metrics import (ConfidenceQuality, ErrorRates, Reduction, confidence_quality,
                                      error_rates, relative_reduction, scored_groups)
from earmark.models.device import torch_threads
from earmark.models.loading import (check_decode_config, is_model_spec, load_model, looks_like_path,
                                    normalize_spec)
from earmark.models.versions import find_version, load_version, lookup_version
from earmark.sources import read_manifest
from earmark.store.db import ModelVersion
from earmark.store.project import Project
from earmark.train.dataset import current_split


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


# --- wiring: a project, a model version, clips ---------------------------------------

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
    listed = read_manifest(Path(path))
    if not listed:
        raise BadManifest(f"{path}: the manifest lists no clips; give one row per clip with "
                          "'audio' and 'text' (and 'speaker', for an interval over speakers)")
    rows = [r for r in listed if r.text]
    if not rows:
        raise NoCorrections(f"{path}: no row has a 'text' reference; evaluation needs references")
    if len(rows) < len(listed):  # said, since a figure over fewer clips than listed misleads
        warnings.warn(f"{path}: {len(listed) - len(rows)} of {len(listed)} rows have no 'text' and "
                      "are not scored", EarmarkWarning, stacklevel=2)
    audios = []
    for r in rows:
        if not r.audio.is_file():
            raise UnreadableAudio(f"{path}:{r.line}: {r.audio}: file not found; check the path "
                                  "(relative paths are read from the manifest's folder)")
        try:
            audios.append(au.load_audio(r.audio))
        except UnreadableAudio as exc:
            raise UnreadableAudio(f"{path}:{r.line}: {exc}") from exc
    return HeldOut(audios=audios, references=[r.text or "" for r in rows],
                   groups=[f"speaker:{r.speaker}" if r.speaker else f"clip:{i}" for i, r in enumerate(rows)],
                   source=str(path))


def dev_clips(project: "Project") -> HeldOut:
    """Audio and corrected text of the project's dev split (see :mod:`earmark.train.dataset`)."""
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

    pieces, owner = _windows(audios)
    start = time.perf_counter()
    with tqdm(total=len(pieces), unit="clip", desc=f"evaluate {name}", disable=not progress,
              dynamic_ncols=True) as bar:
        outs = Decoder(model_obj, for_device(decode, model_obj)).transcribe(pieces, on_batch=bar.update)
    seconds = time.perf_counter() - start
    texts: list[list[str]] = [[] for _ in audios]
    words: list[list[tuple[str, float]]] = [[] for _ in audios]
    for i, o in zip(owner, outs):
        texts[i].append(o.text.strip())
        words[i].extend((w.word, w.p) for w in o.words)
    return EvalResult(
        model=name, source=source, clips=len(audios),
        audio_seconds=float(sum(a.size for a in audios) / 16_000),
        rates=error_rates(references, [" ".join(t for t in ts if t) for ts in texts]),
        confidence=confidence_quality(references, words),
        decode_seconds=seconds)


def _windows(audios: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
    """The clips cut to what Whisper can read, and the clip each piece came from.

    The decoder reads at most one 30 s window per clip, so a longer held-out recording
    would be scored on its first 30 s with the rest counted as deletions; it is cut at
    silences as ``import`` cuts a long file, and its pieces' transcripts are joined.
    """
    pieces: list[np.ndarray] = []
    owner: list[int] = []
    for i, a in enumerate(audios):
        segments = au.split_points(a) or [au.Segment(0.0, a.size / au.SAMPLE_RATE)]
        pieces.extend(au.slice_audio(a, seg) for seg in segments)
        owner.extend([i] * len(segments))
    return pieces, owner


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


def compare(project: "Project", against: str, model: str | None = None,
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
    groups = scored_groups(clips.references, clips.groups)
    kinds = {g.split(":", 1)[0] for g in groups}
    by = "speaker and clip" if len(kinds) > 1 else next(iter(kinds), "clip")
    reduction = (relative_reduction(baseline.rates.clip_errors, candidate.rates.clip_errors, groups, level)
                 if sum(baseline.rates.clip_errors) else None)
    return Comparison(baseline=baseline, candidate=candidate, reduction=reduction, by=by)


def _checked(project: "Project", decode: DecodeConfig | None) -> DecodeConfig:
    decode = decode or project.config.decode
    check_decode_config(decode)
    return decode


def _held_out(project: "Project", manifest: Path | str | None) -> HeldOut:
    return manifest_clips(manifest) if manifest is not None else dev_clips(project)


def _evaluate_on(project: "Project", target: tuple[str, str, "ModelVersion | None"], clips: HeldOut,
                 decode: DecodeConfig, progress: bool) -> EvalResult:
    from dataclasses import replace

    name, spec, mv = target
    decode = replace(decode, model=spec)
    with torch_threads(decode.threads):
        loaded = load_version(project, mv, decode.device) if mv else load_model(spec, decode.device)
        return evaluate_audio(loaded, clips.audios, clips.references, decode, name, clips.source, progress)
