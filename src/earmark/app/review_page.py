"""Review: the next clip the model is least sure of, to correct, skip or flag, in one
editor (audio, waveform and text) where every key works while typing.

Session state holds only the annotator (and the token that tells this browser session's
leases apart), the current clip, the newest correction of it when it was taken and when
it was opened, the clips this session skipped, a save refused because someone else
saved the clip meanwhile, and the message about the last action; everything that must
last is written through ``earmark.review.workflow``.

The editor's save, skip and keep-alive arrive as callbacks, which run before the page:
a save is written and the next clip leased in the same run, so the next clip is ready
as soon as that run ends.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import earmark_ui as ui
import streamlit as st
from editor_widget import editor, event

from earmark.errors import CorrectedMeanwhile, EarmarkError, PoolExhausted, UnreadableAudio
from earmark.review import workflow as review
from earmark.review.editor import DraftPlace, editor_data, marks_shown
from earmark.review.worddiff import word_diff  # noqa: F401 - loaded before the first save needs it

proj = ui.project()
name = ui.annotator(proj)
holder = ui.holder()
ss = st.session_state
ss.setdefault("skipped", [])
ss.setdefault("attempt", 0)


def _done() -> None:
    """Forget the current clip so that the run leases a new one."""
    ss.clip_id = None
    ss.pop("conflict", None)
    ss.pop("save_error", None)


def _shown_item() -> review.ReviewItem | None:
    return review.open_clip(proj, ss.clip_id, as_of=ss.get("seen", 0)) if ss.get("clip_id") else None


def _save(payload: dict[str, Any], shown: review.ReviewItem) -> None:
    """Save the editor's text of ``shown`` with how it was worked on."""
    work = review.Work(listen_seconds=float(payload.get("listen_s", 0)),
                       edit_seconds=float(payload.get("edit_s", 0)),
                       marks_shown=bool(payload.get("marks", True)))
    try:
        review.save_correction(proj, shown, str(payload.get("text", "")), annotator=name,
                               seconds_spent=time.time() - ss.get("opened_at", time.time()),
                               holder=holder, work=work)
    except CorrectedMeanwhile as exc:
        ss.conflict = {"clip": shown.clip_id, "newest": exc.newest_id, "message": str(exc),
                       "action": "save", "payload": payload}
        ss.attempt += 1
        return
    except EarmarkError as exc:
        ss.save_error = str(exc)
        ss.attempt += 1  # the editor may save again
        return
    ss.flash = f"Saved {ui.literal(shown.name)}."
    _done()


def _on_save() -> None:
    payload = event("save")
    if isinstance(payload, dict) and payload.get("clip") == ss.get("clip_id"):
        try:
            _save(payload, _shown_item())
        except EarmarkError as exc:  # the clip could not even be read again
            ss.save_error = str(exc)
            ss.attempt += 1


def _on_skip() -> None:
    payload = event("skip")
    if isinstance(payload, dict) and payload.get("clip") == ss.get("clip_id"):
        try:
            review.skip(proj, ss.clip_id, holder)
        except EarmarkError as exc:
            ss.save_error = str(exc)
            ss.attempt += 1
            return
        ss.skipped = [*ss.skipped, ss.clip_id]
        _done()


def _on_alive() -> None:
    # the open tab's keep-alive: the lease lives as long as the tab, renewed below
    ss.alive_at = time.time()


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

elsewhere = ui.other_browsers(proj, name, event("browser"))
if elsewhere:
    st.warning(f"**{ui.literal(name)}** is also reviewing in {elsewhere} other "
               f"browser{'' if elsewhere == 1 else 's'} right now. If that is someone else, "
               "use a name of your own (**Change name** in the sidebar): every correction "
               "records who made it.", icon="👥")

st.markdown(ui.clip_caption(item))
guidelines = ui.guidelines(proj)
for warning in item.warnings:
    st.warning(warning, icon="⚠️")
if ss.get("save_error"):
    st.error(ui.literal(ss.pop("save_error")))  # its file names are the user's

audible = True
try:
    wav, samples = ui.clip_audio(item)
except UnreadableAudio as exc:
    st.error(ui.literal(exc))
    audible = False

if audible:
    cfg = proj.config
    draft = DraftPlace(key=f"earmark-draft:{proj.root.resolve()}:{name}",
                       tag=f"{item.clip_id}:{item.seen_correction_id}")
    first_visit = bool(guidelines) and not ss.get("guidelines_seen")
    ss.guidelines_seen = True
    data = editor_data(item, wav, samples, threshold=cfg.selection.low_confidence,
                       review=cfg.review, marks=marks_shown(item.clip_id, cfg.review.unmarked_share),
                       draft=draft, guidelines=guidelines, show_guidelines=first_visit,
                       attempt=ss.attempt)
    # the editor says which browser it is in while this session does not know it yet
    data["browser_known"] = bool(event("browser"))
    editor(data, on_save=_on_save, on_skip=_on_skip, on_alive=_on_alive, on_browser=_on_alive)
    keys = cfg.review.keys
    st.caption(f"**{' / '.join(keys.save_next)}** saves and opens the next clip · "
               f"**{' / '.join(keys.play_pause)}** plays and pauses · "
               f"**{' / '.join(keys.next_uncertain)}** jumps to the next low-confidence word · "
               f"**{' / '.join(keys.help)}** lists every key. **Skip** passes the clip to the "
               "others; **Flag** marks it as impossible to transcribe as is.")
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

with ui.shown_errors():
    if overwrite:
        # replacing on purpose: the annotator has now seen what the others saved
        shown = replace(item, seen_correction_id=conflict["newest"])
        if conflict["action"] == "save":
            _save(conflict["payload"], shown)
        else:
            review.flag(proj, shown, conflict["reason"], annotator=name, holder=holder,
                        seconds_spent=time.time() - ss.get("opened_at", time.time()),
                        note=conflict.get("note"))
            ss.flash = f"Flagged {ui.literal(item.name)} as {conflict['reason']}."
            _done()
        st.rerun()
    if flag:
        try:
            review.flag(proj, item, reason or "", annotator=name, holder=holder, note=note,
                        seconds_spent=time.time() - ss.get("opened_at", time.time()))
        except CorrectedMeanwhile as exc:
            ss.conflict = {"clip": item.clip_id, "newest": exc.newest_id, "message": str(exc),
                           "action": "flag", "reason": reason, "note": note}
            st.rerun()
        ss.flash = f"Flagged {ui.literal(item.name)} as {reason}."
        _done()
        st.rerun()
    if keep:
        review.release(proj, item.clip_id, holder)
        ss.flash = f"Kept the other annotator's text of {ui.literal(item.name)}."
        _done()
        st.rerun()
    if skip:
        review.skip(proj, item.clip_id, holder)
        ss.skipped = [*ss.skipped, item.clip_id]
        _done()
        st.rerun()
