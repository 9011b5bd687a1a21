"""Every knob of earmark, as frozen dataclasses.

Configurations are saved with every project, model version and round so that any
result can be reproduced from its record. The CLI only converts arguments into these.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

SAMPLE_RATE = 16_000  # Whisper's input rate; every clip is stored at this rate.


@dataclass(frozen=True)
class AudioConfig:
    """How files become clips."""

    max_clip_seconds: float = 30.0  # Whisper sees 30 s windows; longer files are split
    min_clip_seconds: float = 0.2  # shorter is "empty": nothing a person could label
    silence_dbfs: float = -60.0  # a clip whose RMS is below this is "silent"
    max_file_hours: float = 12.0  # guards memory: longer files are rejected, not loaded
    split_search_seconds: float = 10.0  # look for the quietest cut in the last N s of a window
    extensions: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3")


@dataclass(frozen=True)
class DecodeConfig:
    """How the model transcribes clips for ranking."""

    model: str = "tiny.en"  # a Whisper name ("tiny.en", "base"), or a checkpoint path
    device: str = "auto"  # "auto" picks CUDA when present, else the CPU
    batch_size: int = 16  # windows decoded together
    language: str = "en"
    # Cap on new tokens: an over-fitted model can loop to Whisper's 224-token limit,
    # and a batch runs until its longest member stops, so bound it by duration.
    max_tokens_per_second: float = 6.0
    min_max_tokens: int = 16
    # a block of up to loop_max_period tokens repeated 3+ times over this many tokens
    # ends the sequence (a loop); 0 turns the check off
    loop_min_tokens: int = 12
    # 8 let a 10-token phrase ("and we are going to be in the world,") loop through a
    # packed window of speechocean762 in float32, 127 word errors on two clips
    loop_max_period: int = 24
    pack: bool = True  # pack several short clips into one 30 s window
    pack_gap_seconds: float = 1.0  # silence between packed clips
    pack_window_seconds: float = 28.0  # fill a window up to this much audio
    # a packed clip with no word, or fewer words per second than this, is decoded again
    # (packed with other such clips, then alone): Whisper sometimes skips all or most of an
    # utterance of a window, and the few words left look confident, which sent such clips
    # to the end of the queue. On speechocean762 (benchmarks/RESULTS.md) 0.5 took the
    # default score's Spearman with clip WER from 0.673 to 0.689 and corpus WER on 300
    # clips from 0.363 to 0.351 for 7 % more windows; 1.0 reached 0.723 but decoded 43 %
    # more windows, too slow for the throughput target
    pack_min_words_per_second: float = 0.5
    # a packed clip given more words per second than anyone reads (a loop that the
    # alignment spread over it) is decoded again too; alone, its own token cap bounds it
    pack_max_words_per_second: float = 6.0
    # refuse EOT while the attention has not reached a packed window's last clip
    pack_hold_eot: bool = True
    # CPU threads for ranking (0: one per core). With 2 or more, the next batch's encoder
    # runs in a thread of its own while this batch decodes, each with half of them
    threads: int = 0
    # arithmetic on the CPU: "bf16" (the encoder under bfloat16 autocast, the decoder's
    # products on bfloat16 weights, exact float32 logits for each step's best tokens),
    # "int8" (the encoder's linear layers in dynamic int8), "none" (float32, whisper's
    # own), or "auto": bf16 where the CPU has bfloat16 instructions, else none. A GPU
    # decodes in float32. bf16 and none gave the same WER on speechocean762; int8 was
    # 0.5 points worse (benchmarks/RESULTS.md).
    quantize: str = "auto"


@dataclass(frozen=True)
class SelectionConfig:
    """How the queue is ordered."""

    strategy: str = "errors-per-second"  # a name from earmark.ranking.strategies.STRATEGIES
    seed: int = 0  # used by strategies with randomness
    low_confidence: float = 0.5  # words below this probability are marked for review


@dataclass(frozen=True)
class KeymapConfig:
    """The review editor's keys, each action with the keys that do it.

    A key is written as its modifiers and its name joined by ``+``: ``Ctrl+,``, ``Escape``,
    ``Shift+Tab``, ``Ctrl+Space``, ``F1`` (``Ctrl`` is also the Command key on a Mac).
    The defaults follow oTranscribe's (Esc plays and pauses, F1/F2 rewind and skip ahead,
    F3/F4 slow down and speed up) with Ctrl combinations that work on laptops without
    function keys; every key works while the cursor is in the text.
    """

    play_pause: tuple[str, ...] = ("Escape", "Ctrl+Space")
    back: tuple[str, ...] = ("Ctrl+,", "F1")  # rewind ``review.jump_seconds``
    forward: tuple[str, ...] = ("Ctrl+.", "F2")
    slower: tuple[str, ...] = ("F3", "Ctrl+[")
    faster: tuple[str, ...] = ("F4", "Ctrl+]")
    replay_word: tuple[str, ...] = ("Ctrl+;", "Ctrl+'")  # the word at the cursor
    next_uncertain: tuple[str, ...] = ("Tab", "Ctrl+ArrowDown")  # select it and play it
    previous_uncertain: tuple[str, ...] = ("Shift+Tab", "Ctrl+ArrowUp")
    save_next: tuple[str, ...] = ("Ctrl+Enter",)
    skip: tuple[str, ...] = ("Ctrl+Shift+Enter",)
    guidelines: tuple[str, ...] = ("Ctrl+Shift+G",)
    help: tuple[str, ...] = ("Ctrl+/", "F10")  # the overlay that lists every key


@dataclass(frozen=True)
class ReviewConfig:
    """The review app's behaviour."""

    # a clip shown to one annotator is theirs this long; an open tab renews it every
    # ``keepalive_seconds``, so a closed tab's clip returns to the queue within a minute
    lease_minutes: float = 1.0
    keepalive_seconds: float = 20.0
    round_budget_minutes: float = 10.0  # audio minutes to correct per round
    autoplay: bool = False  # play a clip as soon as it opens
    jump_seconds: float = 2.0  # how far the back and forward keys move
    # share of clips (chosen by clip id, the same every time) shown without the marks
    # on low-confidence words, so the dashboard can compare the work with and without
    unmarked_share: float = 0.0
    keys: KeymapConfig = field(default_factory=KeymapConfig)


@dataclass(frozen=True)
class AugmentConfig:
    """Random changes to training audio, so a few minutes of speech go further."""

    # Kaldi-style speed perturbation: tempo and pitch change together (resampling)
    speed_factors: tuple[float, ...] = (0.9, 1.0, 1.1)
    noise_prob: float = 0.5  # chance that a clip gets white noise added
    snr_db: tuple[float, float] = (10.0, 30.0)  # noise level: SNR drawn uniformly in this range
    freq_masks: int = 2  # SpecAugment frequency masks per 30 s window
    freq_mask_bins: int = 12  # widest frequency mask, in mel bins (of 80)
    time_masks_per_10s: float = 1.0  # SpecAugment time masks per 10 s of speech in a window
    time_mask_frames: int = 30  # widest time mask, in 10 ms frames (a short word at most)


@dataclass(frozen=True)
class FinetuneConfig:
    """How corrections fine-tune the active model (``earmark finetune``)."""

    # "full": every weight; "decoder": encoder frozen and its outputs computed once
    # (much faster, no audio augmentation); "lora": PEFT adapters on the attention and
    # MLP projections, merged into the saved checkpoint
    mode: str = "full"
    # passes over the training corrections; early stopping on dev WER usually ends sooner.
    # 10 rather than 5: on speechocean762 (10 min of corrections) dev WER went 0.340 -> 0.278
    # and the run still took ~5 min on 2 CPU cores
    epochs: int = 10
    max_steps: int = 0  # stop after this many optimizer steps; 0: no limit
    lr: float = 5e-5  # peak learning rate (AdamW); LoRA usually wants ~10x more
    # the encoder's weights (or adapters) learn at lr times this. 3 (with interpolate 0.7)
    # was 0.8 points better on the mean of three speechocean762 tuning splits, but on the
    # three test splits it tied on one and lost on two (benchmarks/RESULTS.md): one rate
    encoder_lr_scale: float = 1.0
    warmup_fraction: float = 0.1  # share of the steps with a linear warm-up, then linear decay
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0  # gradient clipping
    batch_size: int = 4  # 30 s windows per forward pass (each packs several clips)
    grad_accum: int = 1  # forward passes summed into one optimizer step
    pack: bool = True  # pack clips into 30 s windows as decoding does (the encoder always sees 30 s)
    # end each clip's text with "." when it has no final punctuation: the packed decoder
    # splits a window's words between clips at sentence ends, so a model that stops
    # writing them hands the next clip's first word to the previous clip
    end_punctuation: bool = True
    seed: int = 0  # data order, packing and augmentation
    augment: bool = True  # speed, noise and SpecAugment (not in "decoder" mode)
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)
    # replayed clips per training correction: uncorrected clips the parent model was
    # most confident about, with its own transcripts, to limit forgetting; 0: none
    replay_fraction: float = 0.0
    # forgetting check: the parent (at the start) and the new version (at the end) decode
    # this many of the uncorrected clips the parent was surest of (after the replayed ones),
    # and the share of the parent's words the new version changes is reported. The dev
    # split holds only corrected (hard) clips, so it cannot see a model get worse where the
    # parent was right. On speechocean762 the 40 surest clips held too few changes to tell
    # models apart; over 100 the default runs of two speaker splits changed 3.0 % and 2.8 %,
    # their trained weights before interpolation 3.5 % and 3.6 %, in the order of the easy
    # test speakers' WER (benchmarks/RESULTS.md); 0: no check
    drift_clips: int = 100
    # the gate also refuses a version whose forgetting check changes more than this share
    # of the parent's words. 1 (the default): reported, not gated on. No threshold has been
    # measured to separate worse versions from better ones (the default runs changed ~3 %,
    # a wrecked model over 50 %), so the choice is the user's: e.g. 0.1
    max_drift: float = 1.0
    # share of the trained change the saved weights keep: parent + share * (trained - parent)
    # (weight-space interpolation, as in WiSE-FT). Over three speechocean762 tuning splits
    # (benchmarks/RESULTS.md) every share from 0.5 to 0.9 had a mean WER on held-out
    # speakers of 0.222-0.225, the trained weights themselves (1.0) 0.237; it keeps more of
    # what the parent did well, which ten minutes of the hardest clips otherwise train away
    interpolate: float = 0.7
    # the newest weights are kept unless an earlier evaluation beats them on the dev
    # split with at least this confidence (paired bootstrap over dev clips); 0: keep
    # only the lowest dev WER. A dev split of ~25 clips moves several WER points
    # between epochs by chance (benchmarks/RESULTS.md); the best of ten such noisy
    # evaluations flatters itself, hence a strict level. Weights that pass the gate are
    # not swapped for newer ones, tied on dev, that would fail it
    dev_confidence: float = 0.95
    patience: int = 3  # dev evaluations in a row clearly worse than the best (as above) before stopping
    eval_every: int = 0  # optimizer steps between dev evaluations; 0: once per epoch
    dev_fraction: float = 0.15  # share of speakers (or clips) held out as the dev split
    dev_min_clips: int = 8  # the dev split is filled up to at least this many clips
    gate_margin: float = 0.0  # activate only if dev WER drops by more than this
    lora_rank: int = 16
    lora_alpha: float = 32.0
    save_every: int = 10  # optimizer steps between saved training states (for --resume)
    device: str = "auto"  # "auto", "cpu" or "cuda"
    threads: int = 0  # torch CPU threads; 0 leaves torch's default


@dataclass(frozen=True)
class SimulateConfig:
    """The active-learning loop replayed with reference texts as the annotator (``earmark simulate``)."""

    strategies: tuple[str, ...] = ("random", "least-confidence", "min-word-prob", "errors-per-second",
                                   "entropy", "longest-first", "diverse-errors-per-second")
    rounds: int = 4  # selection + fine-tuning rounds after the zero-shot round 0
    budget_minutes: float = 2.0  # audio minutes a person corrects per round (not clips)
    seeds: int = 3  # repeats: each seed splits the speakers and orders random selection anew
    speakers: int = 0  # speakers drawn (seeded) from the manifest for the study; 0: all
    test_speakers: int = 20  # held-out speakers for the test WER
    dev_speakers: int = 10  # held-out speakers for the dev WER
    model: str = "tiny.en"
    # fine-tuning from the base model each round on everything labeled so far: decoder
    # only, over encoder outputs computed once per clip
    epochs: int = 3
    min_steps: int = 8  # at least this many steps, so the first small rounds train too
    batch_size: int = 8
    lr: float = 5e-5  # 3e-5..6e-5 gave similar curves on speechocean762; 1e-4 over-fitted
    batch_decode: int = 16  # clips decoded together
    context_margin_seconds: float = 1.0  # encoder positions kept past a clip's end
    workers: int = 1  # seeds simulated in parallel processes
    threads: int = 0  # torch threads per process; 0: torch's default (1 with workers > 1)


@dataclass(frozen=True)
class BackupConfig:
    """Snapshots of a SQLite project database, kept in ``PROJECT/backups``."""

    keep: int = 10  # newest snapshots kept; older ones are deleted (0: take none)
    # while annotators save in the review app, a snapshot at most this often, so a
    # damaged file costs at most these minutes of corrections
    review_minutes: float = 10.0


@dataclass(frozen=True)
class ProjectConfig:
    """A project's settings, stored in ``PROJECT/earmark.json``."""

    database_url: str = ""  # empty: SQLite file ``earmark.db`` in the project folder
    audio: AudioConfig = field(default_factory=AudioConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    review: ReviewConfig = field(default_factory=ReviewConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    backup: BackupConfig = field(default_factory=BackupConfig)


def project_config_problems(cfg: ProjectConfig) -> list[str]:
    """Every value of a project's audio, selection, review and backup settings that
    cannot work, each a line starting with its dotted field (decoding and fine-tuning
    settings are checked by the commands that use them)."""
    a, sel, rev, bak = cfg.audio, cfg.selection, cfg.review, cfg.backup
    checks = [
        ("audio.max_clip_seconds", a.max_clip_seconds, 0 < a.max_clip_seconds <= 30,
         "must be above 0 and at most 30 (Whisper's window)"),
        ("audio.min_clip_seconds", a.min_clip_seconds, 0 <= a.min_clip_seconds < a.max_clip_seconds,
         "must be 0 or more and below audio.max_clip_seconds"),
        ("audio.max_file_hours", a.max_file_hours, a.max_file_hours > 0, "must be above 0"),
        ("audio.split_search_seconds", a.split_search_seconds,
         0 <= a.split_search_seconds < a.max_clip_seconds, "must be 0 or more and below audio.max_clip_seconds"),
        ("audio.extensions", list(a.extensions),
         bool(a.extensions) and all(e.startswith(".") and len(e) > 1 for e in a.extensions),
         'must list file endings with their dot, e.g. [".wav", ".flac"]'),
        ("selection.low_confidence", sel.low_confidence, 0 <= sel.low_confidence <= 1,
         "must be a probability from 0 to 1"),
        ("review.lease_minutes", rev.lease_minutes, rev.lease_minutes > 0, "must be above 0"),
        ("review.round_budget_minutes", rev.round_budget_minutes, rev.round_budget_minutes > 0,
         "must be above 0"),
        ("review.keepalive_seconds", rev.keepalive_seconds,
         0 < rev.keepalive_seconds < rev.lease_minutes * 60,
         "must be above 0 and below review.lease_minutes (in seconds)"),
        ("review.jump_seconds", rev.jump_seconds, rev.jump_seconds > 0, "must be above 0"),
        ("review.unmarked_share", rev.unmarked_share, 0 <= rev.unmarked_share <= 1,
         "must be a share from 0 to 1"),
        ("backup.keep", bak.keep, bak.keep >= 0, "must be 0 (no snapshots) or more"),
        ("backup.review_minutes", bak.review_minutes, bak.review_minutes > 0, "must be above 0"),
    ]
    return [f"{name} {rule} (got {json.dumps(value)})" for name, value, ok, rule in checks if not ok]


def unknown_keys(cls: type, data: dict[str, Any], where: str = "") -> list[str]:
    """Dotted names of the keys in ``data`` that no field of ``cls`` has (a misspelling,
    or a setting of a newer earmark), nested configs included."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = []
    for key, value in data.items():
        f = fields.get(key)
        if f is None:
            out.append(f"{where}{key}")
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            out += unknown_keys(type(default), value, f"{where}{key}.")
    return out


def to_dict(cfg: Any) -> dict[str, Any]:
    """Return a JSON-ready dict of a config dataclass (nested ones included)."""
    return dataclasses.asdict(cfg)


def to_json(cfg: Any) -> str:
    """Serialise a config dataclass to indented JSON."""
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build ``cls`` from a dict, recursing into nested dataclasses.

    Unknown keys are ignored (a newer earmark may have written them) and missing
    keys take their defaults, so old records stay loadable. A value of another type than
    its field's default (a string for a count, say) is refused here, naming the field,
    rather than failing later deep inside a command.

    Raises
    ------
    TypeError
        A value whose type does not fit its field; the message starts with the field's
        dotted name (``where`` is the prefix for nested configs).
    """
    kwargs: dict[str, Any] = {}
    hints = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for name, f in hints.items():
        if name not in data:
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]
        kwargs[name] = _typed(data[name], default, f"{where}{name}")
    return cls(**kwargs)


def _typed(value: Any, default: Any, where: str) -> Any:
    """``value`` as the type of ``default`` (an int is taken for a float), or TypeError."""
    def refuse(kind: str) -> TypeError:
        return TypeError(f"{where} is {json.dumps(value)[:60]}, not {kind}")

    if dataclasses.is_dataclass(default):
        if not isinstance(value, dict):
            raise refuse("an object of settings")
        return from_dict(type(default), value, f"{where}.")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise refuse("true or false")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise refuse("a whole number")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise refuse("a number")
        return float(value)
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise refuse("a string")
    elif isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise refuse("a list")
        if default:  # the elements take the type of the default's
            return tuple(_typed(v, default[0], f"{where}[{i}]") for i, v in enumerate(value))
        return tuple(value)
    return value
