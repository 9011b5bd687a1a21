"""Packing short clips into shared 30 s windows, and giving a window's words back to
its clips.

The encoder costs the same for a 3 s clip as for a full 30 s window, so several short
clips are laid one after another, with silence between them, in one window
(:func:`pack_windows`, :func:`build_window`). After decoding, each word of the window
goes to the clip whose span holds it (:func:`owners`), and a clip left with too few
words is marked for decoding again (:func:`suspect`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from earmark.config import SAMPLE_RATE, DecodeConfig
from earmark.decode.types import WordScore

WINDOW_SECONDS = 30.0
SENTENCE_END = (".", "?", "!", "。", "？", "！")


@dataclass(frozen=True)
class Placement:
    """Where one clip lies in a window."""

    index: int  # position of the clip in the caller's list
    start: float  # seconds into the window
    duration: float


@dataclass
class Window:
    """The audio of one window and the clips laid out in it."""

    audio: np.ndarray
    placements: list[Placement]


def pack_windows(durations: Sequence[float], cfg: DecodeConfig) -> list[list[int]]:
    """Group clip indices into windows, in order, each fitting ``pack_window_seconds``.

    Without packing, or for a clip longer than the window allows, a clip gets a window
    of its own.
    """
    if not cfg.pack:
        return [[i] for i in range(len(durations))]
    groups: list[list[int]] = []
    used = cfg.pack_window_seconds + 1.0  # forces a new window for the first clip
    for i, d in enumerate(durations):
        need = d if not groups or used == 0 else d + cfg.pack_gap_seconds
        if groups and used + need <= cfg.pack_window_seconds:
            groups[-1].append(i)
            used += need
        else:
            groups.append([i])
            used = d
    return groups


def build_window(audios: Sequence[np.ndarray], group: list[int], gap: float) -> Window:
    """The clips ``group`` of ``audios`` in one window, ``gap`` seconds of silence apart."""
    pieces, placements, t = [], [], 0.0
    silence = np.zeros(int(gap * SAMPLE_RATE), dtype=np.float32)
    for k, i in enumerate(group):
        if k:
            pieces.append(silence)
            t += gap
        a = audios[i][: int(WINDOW_SECONDS * SAMPLE_RATE)]
        pieces.append(a)
        placements.append(Placement(i, t, a.size / SAMPLE_RATE))
        t += a.size / SAMPLE_RATE
    return Window(np.concatenate(pieces), placements)


def suspect(place: Placement, words: Sequence[WordScore], cfg: DecodeConfig) -> bool:
    """Whether a packed clip's words look lost or looped: none, fewer than
    ``pack_min_words_per_second`` times its duration, or more than
    ``pack_max_words_per_second`` times it (at least four words: "one two three four"
    may fill a second).

    Words that spill over a clip's edges are not suspect: the DTW times of tiny models
    often stretch a clip's first or last word into the silence next to it, and decoding
    such clips again alone made the corpus WER worse (see benchmarks/RESULTS.md).
    """
    n = len(words)
    return n < max(1.0, cfg.pack_min_words_per_second * place.duration) or (
        n > max(4.0, cfg.pack_max_words_per_second * place.duration))


def _owner(placements: Sequence[Placement], t: float) -> int:
    """Index of the placement whose span holds time ``t``, else the nearest one."""
    best, dist = 0, float("inf")
    for k, p in enumerate(placements):
        if p.start <= t <= p.start + p.duration:
            return k
        d = min(abs(t - p.start), abs(t - p.start - p.duration))
        if d < dist:
            best, dist = k, d
    return best


def owners(placements: Sequence[Placement], words: Sequence[WordScore]) -> list[int]:
    """The placement each word of a packed window belongs to.

    A word whose middle lies inside a clip's span is that clip's. A word in the silence
    between two clips (DTW often puts an utterance's last word a little late, or the
    next one's first word a little early) follows the previous word when that word
    does not end a sentence, since one clip holds one utterance and Whisper ends each
    with a full stop; otherwise it goes to the nearest clip.
    """
    owner: list[int] = []
    for i, w in enumerate(words):
        mid = (w.start + w.end) / 2
        inside = [k for k, p in enumerate(placements) if p.start <= mid <= p.start + p.duration]
        if inside:
            owner.append(inside[0])
        elif i and not words[i - 1].word.rstrip().endswith(SENTENCE_END) and mid >= placements[owner[-1]].start:
            owner.append(owner[-1])
        else:
            owner.append(_owner(placements, mid))
    return owner
