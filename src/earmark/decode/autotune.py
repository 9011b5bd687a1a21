"""The arithmetic and engine to decode with, chosen by measuring them on this machine.

A CPU's flags are no speed promise: on a Xeon with ``avx512_bf16`` but no AMX, bfloat16
decoding ran 17 % slower than float32. So ``DecodeConfig.quantize`` "auto" and
``DecodeConfig.engine`` "auto" are settled by a probe at first use, in two stages:

1. quality: every candidate (PyTorch in float32, in bfloat16 where the CPU has bfloat16
   instructions, with an int8 encoder; the CTranslate2 engine) transcribes the shipped
   check set (``earmark/samples``, synthetic speech with reference texts); those whose
   WER is at most ``DecodeConfig.auto_wer_margin`` above PyTorch float32's stay;
2. speed: where ranking gives it a sample of the pool's own audio, the candidates left
   decode that sample, :data:`PROBE_BATCHES` full batches of windows, timed after a
   warm-up; the fastest wins if it is at least ``DecodeConfig.auto_speed_margin``
   times as fast as PyTorch float32, the reference, which stays otherwise. The check
   set alone misleads: its 16 clips fill two windows, where PyTorch's encoder has no
   next batch to overlap and the engines' fixed costs weigh most; on an AMD EPYC it made CTranslate2 int8 look twice as fast
   as PyTorch float32, which ranked 300 real clips 7 % faster (21.2 vs 19.9× real
   time). Without a sample the check set's timings decide.

The choice is cached in ``autotune.json`` under earmark's cache folder
(:func:`earmark.models.loading.cache_dir`), keyed by the machine (CPU model and flags,
torch and CTranslate2 versions, threads) and the model (its spec, and a checkpoint's
size and modification time), so the probe runs once per machine and model. The pool
speeds are kept per machine and architecture: a fine-tuned version of the same
architecture decodes at the same speed, so it repeats only the quality stage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from earmark.config import SAMPLE_RATE, DecodeConfig

if TYPE_CHECKING:
    from collections.abc import Callable

    import whisper

    from earmark.decode.decoder import Decoder

log = logging.getLogger(__name__)

#: the shipped check set: synthetic clips with their texts, in the package (earmark/samples)
CHECK_SET = Path(__file__).resolve().parents[1] / "samples"
CHECK_CLIPS = 16  # about 55 s of audio: two packed windows, a second or two a candidate
#: full batches of packed windows in the speed probe: with two, the encoder of the second
#: overlaps the decoding of the first as it does in a long ranking
PROBE_BATCHES = 2


@dataclass(frozen=True)
class Candidate:
    """One way to decode: an engine and its arithmetic."""

    engine: str  # "torch" | "ct2"
    quantize: str  # torch: "none" | "bf16" | "int8"; ct2: its compute type

    @property
    def name(self) -> str:
        return f"{self.engine}-{'float32' if self.quantize == 'none' else self.quantize}"


@dataclass(frozen=True)
class Choice:
    """The decoding chosen, and why."""

    engine: str
    quantize: str
    reason: str  # one line: what was measured, or why nothing was
    #: per candidate name: audio seconds per second and WER on the check set
    measured: dict[str, dict[str, float]] = field(default_factory=dict)
    cached: bool = False  # read from the cache, no probe run

    @property
    def name(self) -> str:
        return Candidate(self.engine, self.quantize).name


def candidates(cfg: DecodeConfig, device: str) -> list[Candidate]:
    """What ``cfg`` leaves open on ``device``; a single one needs no probe."""
    from earmark.decode.precision import native_bf16

    if device != "cpu":  # the GPU decodes in float32 with PyTorch
        return [Candidate("torch", "none")]
    out: list[Candidate] = []
    if cfg.engine in ("auto", "torch"):
        if cfg.quantize == "auto":
            # bfloat16 without the instructions is emulated: many times slower, not worth a probe
            out += [Candidate("torch", q) for q in ("none", "bf16", "int8") if q != "bf16" or native_bf16()]
        else:
            out.append(Candidate("torch", cfg.quantize))
    if cfg.engine == "ct2" or (cfg.engine == "auto" and _has_ctranslate2()):
        types = ("int8", "float32") if cfg.ct2_compute_type == "auto" else (cfg.ct2_compute_type,)
        out += [Candidate("ct2", t) for t in types]
    return out


def _has_ctranslate2() -> bool:
    import importlib.util

    return importlib.util.find_spec("ctranslate2") is not None


def machine_key(threads: int) -> str:
    """The CPU (model and flags), library versions and thread count, as one string."""
    import torch

    try:
        import ctranslate2

        ct2 = ctranslate2.__version__
    except ImportError:
        ct2 = "none"
    model, flags = cpu_name_and_flags()
    digest = hashlib.sha256(" ".join(sorted(flags.split())).encode()).hexdigest()[:12]
    return f"{model} [flags {digest}] torch {torch.__version__} ct2 {ct2} threads {threads}"


def cpu_name_and_flags() -> tuple[str, str]:
    """The processor's model name and its flags (from /proc/cpuinfo where there is one)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), ""
    values = {}
    for line in info.splitlines():
        key, _, value = line.partition(":")
        values.setdefault(key.strip(), value.strip())
    return values.get("model name", platform.machine()), values.get("flags", "")


def cache_file() -> Path:
    """Where choices are kept: ``$EARMARK_AUTOTUNE_CACHE``, else ``$EARMARK_CACHE/autotune.json``."""
    from earmark.models.loading import cache_dir

    override = os.getenv("EARMARK_AUTOTUNE_CACHE")
    return Path(override) if override else cache_dir() / "autotune.json"


def cache_key(cfg: DecodeConfig, spec: str, threads: int, options: list[Candidate]) -> str:
    """The key of a choice: machine, model, candidates and margin."""
    from earmark.models.ct2_folder import weights_key

    names = ",".join(c.name for c in options)
    return (f"{machine_key(threads)} | model {spec} {weights_key(spec)} | {names} | margin {cfg.auto_wer_margin}"
            f" speed {cfg.auto_speed_margin}")


def speed_key(model: "whisper.Whisper", threads: int, overlap: bool, cfg: DecodeConfig) -> str:
    """The key of pool speeds: machine, architecture (not weights) and batch shape."""
    dims = hashlib.sha256(repr(sorted(vars(model.dims).items())).encode()).hexdigest()[:12]
    return (f"{machine_key(threads)} | arch {dims} | batch {cfg.batch_size} overlap {overlap} "
            f"| pool speeds")


def probe_seconds(cfg: DecodeConfig) -> float:
    """Audio in the speed probe: :data:`PROBE_BATCHES` batches of full windows."""
    return PROBE_BATCHES * max(1, cfg.batch_size) * cfg.pack_window_seconds


def spread(durations: list[float], seconds: float) -> list[int]:
    """Indices of clips spread evenly over ``durations`` adding up to about ``seconds``.

    Clips from all over the pool (every speaker and recording, not the first ones
    imported); all of them when the pool is shorter.
    """
    total = sum(durations)
    if total <= seconds:
        return list(range(len(durations)))
    n = max(1, round(len(durations) * seconds / total))
    while True:
        picked = sorted({(i * len(durations)) // n for i in range(n)})
        if sum(durations[i] for i in picked) >= seconds or n >= len(durations):
            return picked
        n += max(1, n // 10)


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or damaged: measured again
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, key: str, choice: Choice) -> None:
    _write_entry(path, key, {"engine": choice.engine, "quantize": choice.quantize, "reason": choice.reason,
                             "measured": choice.measured})


def _write_entry(path: Path, key: str, entry: dict) -> None:
    data = _read(path)
    data[key] = {**entry, "date": time.strftime("%Y-%m-%d %H:%M")}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)  # whole, even with a second rank writing at once


def check_set(limit: int | None = None) -> tuple[list, list[str]]:
    """The check clips' audio and reference texts (empty without the source tree)."""
    from earmark.audio import load_audio

    limit = limit or CHECK_CLIPS
    manifest = CHECK_SET / "manifest.jsonl"
    if not manifest.is_file():
        return [], []
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("text") and "long" not in r["audio"]][:limit]
    return [load_audio(CHECK_SET / r["audio"]) for r in rows], [r["text"] for r in rows]


def make_decoder(model: "whisper.Whisper", spec: str, cfg: DecodeConfig, candidate: Candidate,
                 threads: int, overlap: bool = False) -> "Decoder":
    """A decoder for ``candidate`` (``threads``: the engine's, for CTranslate2)."""
    from earmark.decode.decoder import Decoder

    if candidate.engine == "ct2":
        if not _has_ctranslate2():
            from earmark.errors import BadConfig

            raise BadConfig("decode.engine 'ct2': the ctranslate2 package is not installed; "
                            "`pip install ctranslate2`, or set the engine to torch or auto")
        from earmark.decode.ct2_engine import CT2Decoder
        from earmark.models.ct2_folder import ct2_folder

        return CT2Decoder(model, ct2_folder(spec, model), cfg, compute_type=candidate.quantize,
                          threads=threads)
    return Decoder(model, replace(cfg, quantize=candidate.quantize, engine="torch"), overlap=overlap)


def _timed(decoder: "Decoder", audios: list, warm: list) -> tuple[list[str], float]:
    """Texts of ``audios`` and audio seconds per wall second, after a warm-up on ``warm``."""
    decoder.transcribe(warm)  # first calls allocate and pick kernels
    start = time.perf_counter()
    hyps = [t.text for t in decoder.transcribe(audios)]
    wall = time.perf_counter() - start
    return hyps, round(sum(a.size for a in audios) / SAMPLE_RATE / wall, 2)


def probe(model: "whisper.Whisper", spec: str, cfg: DecodeConfig, options: list[Candidate],
          threads: int, overlap: bool) -> dict[str, dict[str, float]]:
    """Each candidate's speed (audio s per s) and WER on the check set."""
    from earmark.wer import error_rates

    audios, refs = check_set()
    out: dict[str, dict[str, float]] = {}
    for c in options:
        hyps, speed = _timed(make_decoder(model, spec, cfg, c, threads, overlap), audios, audios[:2])
        out[c.name] = {"speed": speed, "wer": round(error_rates(refs, hyps).wer, 4)}
        log.info("decoding probe: %s %.1f audio s/s, WER %.3f", c.name, out[c.name]["speed"], out[c.name]["wer"])
    return out


def probe_speed(model: "whisper.Whisper", spec: str, cfg: DecodeConfig, options: list[Candidate],
                threads: int, overlap: bool, audios: list, progress: bool = False) -> dict[str, float]:
    """Each candidate's audio seconds per second on ``audios`` (a sample of the pool)."""
    from tqdm.auto import tqdm

    warm, _ = check_set(2)
    out = {}
    # minutes, once per machine: say what the wait is for
    for c in tqdm(options, desc="timing decoders on the pool (once per machine)", unit="decoder",
                  disable=not progress, leave=False):
        _, out[c.name] = _timed(make_decoder(model, spec, cfg, c, threads, overlap), audios, warm or audios[:2])
        log.info("decoding probe on the pool: %s %.1f audio s/s", c.name, out[c.name])
    return out


def eligible(options: list[Candidate], measured: dict[str, dict[str, float]], margin: float) -> list[Candidate]:
    """The candidates whose check-set WER is at most ``margin`` above the reference's
    (PyTorch float32 when it was measured, else the first candidate)."""
    ref = _reference(options)
    limit = measured[ref.name]["wer"] + margin
    return [c for c in options if measured[c.name]["wer"] <= limit + 1e-9]


def _reference(options: list[Candidate]) -> Candidate:
    return next((c for c in options if c.name == "torch-float32"), options[0])


def pick(options: list[Candidate], measured: dict[str, dict[str, float]], margin: float,
         speed_margin: float = 1.0) -> tuple[Candidate, str]:
    """The fastest candidate whose WER is at most ``margin`` above the reference's, if
    it is at least ``speed_margin`` times as fast as the reference; else the reference.

    Speed is the pool's (``measured[name]["pool_speed"]``) where every candidate that
    passes has one, else the check set's. Returns the candidate and a line saying why.
    """
    ref = _reference(options)
    fit = eligible(options, measured, margin)
    on_pool = all("pool_speed" in measured[c.name] for c in fit) and len(fit) > 1
    speed = "pool_speed" if on_pool else "speed"
    best = max(fit, key=lambda c: measured[c.name][speed])
    shown = ", ".join(f"{c.name} {measured[c.name]['speed']:.1f}x WER {measured[c.name]['wer']:.3f}"
                      for c in options)
    if best != ref and measured[best.name][speed] < speed_margin * measured[ref.name][speed]:
        why = (f"{ref.name}: the reference; the fastest other with a check-set WER at most {margin:.3f} "
               f"above its, {best.name}, is under {speed_margin:.2f}x its speed (check set: {shown})")
        best = ref
    else:
        why = (f"{best.name}: the fastest with a check-set WER at most {margin:.3f} above "
               f"{ref.name}'s{f' and {speed_margin:.2f}x its speed' if best != ref and speed_margin > 1 else ''}"
               f" (check set: {shown})")
    if on_pool:
        why += " on the pool's audio: " + ", ".join(f"{c.name} {measured[c.name]['pool_speed']:.1f}x"
                                                     for c in fit)
    return best, why


def choose(model: "whisper.Whisper", spec: str, cfg: DecodeConfig, threads: int, overlap: bool = False,
           cache: Path | None = None, sample: "Callable[[float], list] | None" = None,
           progress: bool = False) -> Choice:
    """The engine and arithmetic to decode with: measured once, then read from the cache.

    Parameters
    ----------
    model, spec
        The loaded model and the spec it was loaded from (part of the cache key).
    cfg
        ``engine``, ``quantize``, ``ct2_compute_type``, ``auto_wer_margin`` and
        ``auto_speed_margin`` matter.
    threads
        The threads decoding will use (part of the cache key).
    cache
        The cache file; default :func:`cache_file`.
    sample
        Called with a number of seconds, returns that much of the pool's audio (a list
        of clips) for the speed stage; None: the check set's timings decide.
    progress
        A progress bar while the pool's audio is timed.
    """
    device = next(model.parameters()).device.type
    options = candidates(cfg, device)
    if len(options) == 1:
        c = options[0]
        return Choice(c.engine, c.quantize, f"{c.name}: set by the configuration, nothing to measure")
    path = cache or cache_file()
    # a choice made with the pool's timings is not one made from the check set alone
    key = cache_key(cfg, spec, threads, options) + (" | pool" if sample is not None else "")
    hit = _read(path).get(key)
    if isinstance(hit, dict) and hit.get("engine") and hit.get("quantize"):
        return Choice(hit["engine"], hit["quantize"], hit.get("reason", ""), hit.get("measured", {}), cached=True)
    if not CHECK_SET.joinpath("manifest.jsonl").is_file():
        c = options[0]
        return Choice(c.engine, c.quantize, f"{c.name}: no check set ({CHECK_SET}) to measure the others on")
    measured = probe(model, spec, cfg, options, threads, overlap)
    fit = eligible(options, measured, cfg.auto_wer_margin)
    if len(fit) > 1:
        for name, speed in _pool_speeds(model, spec, cfg, fit, threads, overlap, path, sample, progress).items():
            measured[name]["pool_speed"] = speed
    best, why = pick(options, measured, cfg.auto_wer_margin, cfg.auto_speed_margin)
    choice = Choice(best.engine, best.quantize, why, measured)
    _write(path, key, choice)
    return choice


def _pool_speeds(model: "whisper.Whisper", spec: str, cfg: DecodeConfig, fit: list[Candidate], threads: int,
                 overlap: bool, path: Path, sample: "Callable[[float], list] | None",
                 progress: bool = False) -> dict[str, float]:
    """The speeds of ``fit`` on a pool's audio: kept per machine and architecture,
    measured (and kept) when one of them is missing and ``sample`` gives audio."""
    key = speed_key(model, threads, overlap, cfg)
    kept = _read(path).get(key)
    speeds = kept.get("speeds", {}) if isinstance(kept, dict) else {}
    if all(isinstance(speeds.get(c.name), (int, float)) for c in fit):
        return {c.name: float(speeds[c.name]) for c in fit}
    audios = sample(probe_seconds(cfg)) if sample is not None else []
    if not audios:
        return {}
    measured = probe_speed(model, spec, cfg, fit, threads, overlap, audios, progress)
    _write_entry(path, key, {"speeds": {**speeds, **measured},
                             "audio_seconds": round(sum(a.size for a in audios) / SAMPLE_RATE, 1)})
    return measured


def settled(cfg: DecodeConfig, choice: Choice) -> DecodeConfig:
    """``cfg`` with ``choice`` fixed in it, so another process (a Ray worker) decodes
    alike without measuring again."""
    if choice.engine == "ct2":
        return replace(cfg, engine="ct2", ct2_compute_type=choice.quantize)
    return replace(cfg, engine="torch", quantize=choice.quantize)


def decoder_for(model: "whisper.Whisper", spec: str, cfg: DecodeConfig, overlap: bool = False,
                sample: "Callable[[float], list] | None" = None,
                progress: bool = False) -> tuple["Decoder", Choice]:
    """The decoder ``cfg`` asks for on this machine (measured where it says "auto").

    Call it with torch's thread count already set for decoding (ranking halves it to
    overlap the encoder); the CTranslate2 engine gets every usable thread. ``sample``,
    ``progress``: as for :func:`choose`.
    """
    from earmark.models.device import cpu_cores, usable_threads

    threads = usable_threads(cfg.threads) or cpu_cores()
    choice = choose(model, spec, cfg, threads, overlap, sample=sample, progress=progress)
    log.info("decoding with %s%s", choice.reason, " (cached choice)" if choice.cached else "")
    return make_decoder(model, spec, cfg, Candidate(choice.engine, choice.quantize), threads, overlap), choice
