"""What the review editor (one component: audio, waveform and editable transcript) is
given for a clip, and what its keys do. Pure: no Streamlit here; the app mounts the
component (``earmark/app/editor_widget.py``) with :func:`editor_data`.

The editor's HTML, CSS and JavaScript live in ``editor_assets/`` beside this module and
ship with the package; nothing is built or downloaded.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import asdict, dataclass
from importlib.resources import files
from typing import Any

import numpy as np

from earmark.config import KeymapConfig, ReviewConfig
from earmark.review.waveform import peaks
from earmark.review.items import ReviewItem, Word

#: what each key does, as the ``?`` overlay lists it (the order of the overlay)
ACTIONS = {
    "play_pause": "play / pause",
    "back": "back {jump:g} s",
    "forward": "forward {jump:g} s",
    "slower": "slower (0.5× … 2×)",
    "faster": "faster",
    "replay_word": "play the word at the cursor again",
    "next_uncertain": "select the next low-confidence word and play it",
    "previous_uncertain": "select the previous low-confidence word and play it",
    "save_next": "save and open the next clip",
    "skip": "skip: the clip goes back to the others",
    "guidelines": "show / hide the project's guidelines",
    "help": "show / hide this list",
}


def asset(name: str) -> str:
    """The text of one of the editor's files (``editor.js``, ``editor.css``)."""
    return files("earmark.review").joinpath("editor_assets", name).read_text(encoding="utf-8")


def marks_shown(clip_id: int, unmarked_share: float) -> bool:
    """Whether a clip's low-confidence words are marked: False for a share
    ``unmarked_share`` of clips, chosen from the clip id alone, so a clip is always shown
    the same way, to everyone (what the with/without comparison needs)."""
    if unmarked_share <= 0:
        return True
    digest = hashlib.sha256(f"earmark-marks:{clip_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 >= unmarked_share


def _words(words: tuple[Word, ...], threshold: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for w in words:
        core = w.text.strip()
        if not core:
            continue
        # keep the model's own spacing: a piece like "-ktrak's" joins the word before it
        lead = " " if w.text[:1].isspace() and out else ""
        out.append({"t": core, "lead": lead, "s": round(w.start, 3), "e": round(w.end, 3),
                    "p": round(w.p, 3), "low": w.p < threshold})
    return out


def _spelled(words: list[dict[str, Any]]) -> str:
    return " ".join("".join(w["lead"] + w["t"] for w in words).split())


@dataclass(frozen=True)
class DraftPlace:
    """Where the editor keeps unsaved text in the browser: a ``localStorage`` key (one
    per project and annotator) and the tag (clip and newest correction shown) a draft
    must match to come back, so a text typed before someone else saved never returns
    over theirs."""

    key: str
    tag: str


def editor_data(item: ReviewItem, wav: bytes, samples: np.ndarray, *, threshold: float,
                review: ReviewConfig, marks: bool = True, draft: DraftPlace | None = None,
                guidelines: str = "", show_guidelines: bool = False,
                attempt: int = 0) -> dict[str, Any]:
    """Everything the editor shows for one clip, JSON-ready.

    Parameters
    ----------
    item
        The clip; its hypothesis words become one span each in the text when the text
        starts from the hypothesis (after an earlier correction it starts from that
        text, with the words on the waveform only).
    wav
        The clip as a WAV file (played from a ``data:`` URL).
    samples
        The clip's samples, for the waveform's peaks.
    threshold
        Words below this probability are low-confidence.
    review
        Keys, autoplay, jump and keep-alive intervals.
    marks
        Whether to mark the low-confidence words (see :func:`marks_shown`).
    draft
        Where to keep unsaved text (None: nowhere).
    guidelines
        The project's guidelines (Markdown, shown as text in the overlay).
    show_guidelines
        Open the guidelines overlay at once (an annotator's first clip).
    attempt
        Bumped after a refused save, so that the editor lets the annotator save again.
    """
    words = _words(item.words, threshold)
    spans = words if words and _spelled(words) == " ".join(item.start_text.split()) else []
    keys: KeymapConfig = review.keys
    return {
        "clip": item.clip_id,
        "tag": f"{item.clip_id}:{item.seen_correction_id}",
        "duration": round(item.duration, 3),
        "audio": "data:audio/wav;base64," + base64.b64encode(wav).decode("ascii"),
        "peaks": peaks(samples),
        "words": spans,  # the text's spans (empty: the text is plain)
        "wave_words": words,  # the waveform always shows the hypothesis's words
        "text": item.start_text,
        "threshold": threshold,
        "marks": bool(marks),
        "keys": {a: list(v) for a, v in asdict(keys).items()},
        "labels": {a: label.format(jump=review.jump_seconds) for a, label in ACTIONS.items()},
        "autoplay": review.autoplay,
        "jump": review.jump_seconds,
        "keepalive": review.keepalive_seconds,
        "draft": asdict(draft) if draft else None,
        "guidelines": guidelines,
        "show_guidelines": show_guidelines,
        "attempt": attempt,
    }
