"""Every knob of earmark, as frozen dataclasses.

Configurations are saved with every project, model version and round so that any
result can be reproduced from its record. The CLI only converts arguments into these:
a field that a command sets carries its flag and help in its metadata (see
:func:`setting`), and the CLI builds its options from them. Each dataclass lists what
is wrong with its values in one place, its ``problems()`` method; the code that reads a
config (``earmark.json``, a command's options) turns those into one error naming the
fields. Why a default has its value is told in ``benchmarks/config_history.md``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

# re-exported: every config is read and written with these
from earmark.dataclass_json import from_dict as from_dict, to_dict as to_dict, to_json as to_json
from earmark.dataclass_json import unknown_keys as unknown_keys

SAMPLE_RATE = 16_000  # Whisper's input rate; every clip is stored at this rate.

#: the arithmetic decoding can run in on the CPU (``DecodeConfig.quantize``)
PRECISIONS = ("auto", "bf16", "int8", "none")
ENGINES = ("auto", "torch", "ct2")  # DecodeConfig.engine
CT2_COMPUTE_TYPES = ("auto", "int8", "int8_float32", "float32")  # DecodeConfig.ct2_compute_type
#: what fine-tuning trains (``FinetuneConfig.mode``)
MODES = ("full", "decoder", "lora")


def setting(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING, flag: str = "",
            help: str = "", **cli: Any) -> Any:
    """A config field that a command sets with ``flag`` (e.g. ``"--batch-size"``).

    ``help`` is the option's help; ``{default}`` in it is replaced by the field's
    default, so no help states a default by hand. ``cli`` holds how the command line
    reads the value: ``min``, ``strict`` (the minimum excluded) and ``max`` bound a
    number; ``threads`` marks a torch thread count (capped at the machine's cores);
    ``per_core`` marks a count of processes (capped at the cores, with a note);
    ``metavar``, ``choices``; ``listed`` reads a tuple as comma-separated names (the
    name of a registry, such as ``"strategies"``, checks each against it and refuses an
    empty one);
    ``runtime`` marks where a run computes rather than what (a resumed fine-tuning run
    takes those anew). A bool whose flag starts with ``--no-`` is set to False by the flag.
    """
    metadata = {"flag": flag, "help": help, **cli} if flag else {}
    return field(default=default, default_factory=factory, metadata=metadata)


def flagged_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of the config class ``cls`` that a command line sets, in their order."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("flag")]


def _checked(checks: list[tuple[str, Any, bool, str]], prefix: str = "") -> list[str]:
    return [f"{prefix}{name} {rule} (got {json.dumps(value)})" for name, value, ok, rule in checks if not ok]


@dataclass(frozen=True)
class AudioConfig:
    """How files become clips."""

    max_clip_seconds: float = 30.0  # longest clip, s; Whisper sees 30 s windows, longer files are split
    min_clip_seconds: float = 0.2  # shortest clip, s; shorter is "empty": nothing a person could label
    silence_dbfs: float = -60.0  # level, dBFS, below which a clip's RMS counts as silent
    max_file_hours: float = 12.0  # longest file, hours; longer ones are rejected, not loaded (memory)
    split_search_seconds: float = 10.0  # s at a window's end searched for the quietest cut
    extensions: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3")  # file endings imported from a folder

    def problems(self) -> list[str]:
        """Every value that cannot work, each a line starting with its field."""
        return _checked([
            ("max_clip_seconds", self.max_clip_seconds, 0 < self.max_clip_seconds <= 30,
             "must be above 0 and at most 30 (Whisper's window)"),
            ("min_clip_seconds", self.min_clip_seconds, 0 <= self.min_clip_seconds < self.max_clip_seconds,
             "must be 0 or more and below audio.max_clip_seconds"),
            ("max_file_hours", self.max_file_hours, self.max_file_hours > 0, "must be above 0"),
            ("split_search_seconds", self.split_search_seconds,
             0 <= self.split_search_seconds < self.max_clip_seconds,
             "must be 0 or more and below audio.max_clip_seconds"),
            ("extensions", list(self.extensions),
             bool(self.extensions) and all(e.startswith(".") and len(e) > 1 for e in self.extensions),
             'must list file endings with their dot, e.g. [".wav", ".flac"]'),
        ])


@dataclass(frozen=True)
class DecodeConfig:
    """How the model transcribes clips for ranking."""

    model: str = "tiny.en"  # a Whisper name ("tiny.en", "base"), or a checkpoint path
    device: str = setting("auto", flag="--device", help="auto, cpu, cuda, cuda:N or mps (default {default})")
    batch_size: int = setting(16, flag="--batch-size", min=1,
                              help="30-second windows decoded together (default {default})")
    language: str = "en"  # the language Whisper is told the speech is in
    # new tokens a clip may get, per second of its audio (a looping model stops there)
    max_tokens_per_second: float = 6.0
    min_max_tokens: int = 16  # the token cap of the shortest clips
    # tokens over which a block repeated 3+ times ends the sequence as a loop; 0: no check
    loop_min_tokens: int = 12
    loop_max_period: int = 24  # longest repeated block, in tokens, that counts as a loop
    pack: bool = setting(True, flag="--no-pack",
                         help="one clip per 30 s window (slower; packing is on by default)")
    pack_gap_seconds: float = 1.0  # silence between packed clips, s
    pack_window_seconds: float = 28.0  # audio a packed window is filled up to, s
    # words per second below which a packed clip is decoded again (packed with other such
    # clips, then alone): Whisper sometimes skips most of an utterance of a window
    pack_min_words_per_second: float = 0.5
    # words per second above which a packed clip is decoded again (a loop the alignment
    # spread over it); alone, its own token cap bounds it
    pack_max_words_per_second: float = 6.0
    # refuse EOT while the attention has not reached a packed window's last clip
    pack_hold_eot: bool = True
    # CPU threads for ranking (0: one per core); with 2 or more, the next batch's encoder
    # runs in a thread of its own while this batch decodes, each with half of them
    threads: int = setting(0, flag="--threads", threads=True,
                           help="torch CPU threads (default {default}: torch's choice)")
    # arithmetic on the CPU: "bf16" (encoder under bfloat16 autocast, decoder products on
    # bfloat16 weights, exact float32 logits for each step's best tokens), "int8" (the
    # encoder's linear layers in dynamic int8), "none" (float32, whisper's own) or "auto":
    # measured once per machine and model when ranking (see engine); elsewhere bf16 where
    # the CPU has bfloat16 instructions, else none. A GPU decodes in float32
    quantize: str = "auto"
    # the network's engine on the CPU: "torch" (the reference), "ct2" (CTranslate2, the
    # same scores from its per-step logits and alignment; ct2_compute_type arithmetic), or
    # "auto". "auto" here and in quantize is measured once per machine and model on the
    # shipped check set (earmark.decode.autotune): the fastest candidate whose WER is at
    # most auto_wer_margin above torch float32's
    engine: str = setting("auto", flag="--engine", choices=ENGINES,
                          help="decoding engine: torch, ct2 (CTranslate2) or auto, measured once per "
                               "machine and model (default {default})")
    ct2_compute_type: str = "auto"  # int8, int8_float32, float32, or auto (int8 and float32 measured)
    auto_wer_margin: float = 0.01
    # ... and, to leave the reference (torch float32: exact scores), at least this many
    # times its speed: timings of one engine on different clips of one pool differed by
    # 15-25 % on a 2-core EPYC, so a smaller lead is noise, not a faster engine
    auto_speed_margin: float = 1.25

    def problems(self) -> list[str]:
        """Every value decoding cannot run with, each a line starting with its field (the
        device is checked where torch is at hand: :func:`earmark.models.loading.check_decode_config`)."""
        checks = [
            ("batch_size", self.batch_size >= 1, "must be at least 1 (30-second windows per batch)"),
            ("threads", self.threads >= 0, "must be 0 (one per core) or more"),
            ("max_tokens_per_second", self.max_tokens_per_second > 0, "must be positive"),
            ("min_max_tokens", self.min_max_tokens >= 1, "must be at least 1"),
            ("loop_min_tokens", self.loop_min_tokens >= 0, "must be 0 (no loop check) or more"),
            ("pack_gap_seconds", self.pack_gap_seconds >= 0, "must be 0 or more"),
            ("pack_window_seconds", 0 < self.pack_window_seconds <= 30,
             "must be above 0 and at most 30 (Whisper's window)"),
            ("pack_min_words_per_second", self.pack_min_words_per_second >= 0, "must be 0 or more"),
            ("quantize", self.quantize in PRECISIONS, f"must be one of {', '.join(PRECISIONS)}"),
            ("engine", self.engine in ENGINES, f"must be one of {', '.join(ENGINES)}"),
            ("ct2_compute_type", self.ct2_compute_type in CT2_COMPUTE_TYPES,
             f"must be one of {', '.join(CT2_COMPUTE_TYPES)}"),
            ("auto_wer_margin", self.auto_wer_margin >= 0, "must be 0 or more (WER, 0.01 is one point)"),
            ("auto_speed_margin", self.auto_speed_margin >= 1,
             "must be 1 or more (times the reference's speed an alternative needs to be chosen)"),
        ]
        return [f"{name} {rule} (got {getattr(self, name)!r})" for name, ok, rule in checks if not ok]


@dataclass(frozen=True)
class SelectionConfig:
    """How the queue is ordered."""

    # a name from earmark.ranking.strategies.STRATEGIES (the CLI gives the choices)
    strategy: str = setting("errors-per-second", flag="--strategy", help="queue order (default {default})")
    seed: int = 0  # seed of the strategies with randomness
    low_confidence: float = 0.5  # word probability below which a word is marked for review

    def problems(self) -> list[str]:
        """Every value that cannot work, each a line starting with its field."""
        return _checked([("low_confidence", self.low_confidence, 0 <= self.low_confidence <= 1,
                          "must be a probability from 0 to 1")])


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

    def problems(self) -> list[str]:
        """Every action with a blank key, each a line starting with its field."""
        return _checked([(f.name, list(getattr(self, f.name)), all(k.strip() for k in getattr(self, f.name)),
                          'must list keys by name, e.g. ["Ctrl+Enter"]') for f in dataclasses.fields(self)])


@dataclass(frozen=True)
class ReviewConfig:
    """The review app's behaviour."""

    # a clip shown to one annotator is theirs this long, minutes; an open tab renews it every
    # ``keepalive_seconds``, so a closed tab's clip returns to the queue within a minute
    lease_minutes: float = 1.0
    keepalive_seconds: float = 20.0
    round_budget_minutes: float = 10.0  # audio to correct per round, minutes
    # the WER of the whole pool's transcripts (corrected clips count as right) at which
    # review may stop; `status` and `round` then say how many estimated minutes remain
    # (earmark.evaluate.calibration); 0: no target
    target_wer: float = 0.0
    autoplay: bool = False  # play a clip as soon as it opens
    jump_seconds: float = 2.0  # how far the back and forward keys move, s
    # share of clips (chosen by clip id, the same every time) shown without the marks
    # on low-confidence words, so the dashboard can compare the work with and without
    unmarked_share: float = 0.0
    keys: KeymapConfig = field(default_factory=KeymapConfig)

    def problems(self) -> list[str]:
        """Every value that cannot work, each a line starting with its field."""
        return _checked([
            ("lease_minutes", self.lease_minutes, self.lease_minutes > 0, "must be above 0"),
            ("round_budget_minutes", self.round_budget_minutes, self.round_budget_minutes > 0, "must be above 0"),
            ("target_wer", self.target_wer, 0 <= self.target_wer < 1,
             "must be a WER from 0 (no target) to below 1, e.g. 0.1"),
            ("keepalive_seconds", self.keepalive_seconds, 0 < self.keepalive_seconds < self.lease_minutes * 60,
             "must be above 0 and below review.lease_minutes (in seconds)"),
            ("jump_seconds", self.jump_seconds, self.jump_seconds > 0, "must be above 0"),
            ("unmarked_share", self.unmarked_share, 0 <= self.unmarked_share <= 1, "must be a share from 0 to 1"),
        ]) + [f"keys.{line}" for line in self.keys.problems()]


@dataclass(frozen=True)
class AugmentConfig:
    """Random changes to training audio, so a few minutes of speech go further."""

    # Kaldi-style speed perturbation: tempo and pitch change together (resampling)
    speed_factors: tuple[float, ...] = (0.9, 1.0, 1.1)
    noise_prob: float = 0.5  # chance that a clip gets white noise added
    snr_db: tuple[float, float] = (10.0, 30.0)  # noise level: SNR drawn uniformly in this range, dB
    freq_masks: int = 2  # SpecAugment frequency masks per 30 s window
    freq_mask_bins: int = 12  # widest frequency mask, in mel bins (of 80)
    time_masks_per_10s: float = 1.0  # SpecAugment time masks per 10 s of speech in a window
    time_mask_frames: int = 30  # widest time mask, in 10 ms frames (a short word at most)


@dataclass(frozen=True)
class FinetuneConfig:
    """How corrections fine-tune the active model (``earmark finetune``)."""

    # "full": every weight; "decoder": encoder frozen and its outputs computed once (much
    # faster, no audio augmentation); "lora": PEFT adapters on the attention and MLP
    # projections, merged into the saved checkpoint
    mode: str = setting("full", flag="--mode", choices=MODES,
                        help="full (default): all weights; decoder: encoder frozen, outputs cached "
                             "(faster); lora: adapters merged into the checkpoint")
    # passes over the training corrections (early stopping on dev WER may end sooner)
    epochs: int = setting(10, flag="--epochs", min=0,
                          help="passes over the corrections (default {default}; early stopping may end sooner)")
    max_steps: int = setting(0, flag="--max-steps", min=0, help="stop after this many optimizer steps")  # 0: no limit
    lr: float = setting(5e-5, flag="--lr", min=0, strict=True,
                        help="peak learning rate (default {default}; LoRA wants ~10x)")  # AdamW peak
    # the encoder's weights (or adapters) learn at lr times this
    encoder_lr_scale: float = setting(1.0, flag="--encoder-lr-scale", min=0, strict=True, metavar="X",
                                      help="the encoder learns at X times --lr (default {default}: one "
                                           "rate for all)")
    warmup_fraction: float = 0.1  # share of the steps with a linear warm-up, then linear decay
    weight_decay: float = 0.01  # AdamW's decoupled weight decay
    max_grad_norm: float = 1.0  # gradient clipping: largest L2 norm of the gradients
    # 30 s windows per forward pass; 0: chosen when a run starts (earmark.train.card):
    # 4 on a CPU, as many as a GPU's free memory holds there
    batch_size: int = setting(0, flag="--batch-size", min=0,
                              help="30 s windows per step, each packing several clips (default: 4 on a CPU, "
                                   "as many as the GPU's free memory holds on a GPU)")
    grad_accum: int = setting(1, flag="--grad-accum", min=1,  # forward passes summed into one step
                              help="batches summed per optimizer step (default {default})")
    pack: bool = True  # pack clips into 30 s windows as decoding does (the encoder always sees 30 s)
    # end each clip's text with "." when it has no final punctuation: the packed decoder
    # splits a window's words between clips at sentence ends, so a model that stops
    # writing them hands the next clip's first word to the previous clip
    end_punctuation: bool = True
    seed: int = setting(0, flag="--seed", min=0,  # data order, packing and augmentation
                        help="data order and augmentation (default {default})")
    augment: bool = setting(True, flag="--no-augment",  # speed, noise, SpecAugment (not in "decoder" mode)
                            help="no speed, noise or SpecAugment augmentation (on by default)")
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)
    # replayed clips per training correction: uncorrected clips the parent model was most
    # confident about, with its own transcripts, to limit forgetting; 0: none
    replay_fraction: float = setting(
        0.0, flag="--replay", min=0, metavar="FRACTION",
        help="also train on FRACTION x (training clips) uncorrected clips the model was surest of, with "
             "its own transcripts, to limit forgetting (needs `rank` first)")
    # forgetting check: clips the parent (at the start) and the new version (at the end)
    # decode, the uncorrected ones the parent was surest of (after the replayed ones); the
    # share of the parent's words the new version changes is reported; 0: no check
    drift_clips: int = setting(
        100, flag="--drift-clips", min=0, metavar="N",
        help="forgetting check: the new version decodes the N uncorrected clips the model was surest "
             "of (after any replayed ones) and reports the share of its words it changes (default "
             "{default}; needs `rank` first; 0: off)")
    # share of the parent's words, on the forgetting check's clips, a version may change
    # and still pass the gate (1: reported, not gated on)
    max_drift: float = setting(
        1.0, flag="--max-drift", min=0, max=1, metavar="SHARE",
        help="the gate also refuses a version that changes more than this share of those clips' words, "
             "e.g. 0.1 (default {default}: reported only)")
    # share of the trained change the saved weights keep: parent + share * (trained - parent)
    # (weight-space interpolation, as in WiSE-FT)
    interpolate: float = setting(
        0.7, flag="--interpolate", min=0, strict=True, max=1, metavar="SHARE",
        help="share of the trained change the saved weights keep, the rest staying at the parent's "
             "(default {default}; 1: the trained weights as they are)")
    # confidence (paired bootstrap over dev clips) with which an earlier evaluation must
    # beat the newest weights on the dev split to be kept instead; 0: the lowest dev WER
    dev_confidence: float = setting(
        0.95, flag="--dev-confidence", min=0, max=0.999, metavar="P",
        help="keep the newest weights unless an earlier evaluation beats them on the dev clips with "
             "this confidence (paired bootstrap; default {default}; 0: keep the lowest dev WER)")
    # dev evaluations in a row clearly worse than the best (as above) before stopping
    patience: int = setting(3, flag="--patience", min=0,
                            help="dev evaluations in a row clearly worse than the best before stopping "
                                 "(default {default})")
    eval_every: int = 0  # optimizer steps between dev evaluations; 0: once per epoch
    dev_fraction: float = 0.15  # share of speakers (or clips) held out as the dev split
    dev_min_clips: int = 8  # the dev split is filled up to at least this many clips
    # most of the corrections the dev split may hold (earlier runs' dev groups aside): with
    # few, uneven speakers a share of speakers held out 38 % of the clips; dev clips only
    # gate, and each one held out is one the gated run does not learn from
    dev_max_fraction: float = 0.2
    # once the gate passes, train again from the parent on all corrections (dev included)
    # for the steps the gated run kept, and save those weights (the verdict is the gated run's)
    refit: bool = setting(True, flag="--no-refit",
                          help="save the gated weights as they are, without training again on all "
                               "corrections, dev clips included (refit on by default)")
    gate_margin: float = 0.0  # dev WER drop a version needs beyond its parent's to become active
    lora_rank: int = 16  # rank of the LoRA adapters
    lora_alpha: float = 32.0  # LoRA scaling numerator (the update is scaled by alpha / rank)
    save_every: int = 10  # optimizer steps between saved training states (for --resume)
    # where a run computes, not what it computes (runtime): a resumed run takes these anew
    device: str = setting("auto", flag="--device", runtime=True,
                          help="auto, cpu, cuda, cuda:N or mps (default {default})")
    threads: int = setting(0, flag="--threads", threads=True, runtime=True,  # 0: torch's default
                           help="torch CPU threads")

    def problems(self) -> list[str]:
        """Every value that cannot train, each a line naming its field (the device is
        checked where torch is at hand: :func:`earmark.train.trainer.check_config`)."""
        problems = []
        if self.mode not in MODES:
            problems.append(f"mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.epochs < 1 and self.max_steps < 1:
            problems.append("epochs must be at least 1")
        for name in ("max_steps", "patience", "eval_every", "threads"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be 0 or more (got {getattr(self, name)})")
        if self.save_every < 1 or self.dev_min_clips < 1 or self.lora_rank < 1:
            problems.append("save_every, dev_min_clips and lora_rank must be at least 1")
        if not 0 <= self.warmup_fraction < 1:
            problems.append(f"warmup_fraction must be at least 0 and below 1 (got {self.warmup_fraction})")
        if self.batch_size < 0 or self.grad_accum < 1:
            problems.append("batch_size must be 0 (chosen for the device) or more, and grad_accum at least 1")
        if not self.lr > 0:
            problems.append(f"lr must be positive (got {self.lr})")
        if not 0 <= self.dev_confidence < 1:
            problems.append(f"dev_confidence must be at least 0 and below 1 (got {self.dev_confidence})")
        if not 0 < self.dev_fraction < 1 or not 0 < self.dev_max_fraction <= 1:
            problems.append(f"dev_fraction and dev_max_fraction must be between 0 and 1 (got "
                            f"{self.dev_fraction}, {self.dev_max_fraction})")
        if self.replay_fraction < 0:
            problems.append("replay_fraction must be 0 or more")
        if self.drift_clips < 0:
            problems.append("drift_clips must be 0 or more")
        if not 0 <= self.max_drift <= 1:
            problems.append(f"max_drift must be a share from 0 to 1 (got {self.max_drift})")
        if not self.encoder_lr_scale > 0:
            problems.append(f"encoder_lr_scale must be positive (got {self.encoder_lr_scale})")
        if not 0 < self.interpolate <= 1:
            problems.append(f"interpolate must be above 0 and at most 1 (got {self.interpolate})")
        return problems


@dataclass(frozen=True)
class CostConfig:
    """An annotator's time for one clip: ``seconds_per_clip + replay_factor * duration +
    seconds_per_edit * edited words``; the defaults are a prior, to be checked against the
    seconds the review app records per correction (:func:`earmark.study.cost.fit_cost`)."""

    replay_factor: float = 1.5  # the clip is heard once, parts of it again
    seconds_per_edit: float = 3.0  # per word substituted, inserted or deleted
    seconds_per_clip: float = 2.0  # open, read, save


@dataclass(frozen=True)
class BackupConfig:
    """Snapshots of a SQLite project database, kept in ``PROJECT/backups``."""

    keep: int = 10  # newest snapshots kept; older ones are deleted (0: take none)
    # while annotators save in the review app, a snapshot at most this often, minutes (so a
    # damaged file costs at most these minutes of corrections)
    review_minutes: float = 10.0

    def problems(self) -> list[str]:
        """Every value that cannot work, each a line starting with its field."""
        return _checked([
            ("keep", self.keep, self.keep >= 0, "must be 0 (no snapshots) or more"),
            ("review_minutes", self.review_minutes, self.review_minutes > 0, "must be above 0"),
        ])


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

    def problems(self) -> list[str]:
        """Every value of the audio, selection, review and backup settings that cannot
        work, each a line starting with its dotted field (decoding and fine-tuning
        settings are checked by the commands that use them)."""
        return [f"{name}.{line}" for name in ("audio", "selection", "review", "backup")
                for line in getattr(self, name).problems()]
