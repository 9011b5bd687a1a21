"""Which weights a run keeps, and whether a version may replace its parent: dev scores
compared (lower WER, then CER), an earlier evaluation kept only when it beats a newer
one with confidence, and the gate on the parent's dev WER.
"""

from __future__ import annotations

from typing import Any

from earmark.evaluate.metrics import prob_fewer_errors


def improves(score: dict[str, float], best: dict[str, float] | None) -> bool:
    """Whether a dev score beats the best so far: lower WER, or the same WER and lower CER.

    A dev split of a few dozen clips often ties on WER between epochs while CER, which
    counts finer, still falls; without the tie-break early stopping would keep an older,
    less trained state.
    """
    if best is None:
        return True
    return (score["wer"], score["cer"]) < (best["wer"], best["cer"])


def clearly_worse(score: dict[str, Any], best: dict[str, Any] | None,
                  confidence: float) -> tuple[bool, float]:
    """Whether the best dev evaluation so far beats ``score`` with at least ``confidence``.

    Returns the verdict and the paired-bootstrap probability that ``best`` makes fewer
    word errors on the dev clips (:func:`earmark.evaluate.metrics.prob_fewer_errors`). An
    evaluation is never worse than itself; with ``confidence`` 0 any evaluation that is
    not the best counts as worse (plain lowest-WER selection).
    """
    if best is None or score is best:
        return False, 0.0
    p = prob_fewer_errors(best["clip_errors"], score["clip_errors"])
    return p >= confidence, p


def beats_parent(wer: float, parent_wer: float, margin: float) -> bool:
    """The gate: whether a dev WER beats the parent's by more than ``margin``."""
    return wer < parent_wer - margin


def held_back(score: dict[str, Any], kept: dict[str, Any] | None, parent: dict[str, Any] | None,
              margin: float) -> bool:
    """Whether the kept weights should stay in place of newer ones that are not clearly worse.

    They do when the kept weights pass the gate and the newer ones would not: the dev
    split cannot tell the two apart, and swapping them would throw away a version the
    gate accepts for one it refuses.
    """
    if kept is None or parent is None:
        return False
    return (beats_parent(kept["wer"], parent["wer"], margin)
            and not beats_parent(score["wer"], parent["wer"], margin))


def gate_message(name: str, parent: str, before: float, after: float, n_dev: int, margin: float,
                 drift: dict[str, Any] | None = None, max_drift: float = 1.0,
                 mode: str = "full") -> tuple[bool, str]:
    """Whether the new version passes the gate, and sentences saying why.

    It must beat the active one on dev WER by more than ``margin``; where the forgetting
    check ran (``drift``), it must also change no more than ``max_drift`` of the parent's
    words on the uncorrected clips the parent was surest of.
    """
    passed = beats_parent(after, before, margin)
    clips = f"{n_dev} held-out clip{'' if n_dev == 1 else 's'}"
    if passed:
        message = (f"{name} is now the active model: dev WER {before:.3f} -> {after:.3f} "
                   f"({(before - after) / before if before else 0:.0%} lower) on {clips}")
    elif before <= max(margin, 0.0):  # nothing left to beat: no training can pass
        message = (f"{name} was kept but NOT activated: the active {parent} already makes no errors "
                   f"on the {clips} of the dev split (dev WER {before:.3f}), so no version can beat "
                   f"it there; {parent} stays active. Correct clips from the head of the queue (the "
                   "ones it finds hard): the dev split grows with the corrections")
    else:
        message = (f"{name} was kept but NOT activated: its dev WER {after:.3f} does not beat the "
                   f"active {parent}'s {before:.3f} on the same {clips}"
                   f"{f' by more than {margin:g}' if margin else ''}; {parent} stays active. "
                   "Try more corrections, a lower --lr"
                   f"{', or --mode decoder' if mode != 'decoder' else ''}")
    if drift is None:
        return passed, message
    n = drift["clips"]
    check = (f"on the {n} uncorrected clip{'' if n == 1 else 's'} {parent} was surest of, {name} changes "
             f"{drift['changed']:.1%} of {parent}'s words")
    if passed and drift["changed"] > max_drift:
        return False, (f"{name} was kept but NOT activated: its dev WER {after:.3f} beats the active "
                       f"{parent}'s {before:.3f}, but {check}, more than --max-drift {max_drift:g} "
                       f"allows (a sign of forgetting); {parent} stays active. Try --replay 0.5 or "
                       "a lower --interpolate, which keep more of what it did well")
    return passed, f"{message}. {check[0].upper()}{check[1:]} (some may be fixes; a high share is a sign of forgetting)"
