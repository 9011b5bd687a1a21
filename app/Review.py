"""Review: the next clip the model is least sure of, to correct, skip or flag.

Session state holds only the annotator (and the token that tells this browser session's
leases apart), the current clip and when it was opened, the clips this session skipped,
and the message about the last action; everything that must last is written through
``earmark.review``.
"""

from __future__ import annotations

import time

import earmark_ui as ui
import streamlit as st

from earmark import review
from earmark.errors import PoolExhausted

st.set_page_config(page_title="earmark · Review", page_icon="🎧", layout="centered")
proj = ui.project()
ui.header(proj)
name = ui.annotator(proj)
holder = ui.holder()
ss = st.session_state
ss.setdefault("skipped", [])


def _done() -> None:
    """Forget the current clip so that the next run leases a new one."""
    ss.clip_id = None
    st.rerun()


with ui.shown_errors():
    if ss.get("clip_id") is None:
        try:
            item = review.next_clip(proj, holder, exclude=ss.skipped)
        except PoolExhausted as exc:
            st.info(str(exc))
            if ss.skipped and st.button("Show my skipped clips again", key="unskip"):
                ss.skipped = []
                st.rerun()
            st.stop()
        ss.clip_id, ss.opened_at = item.clip_id, time.time()
    else:
        item = review.open_clip(proj, ss.clip_id)
        if not review.renew(proj, item.clip_id, holder):
            st.warning("Your hold on this clip ran out and another annotator has it now. "
                       "Saving still keeps your text; theirs is kept too.")

st.markdown(ui.clip_caption(item))
ui.player(proj, item)

with st.form(f"clip-{item.clip_id}", border=False):
    text = st.text_area("Transcript", value=item.start_text, key=f"text-{item.clip_id}",
                        height=110, help="Ctrl+Enter (⌘+Enter on a Mac) saves and opens the next clip.")
    save = st.form_submit_button("Save & next", type="primary", key="save")
st.caption("**Ctrl+Enter** (⌘+Enter) in the text box saves and opens the next clip. "
           "**Skip** passes the clip to the others; **Flag** marks it as impossible to "
           "transcribe as is.")

cols = st.columns([1, 2, 2, 1], vertical_alignment="bottom")
skip = cols[0].button("Skip", key="skip", help="Not now: the clip goes back to the queue for the others.")
# keyed by clip, so a reason or note never carries over to the next clip
reason = cols[1].selectbox("Flag reason", review.FLAG_REASONS, key=f"flag_reason-{item.clip_id}")
note = cols[2].text_input("Note (optional)", key=f"flag_note-{item.clip_id}", max_chars=200)
flag = cols[3].button("Flag", key="flag")

seconds = time.time() - ss.get("opened_at", time.time())
with ui.shown_errors():
    if save:
        review.save_correction(proj, item, text, annotator=name, seconds_spent=seconds, holder=holder)
        ss.flash = f"Saved {item.name}."
        _done()
    if skip:
        review.skip(proj, item.clip_id, holder)
        ss.skipped = [*ss.skipped, item.clip_id]
        _done()
    if flag:
        review.flag(proj, item, reason, annotator=name, seconds_spent=seconds, note=note, holder=holder)
        ss.flash = f"Flagged {item.name} as {reason}."
        _done()
