"""What a correction did to the model's hypothesis, word by word.

Stored with every correction (``corrections.word_diff``), it says which hypothesis words
the annotator kept, replaced or deleted and which words they inserted: what a
calibration of word confidence (was a word of probability p kept?) and a cost model of
annotator time need, without aligning the texts again later. Pure: strings in, a dict
out.
"""

from __future__ import annotations

import re
from typing import Any

import jiwer

#: jiwer's names of an alignment chunk -> what it means for the hypothesis
_OPS = {"equal": "kept", "substitute": "replaced", "delete": "deleted", "insert": "inserted"}


def _key(word: str) -> str:
    """A word as it is compared: case and surrounding punctuation do not make an edit."""
    core = re.sub(r"^\W+|\W+$", "", word.lower())
    return core or word.lower()


def word_diff(hypothesis: str, text: str) -> dict[str, Any]:
    """The word-level diff of ``text`` (the correction) against ``hypothesis``.

    Words are split at whitespace and compared without case or the punctuation around
    them ("Hello," keeps "hello").

    Parameters
    ----------
    hypothesis
        The model's text the annotator started from.
    text
        The corrected text.

    Returns
    -------
    dict
        ``ops``: the alignment as a list of chunks ``{"op", "hyp": [i, j], "text": [k, l]}``
        in order, where ``op`` is ``kept``, ``replaced``, ``deleted`` (hypothesis words
        ``i:j`` are gone) or ``inserted`` (text words ``k:l`` are new), and the index
        pairs are half-open ranges into ``hypothesis.split()`` and ``text.split()``;
        ``kept``, ``replaced``, ``deleted``, ``inserted``: word counts (``replaced`` and
        ``deleted`` in hypothesis words, ``inserted`` in text words); ``hyp_words`` and
        ``text_words``: the lengths.
    """
    hyp, new = hypothesis.split(), text.split()
    counts = {"kept": 0, "replaced": 0, "deleted": 0, "inserted": 0}
    ops: list[dict[str, Any]] = []
    if not hyp or not new:  # jiwer refuses an empty side; the diff is then all one op
        if hyp:
            ops.append({"op": "deleted", "hyp": [0, len(hyp)], "text": [0, 0]})
            counts["deleted"] = len(hyp)
        if new:
            ops.append({"op": "inserted", "hyp": [0, 0], "text": [0, len(new)]})
            counts["inserted"] = len(new)
    else:
        out = jiwer.process_words(" ".join(map(_key, hyp)), " ".join(map(_key, new)))
        for chunk in out.alignments[0]:
            op = _OPS[chunk.type]
            ops.append({"op": op, "hyp": [chunk.ref_start_idx, chunk.ref_end_idx],
                        "text": [chunk.hyp_start_idx, chunk.hyp_end_idx]})
            counts[op] += (chunk.hyp_end_idx - chunk.hyp_start_idx if op == "inserted"
                           else chunk.ref_end_idx - chunk.ref_start_idx)
    return {"ops": ops, **counts, "hyp_words": len(hyp), "text_words": len(new)}


def kept_words(diff: dict[str, Any]) -> list[bool]:
    """Per hypothesis word, whether the correction kept it (for confidence calibration)."""
    kept = [False] * int(diff.get("hyp_words", 0))
    for op in diff.get("ops", []):
        if op["op"] == "kept":
            for i in range(*op["hyp"]):
                kept[i] = True
    return kept
