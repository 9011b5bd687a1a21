"""Widgets every page of the review app shares: the project, errors, the annotator,
the round's progress and the clip player. All work goes through ``earmark.review.workflow`` and
``earmark.review.dashboard``.

``streamlit run app/Review.py`` puts this folder on ``sys.path``, so pages import this
module by name.
"""

from __future__ import annotations

import io
import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import soundfile as sf
import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from earmark.audio import read_clip
from earmark.config import SAMPLE_RATE
from earmark.review import workflow as review
from earmark.errors import EarmarkError, UnreadableAudio
from earmark.review.pace import Presence, round_pace
from earmark.review.player import Draft, player_html
from earmark.store.project import Project, open_project


def literal(text: object) -> str:
    """``text`` escaped for Streamlit's Markdown, so that it shows as typed.

    Names, transcripts, notes and file names come from people: ``**x**``, ``[a](url)`` or
    ``$5 and $10`` would otherwise be shown bold, as a link, or as a formula.
    """
    # the characters that act inside a line (the text is never a line's start);
    # ":" for Streamlit's ":emoji:" and ":red[...]", "$" for its formulas
    return re.sub(r"([\\`*_{}\[\]<>$~|:&])", r"\\\1", str(text))


@contextmanager
def shown_errors() -> Iterator[None]:
    """Show an earmark error as a message and stop the page: never a traceback."""
    try:
        yield
    except EarmarkError as exc:
        st.error(literal(exc))  # its file names are the user's: shown as typed, never as Markdown
        st.stop()
    except SQLAlchemyError as exc:  # a database fault earmark did not foresee
        st.error(f"The project database failed: {literal(getattr(exc, 'orig', exc))}")
        st.stop()


# the open project (an engine and its connection pool) is the one shared resource
@st.cache_resource(show_spinner=False)
def _open(root: str) -> Project:
    return open_project(root)


def project() -> Project:
    """The project named by ``earmark review`` (through the environment)."""
    root = os.environ.get(review.PROJECT_ENV, "")
    if not root:
        st.error("No project given: start the app with `earmark review PROJECT`.")
        st.stop()
    with shown_errors():
        return _open(root)


# the team's pace moves slowly: read it once a minute, not on every keep-alive and save
@st.cache_data(ttl=60, show_spinner=False)
def _pace(root: str) -> Any:
    return round_pace(_open(root))


# the estimate refits a calibration over every correction: once a minute is enough
@st.cache_data(ttl=60, show_spinner=False)
def _standing(root: str) -> str:
    from earmark.review.stopping import standing

    st_ = standing(_open(root))
    return f" · {st_.short()}" if st_ is not None else ""


def header(proj: Project) -> None:
    """The round's progress against its budget and the active model (every page), and
    the message about the last action, if any."""
    with shown_errors():
        p = review.round_progress(proj)
        pace = _pace(str(proj.root))
        where = _standing(str(proj.root))
    flagged = f", {p.flagged} flagged" if p.flagged else ""
    clips = f"{p.clips} clip{'' if p.clips == 1 else 's'}"
    left = (f" · about {pace.minutes_left:.0f} min of work left at the team's pace "
            f"({pace.seconds_per_audio_second:.1f} s per second of audio)"
            if pace.minutes_left is not None and p.fraction < 1 else "")
    st.progress(p.fraction, text=f"**Round {p.number}**: {clips} corrected{flagged}, "
                                 f"{p.minutes:.1f} of {p.budget_minutes:g} min of audio{left} · "
                                 f"model **{literal(p.model_version or 'none')}**{literal(where)}")
    if st.session_state.get("flash"):
        st.success(st.session_state.pop("flash"))


#: the URL query parameter that keeps the annotator's name over a reload
NAME_PARAM = "annotator"


def _sign_out(proj: Project) -> None:
    ss = st.session_state
    if ss.get("clip_id") is not None:
        review.release(proj, ss.clip_id, holder())
    # the next person starts afresh: no skips, and leases of a session of their own
    for key in ("annotator", "clip_id", "seen", "opened_at", "conflict", "skipped", "had_clip",
                "lease_token", "guidelines_seen"):
        ss.pop(key, None)
    st.query_params.pop(NAME_PARAM, None)


def annotator(proj: Project) -> str:
    """The annotator's name: asked once, then kept for the browser session and in the
    page's URL (``?annotator=NAME``), so that reloading the page does not ask again.

    Stops the page until a name is given.
    """
    ss = st.session_state
    if not ss.get("annotator"):
        ss.annotator = str(st.query_params.get(NAME_PARAM, "")).strip()[:64]
    if ss.get("annotator"):
        if st.query_params.get(NAME_PARAM) != ss.annotator:
            st.query_params[NAME_PARAM] = ss.annotator
        with st.sidebar:
            st.markdown(f"Annotating as **{literal(ss.annotator)}**")
            st.button("Change name", key="sign_out", on_click=_sign_out, args=(proj,))
        return ss.annotator
    with st.form("who"):
        name = st.text_input("Your name", key="annotator_name", max_chars=64,
                             placeholder="e.g. Ada",
                             help="Recorded with every correction you save.")
        if st.form_submit_button("Start reviewing", type="primary"):
            if name.strip():
                ss.annotator = name.strip()
                st.rerun()
            st.warning("Enter your name first: it is recorded with every correction you save.")
    st.stop()


def holder() -> str:
    """This browser session's lease holder id (the name plus a per-session token)."""
    ss = st.session_state
    if "lease_token" not in ss:
        ss.lease_token = uuid.uuid4().hex[:8]
    return review.holder_id(ss.annotator, ss.lease_token)


def draft(proj: Project, item: review.ReviewItem, box: str) -> Draft:
    """Where the player keeps what this annotator types into the box labelled ``box``
    for ``item``: in this browser, per project and annotator, tied to the clip and to
    the newest correction shown with it."""
    return Draft(key=f"earmark-draft:{proj.root.resolve()}:{st.session_state.annotator}",
                 tag=f"{item.clip_id}:{item.seen_correction_id}", box=box)


def player(proj: Project, item: review.ReviewItem, keep: Draft | None = None) -> bool:
    """Audio with speed and replay, and the hypothesis with clickable, coloured words;
    with ``keep``, the text typed for the clip survives a reload (see
    :class:`earmark.review.player.Draft`).

    Returns False, after saying why, when the clip's stored audio cannot be read: the
    page goes on, so that the clip can still be skipped or flagged.
    """
    with shown_errors():
        try:
            wav = review.clip_wav(item)
        except UnreadableAudio as exc:
            st.error(literal(exc))
            return False
    # an iframe: its script runs, and it sizes itself to the words it shows
    st.iframe(player_html(wav, item.words, proj.config.selection.low_confidence, draft=keep),
              height="content", alt=f"Player and hypothesis of {item.name}")
    return True


def clip_caption(item: review.ReviewItem) -> str:
    """One line about a clip: name, length, queue place, score, speaker, model."""
    bits = [f"**{literal(item.name)}**", f"{item.duration:.1f} s"]
    if item.rank is not None:
        bits.append(f"queue #{item.rank}")
    if item.score is not None:
        bits.append(f"score {item.score:.2f}")
    if item.speaker:
        bits.append(f"speaker {literal(item.speaker)}")
    if item.model_version:
        bits.append(f"hypothesis by {literal(item.model_version)}")
    return " · ".join(bits)


#: the project's guidelines for annotators, in its folder
GUIDELINES_FILE = "guidelines.md"


def guidelines(proj: Project) -> str:
    """The project's ``guidelines.md`` in an expander, open on an annotator's first clip
    (the editor shows it too, one key away); "" when the project has none."""
    path = proj.root / GUIDELINES_FILE
    try:
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
    except (OSError, UnicodeDecodeError) as exc:
        st.warning(f"{literal(path)}: cannot read the guidelines ({literal(exc)}); save it as UTF-8 text.")
        return ""
    if text.strip():
        with st.expander("Guidelines", expanded=not st.session_state.get("guidelines_seen"),
                         icon=":material/menu_book:"):
            st.markdown(text)
    return text


def clip_audio(item: review.ReviewItem) -> tuple[bytes, np.ndarray]:
    """The clip as a WAV file and as samples (for the waveform), read once.

    Raises
    ------
    UnreadableAudio
        The stored audio file is missing or unreadable.
    """
    samples = read_clip(item.audio_path)
    buf = io.BytesIO()
    sf.write(buf, samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return buf.getvalue(), samples


@st.cache_resource(show_spinner=False)
def _presence(root: str) -> Any:
    # a browser that stopped reporting is gone after three missed keep-alives
    return Presence(window=3 * _open(root).config.review.keepalive_seconds)


def other_browsers(proj: Project, name: str, browser: str | None) -> int:
    """How many other browsers show ``name``'s Review page now (0 before this browser
    said which it is)."""
    if not browser:
        return 0
    return _presence(str(proj.root)).visit(name, str(browser), time.time())
