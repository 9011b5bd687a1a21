"""Word and character error rates of transcripts, after Whisper's English normalizer.

Error rates are computed after Whisper's English text normalizer (so "Two, six." and
"26" compare equal), with a run of digits joined into one number, by jiwer, pooled over
clips (total errors over total reference words), as speech papers report them. The one
definition of earmark's WER: evaluation (:mod:`earmark.evaluate.metrics`, which
re-exports it) and decoding's choice of engine (:mod:`earmark.decode.autotune`) both
score with it, so it sits below every stage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache


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


@lru_cache(maxsize=1)
def _normalizer():
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize(text: str) -> str:
    """Whisper's English normalization (lower case, no punctuation, numbers as digits),
    with a run of single digits joined into one number as spelled digits already are.

    Whisper's normalizer turns "TWO FIVE NINE NINE" into "2599" but leaves a model's
    "2, 5, 9, 9" as four tokens (and "1 0" as "one 0"), so a right transcript of a read
    digit string would count one substitution and three insertions.
    """
    return " ".join(_join_digit_runs(_normalizer()(text or "").split()))


def _is_digits(token: str) -> bool:
    return token.isascii() and token.isdigit()


def _join_digit_runs(tokens: list[str]) -> list[str]:
    """Adjacent all-digit tokens as one; "one" beside a digit token is the digit 1 (the
    normalizer writes a lone "1" as "one")."""
    digit = [_is_digits(t) for t in tokens]
    digit = [d or (t == "one" and ((i > 0 and digit[i - 1]) or (i + 1 < len(tokens) and digit[i + 1])))
             for i, (t, d) in enumerate(zip(tokens, digit))]
    out: list[str] = []
    for i, t in enumerate(tokens):
        t = "1" if t == "one" and digit[i] else t
        if digit[i] and i > 0 and digit[i - 1]:
            out[-1] += t
        else:
            out.append(t)
    return out


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
