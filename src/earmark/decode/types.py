"""What decoding returns, shared by every stage after it: a clip's :class:`Transcript`
with its :class:`TokenScore` and :class:`WordScore` entries."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TokenScore:
    """One decoded token.

    ``p`` is the token's probability among text tokens (Whisper's definition, used for
    word probability); ``logprob`` and ``entropy`` (nats) are over the whole vocabulary.
    """

    id: int
    text: str
    p: float
    logprob: float
    entropy: float


@dataclass(frozen=True)
class WordScore:
    """A word with its time span in the clip (seconds) and its probability."""

    word: str
    start: float
    end: float
    p: float
    n_tokens: int


@dataclass(frozen=True)
class Transcript:
    """A model's transcript of one clip with token- and word-level confidence."""

    text: str
    tokens: tuple[TokenScore, ...]
    words: tuple[WordScore, ...]
    duration: float  # seconds of audio in the clip
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    stop_reason: str  # "eot" | "max_tokens" | "repetition"
    #: mean encoder state over the clip's own frames (what diversity strategies compare);
    #: empty where the decoder was given encoder outputs computed elsewhere
    embedding: tuple[float, ...] = ()
