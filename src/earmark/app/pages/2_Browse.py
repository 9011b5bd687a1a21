"""Browse: find any clip by text, status, score or speaker; listen to it, read its
history, and correct it again (the earlier texts stay in the history)."""

from __future__ import annotations

import time
from dataclasses import replace

import earmark_ui as ui
import streamlit as st

from earmark.review import dashboard

from earmark.review import workflow as review
from earmark.errors import CorrectedMeanwhile

st.set_page_config(page_title="earmark · Browse", page_icon="🔎", layout="wide")
proj = ui.project()
st.title("Browse")
ss = st.session_state

with ui.shown_errors():
    frame = dashboard.clips_frame(proj)
if frame.empty:
    st.info(f"No clips yet: add audio with `earmark import {proj.root} AUDIO`.")
    st.stop()

f = st.columns([3, 3, 2, 2])
query = f[0].text_input("Search text", key="q", placeholder="words in the transcript or file name")
statuses = f[1].multiselect("Status", dashboard.STATUSES, key="statuses")
speaker = f[2].selectbox("Speaker", ["any", *dashboard.speakers(frame)], key="speaker")
scored = frame["score"].dropna()
score_range = None
if len(scored) and scored.min() < scored.max():
    low, high = float(scored.min()), float(scored.max())
    chosen = f[3].slider("Score", low, high, (low, high), key="score")
    # the full range keeps clips without a score; narrowing it asks for scored clips
    score_range = None if chosen == (low, high) else chosen

rows = dashboard.filter_clips(frame, text=query, statuses=statuses, score_range=score_range,
                              speaker=None if speaker == "any" else speaker)
st.caption(f"{len(rows)} of {len(frame)} clips")
st.dataframe(rows[["clip", "name", "status", "score", "rank", "duration", "speaker", "text",
                   "annotator", "corrections"]],
             hide_index=True, width="stretch", height=280,
             column_config={"score": st.column_config.NumberColumn(format="%.2f"),
                            "duration": st.column_config.NumberColumn("dur (s)", format="%.1f")})
if rows.empty:
    st.stop()

labels = {int(r.clip): f"{r.clip} · {r.name} · {r.status}" for r in rows.itertuples()}
clip_id = st.selectbox("Open clip", list(labels), format_func=labels.get, key="open_clip")
with ui.shown_errors():
    history = review.clip_history(proj, clip_id)
if ss.get("browse_opened", (None,))[0] != clip_id:
    # the clip, when it was opened and its newest correction then, which a save checks
    # against so that it never silently replaces a text saved by someone else meanwhile
    ss.browse_opened = (clip_id, time.time(), history.item.seen_correction_id)
    ss.pop("browse_conflict", None)
_, opened_at, seen = ss.browse_opened
with ui.shown_errors():
    item = review.open_clip(proj, clip_id, as_of=seen)

st.markdown(ui.clip_caption(item))
ui.player(proj, item)  # a clip without audio still shows its history
if history.held_by:
    st.caption(f"Open in {ui.literal(history.held_by)}'s review queue right now.")
if history.reference_text:
    st.caption(f"Reference from the import manifest: {ui.literal(history.reference_text)}")

st.subheader("History")
if not history.entries:
    st.caption("Not corrected yet.")
for e in reversed(history.entries):
    what = (f"flagged **{ui.literal(e.flag)}**" + (f" ({ui.literal(e.note)})" if e.note else "")
            if e.flag else f"“{ui.literal(e.text)}”")
    rnd = f" · round {e.round_number}" if e.round_number else ""
    st.markdown(f"- {e.created_at:%Y-%m-%d %H:%M} UTC · **{ui.literal(e.annotator)}** · {what} · "
                f"{e.seconds_spent:.0f} s{rnd}")
st.caption("What the models wrote")
for model, text in history.transcripts:
    st.markdown(f"- model **{ui.literal(model)}**: “{ui.literal(text)}”")

st.subheader("Correct again")
name = ui.annotator(proj)
with st.form(f"recorrect-{clip_id}", border=False):
    text = st.text_area("Transcript", value=item.start_text, key=f"retext-{clip_id}", height=100,
                        help="Ctrl+Enter (⌘+Enter on a Mac) saves.")
    save = st.form_submit_button("Save correction", type="primary", key="resave")
st.caption("**Ctrl+Enter** (⌘+Enter) saves. The earlier texts stay in the history.")
conflict = ss.get("browse_conflict")
overwrite = False
if conflict and conflict[0] == clip_id:
    st.warning(ui.literal(conflict[2]))
    overwrite = st.button("Replace theirs with mine", key="reoverwrite", type="primary",
                          help="Your text becomes the clip's newest; theirs stays in its history.")
if save or overwrite:
    # replacing on purpose: the annotator has now seen what the others saved
    shown = replace(item, seen_correction_id=conflict[1]) if overwrite else item
    with ui.shown_errors():
        try:
            review.save_correction(proj, shown, text, annotator=name,
                                   seconds_spent=time.time() - opened_at)
        except CorrectedMeanwhile as exc:
            ss.browse_conflict = (clip_id, exc.newest_id, str(exc))
            st.rerun()
    ss.pop("browse_conflict", None)
    ss.pop("browse_opened", None)  # the next save of this clip starts from the newest
    ss.flash = f"Saved a new correction of {ui.literal(item.name)}; the earlier ones stay in its history."
    st.rerun()
