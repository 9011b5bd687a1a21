"""Review: the next clip the model is least sure of, to correct, skip or flag.

Session state holds only the annotator (and the token that tells this browser session's
leases apart), the current clip, the newest correction of it when it was taken and when
it was opened, the clips this session skipped, a save refused because someone else
saved the clip meanwhile, and the message about the last action; everything that must
last is written through ``earmark.review.workflow``.
"""

from __future__ import annotations

import time
from dataclasses import replace

import earmark_ui as ui
import streamlit as st

from earmark.review import workflow as review
from earmark.errors import CorrectedMeanwhile, PoolExhausted

st.set_page_config(page_title="earmark · Review", page_icon="🎧", layout="centered")
proj = ui.project()
ui.header(proj)
name = ui.annotator(proj)
holder = ui.holder()
ss = st.session_state
ss.setdefault("skipped", [])
BOX = "Transcript"  # the text box's label, by which the player finds it to keep drafts


def _done() -> None:
    """Forget the current clip so that the next run leases a new one."""
    ss.clip_id = None
    ss.pop("conflict", None)
    st.rerun()


with ui.shown_errors():
    if ss.get("clip_id") is None:
        try:
            # only a session's first clip may be one its annotator's other tab holds (a
            # reload's): later ones leave an open tab's clip to it
            item = review.next_clip(proj, holder, exclude=ss.skipped, resume=not ss.get("had_clip"))
        except PoolExhausted as exc:
            st.info(ui.literal(exc))
            if ss.skipped and st.button("Show my skipped clips again", key="unskip"):
                ss.skipped = []
                st.rerun()
            st.stop()
        ss.clip_id, ss.seen, ss.opened_at = item.clip_id, item.seen_correction_id, time.time()
        ss.had_clip = True
    else:
        # read as first seen: a save must still notice what others saved since
        item = review.open_clip(proj, ss.clip_id, as_of=ss.get("seen", 0))
        if not review.renew(proj, item.clip_id, holder):
            st.warning("Your hold on this clip ran out and another annotator (or another tab "
                       "of yours) has it now. If they save it first, you will see their text "
                       "before yours can replace it.")

st.markdown(ui.clip_caption(item))
audible = ui.player(proj, item, keep=ui.draft(proj, item, BOX))
for warning in item.warnings:
    st.warning(warning, icon="⚠️")

text, save = "", False
if audible:
    with st.form(f"clip-{item.clip_id}", border=False):
        text = st.text_area(BOX, value=item.start_text, key=f"text-{item.clip_id}",
                            height=110,
                            help="Ctrl+Enter (⌘+Enter on a Mac) saves and opens the next clip.")
        save = st.form_submit_button("Save & next", type="primary", key="save")
    st.caption("**Ctrl+Enter** (⌘+Enter) in the text box saves and opens the next clip. "
               "**Skip** passes the clip to the others; **Flag** marks it as impossible to "
               "transcribe as is.")
else:
    st.info("Without its audio this clip cannot be corrected: **Skip** it, or **Flag** it as "
            f"“{review.AUDIO_MISSING}” so that it leaves the queue for everyone.")

conflict = ss.get("conflict") if ss.get("conflict", {}).get("clip") == item.clip_id else None
overwrite = keep = False
if conflict:
    st.warning(ui.literal(conflict["message"]))
    c = st.columns(2)
    overwrite = c[0].button("Replace theirs with mine", key="overwrite", type="primary",
                            help="Your text becomes the clip's newest; theirs stays in its history.")
    keep = c[1].button("Keep theirs, next clip", key="keep_theirs")

cols = st.columns([1, 2, 2, 1], vertical_alignment="bottom")
skip = cols[0].button("Skip", key="skip", help="Not now: the clip goes back to the queue for the others.")
# keyed by clip, so a reason or note never carries over to the next clip; no reason is
# preselected, because a flag takes the clip out of the queue and out of the training
# data and must not be one stray click (a clip without audio is the exception: that
# reason is a fact, not a guess)
reason = cols[1].selectbox(
    "Flag reason", review.FLAG_REASONS, key=f"flag_reason-{item.clip_id}",
    index=None if audible else review.FLAG_REASONS.index(review.AUDIO_MISSING),
    placeholder="Choose a reason")
note = cols[2].text_input("Note (optional)", key=f"flag_note-{item.clip_id}", max_chars=200)
flag = cols[3].button("Flag", key="flag", disabled=reason is None,
                      help="Choose a reason first." if reason is None else
                      "The clip leaves the queue and the training data.")

seconds = time.time() - ss.get("opened_at", time.time())


def _act(action: str, shown: review.ReviewItem) -> None:
    """Save or flag ``shown``, and say so on the next clip's page."""
    if action == "save":
        review.save_correction(proj, shown, text, annotator=name, seconds_spent=seconds,
                               holder=holder)
        ss.flash = f"Saved {ui.literal(item.name)}."
    else:
        review.flag(proj, shown, reason or "", annotator=name, seconds_spent=seconds, note=note,
                    holder=holder)
        ss.flash = f"Flagged {ui.literal(item.name)} as {reason}."


with ui.shown_errors():
    action = "save" if save else "flag" if flag else conflict["action"] if overwrite else None
    if action:
        # replacing on purpose: the annotator has now seen what the others saved
        shown = replace(item, seen_correction_id=conflict["newest"]) if overwrite else item
        try:
            _act(action, shown)
        except CorrectedMeanwhile as exc:
            ss.conflict = {"clip": item.clip_id, "newest": exc.newest_id, "message": str(exc),
                           "action": action}
            st.rerun()
        _done()
    if keep:
        review.release(proj, item.clip_id, holder)
        ss.flash = f"Kept the other annotator's text of {ui.literal(item.name)}."
        _done()
    if skip:
        review.skip(proj, item.clip_id, holder)
        ss.skipped = [*ss.skipped, item.clip_id]
        _done()
