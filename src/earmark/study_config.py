"""Settings of the two studies of the loop, ``earmark simulate`` and ``earmark study``.

They describe an experiment, not a project, so they live apart from a project's
settings in :mod:`earmark.config`, built with the same :func:`~earmark.config.setting`
metadata that drives the CLI's flags and checked in one ``problems()`` each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from earmark.config import CostConfig, setting


@dataclass(frozen=True)
class SimulateConfig:
    """The active-learning loop replayed with reference texts as the annotator (``earmark simulate``)."""

    strategies: tuple[str, ...] = setting(
        ("random", "least-confidence", "min-word-prob", "errors-per-second", "entropy", "longest-first",
         "diverse-errors-per-second"),
        flag="--strategies", listed="strategies",
        help="comma-separated names (default: every registered strategy)")
    rounds: int = setting(4, flag="--rounds", min=0,  # selection + fine-tuning rounds after round 0
                          help="rounds after the zero-shot round 0 (default {default})")
    budget_minutes: float = setting(2.0, flag="--budget", min=0, strict=True,  # audio minutes per round
                                    help="audio minutes labeled per round (default {default})")
    # repeats: each seed splits the speakers and orders random selection anew
    seeds: int = setting(3, flag="--seeds", min=1, help="repeats with different speaker splits (default {default})")
    speakers: int = setting(0, flag="--speakers", min=1,  # speakers drawn (seeded) for the study; 0: all
                            help="speakers drawn for the study (default: all)")
    test_speakers: int = setting(20, flag="--test-speakers", min=1,
                                 help="held-out test speakers (default {default})")
    dev_speakers: int = setting(10, flag="--dev-speakers", min=1, help="held-out dev speakers (default {default})")
    model: str = setting("tiny.en", flag="--model", help="Whisper model (default {default})")
    # each round fine-tunes the base model's decoder on everything labeled so far, over
    # encoder outputs computed once per clip: passes over the labeled clips
    epochs: int = setting(3, flag="--epochs", min=1, help="passes over the labeled clips per round")
    min_steps: int = 8  # at least this many steps, so the first small rounds train too
    batch_size: int = 8  # 30 s windows per fine-tuning step
    lr: float = setting(5e-5, flag="--lr", min=0, strict=True, help="decoder fine-tuning learning rate")
    batch_decode: int = 16  # clips decoded together
    context_margin_seconds: float = 1.0  # encoder positions kept past a clip's end, s
    workers: int = setting(1, flag="--workers", min=1, per_core=True,  # seeds simulated in parallel processes
                           help="seeds simulated in parallel processes, up to the CPU cores (default {default})")
    # torch threads per process; 0: torch's default (1 with workers > 1)
    threads: int = setting(0, flag="--threads", threads=True, help="torch threads per process")
    # where the model runs: "cpu" (float32 throughout, the figures recorded so far) or a
    # CUDA GPU (decoding in float16 with card-sized batches, training under autocast)
    device: str = setting("cpu", flag="--device",
                          help="cpu (default) or cuda / cuda:N: decode in half precision with a batch "
                               "sized for the card, train under autocast; one process (--workers 1) "
                               "or --ray, one GPU a task")

    def problems(self) -> list[str]:
        """What keeps a simulation from comparing strategies, each a sentence."""
        problems = []
        if "random" not in self.strategies:
            problems.append("simulate compares every strategy with 'random': add it to the strategies")
        if self.rounds < 1 or self.seeds < 1 or self.budget_minutes <= 0:
            problems.append("simulate needs rounds >= 1, seeds >= 1 and a positive budget")
        if self.device != "cpu" and self.workers > 1:
            problems.append(f"--device {self.device} runs in one process: pass --workers 1 (or --ray "
                            "for one GPU a task)")
        return problems


@dataclass(frozen=True)
class StudyConfig:
    """The review-cost study (``earmark study``): the product's decoder and scores rank a
    large pool; references stand in for corrections (:mod:`earmark.study`)."""

    strategies: tuple[str, ...] = setting(("random", "file-order", "oracle", "errors-per-second"),
                                          flag="--strategies", listed="study",
                                          help="comma-separated strategy names and oracle (default: {default})")
    seeds: int = setting(5, flag="--seeds", min=1,  # each seed its own speaker split and random order
                         help="speaker splits (default {default})")
    rounds: int = setting(5, flag="--rounds", min=0,  # 0: the review-only curves alone
                          help="rounds after the zero-shot round 0; 0: review-only curves alone (default {default})")
    screen: tuple[str, ...] = setting((), flag="--screen", listed="study",
                                      help="strategies followed in the review-only curves alone (screening)")
    budget_minutes: float = setting(3.0, flag="--budget", min=0, strict=True,
                                    help="audio minutes reviewed per round (default {default})")
    test_speakers: int = setting(20, flag="--test-speakers", min=1, help="held-out test speakers (default {default})")
    dev_speakers: int = setting(10, flag="--dev-speakers", min=0, help="held-out dev speakers (default {default})")
    speakers: int = setting(0, flag="--speakers", min=1,  # drawn (seeded) from the manifest; 0: all
                            help="speakers drawn from the manifest (default: all)")
    model: str = setting("tiny.en", flag="--model", help="Whisper model (default {default})")
    # "cheap": decoder-only training over cached encoder outputs from the base model on
    # everything labeled so far (earmark.train.pairs); "product": `finetune` with its
    # defaults in a project per (strategy, seed), gate and interpolation included
    training: str = setting("cheap", flag="--training", choices=("cheap", "product"),
                            help="cheap: decoder-only over cached encoder outputs (default); product: `finetune`")
    epochs: int = 3  # cheap path: passes over the labeled clips
    min_steps: int = 8
    batch_size: int = 8
    lr: float = 5e-5
    interpolate: float = 0.7  # cheap path: share of the trained change kept, as finetune does
    finetune_max_steps: int = setting(0, flag="--finetune-max-steps", min=0,  # 0: finetune's own schedule
                                      help="product path: cap on finetune's steps (default {default}: none)")
    calibration_min_words: int = 30  # hypothesis words of corrections before calibrating
    audit_share: float = 0.1  # audit clips drawn at random from the rest, per clip the queue reviewed
    checkpoints: tuple[float, ...] = (1.0, 3.0, 6.0, 9.0, 12.0, 15.0)  # review-only: where the estimate is checked
    bootstrap: int = 1000  # resamples for the intervals
    threads: int = setting(0, flag="--threads", threads=True, help="torch threads")
    cost: CostConfig = field(default_factory=CostConfig)

    def problems(self) -> list[str]:
        """What keeps the study from running, each a sentence (names: ``runner.check_config``)."""
        problems = []
        if "random" not in self.strategies:
            problems.append("the study compares every order with 'random': add it to --strategies")
        if self.training not in ("cheap", "product"):
            problems.append(f"--training {self.training!r}: choose one of cheap, product")
        if self.rounds < 0 or self.seeds < 1 or self.budget_minutes <= 0:
            problems.append("the study needs --rounds >= 0, --seeds >= 1 and a positive --budget")
        return problems
