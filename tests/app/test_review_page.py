"""The Review page, driven by ``streamlit.testing.v1.AppTest`` over a project ranked by
the real tiny.en model."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from earmark.store import backup

from earmark.review import workflow as review
from earmark.review.reports import queue
from earmark.store.db import Correction, Lease, utcnow

from _support import damage

pytestmark = pytest.mark.slow


from _editor import editor_data, in_browser, save, shown_clip  # the editor's events, as the browser sends them


def all_corrections(project) -> list[Correction]:
    with project.store.session() as s:
        return list(s.scalars(select(Correction).order_by(Correction.id)))


def test_asks_the_name_once_then_shows_the_queue_in_order(ranked, app_for, sign_in):
    at = app_for(ranked).run()
    assert not at.exception
    assert at.text_input(key="annotator_name").label == "Your name"
    assert not at.get("bidi_component")  # no clip before a name
    sign_in(at, "ada")
    head = queue(ranked, top=3)
    assert shown_clip(at) == head[0].clip_id
    assert editor_data(at)["text"] == head[0].text.strip()  # pre-filled with the hypothesis
    assert head[0].name in at.markdown[0].value and "queue #1" in at.markdown[0].value
    progress = at.get("progress")[0].proto.text
    assert "Round 1" in progress and "model **tiny.en**" in progress
    assert "Ctrl+Enter" in at.caption[0].value  # the keyboard save is documented
    assert at.sidebar.markdown[0].value == "Annotating as **ada**"
    at.run()  # a rerun keeps the name and the clip
    assert shown_clip(at) == head[0].clip_id
    assert not [w for w in at.text_input if w.key == "annotator_name"]


def test_save_records_the_correction_and_opens_the_next_clip(ranked, app_for, sign_in):
    head = queue(ranked, top=2)
    at = sign_in(app_for(ranked), "ada")
    save(at, "Metoprolol was started for rate control.")
    assert not at.exception
    (row,) = all_corrections(ranked)
    assert (row.clip_id, row.annotator, row.flag) == (head[0].clip_id, "ada", None)
    assert row.text == "Metoprolol was started for rate control."
    assert row.hypothesis == head[0].text.strip() and row.transcript_id is not None
    assert row.seconds_spent > 0 and row.round_id is not None
    assert shown_clip(at) == head[1].clip_id
    assert at.success[0].value.startswith(f"Saved {head[0].name}")
    assert "1 clip corrected" in at.get("progress")[0].proto.text


def test_an_empty_correction_shows_advice_not_a_traceback(ranked, app_for, sign_in):
    at = sign_in(app_for(ranked))
    first = shown_clip(at)
    save(at, "   ")
    assert not at.exception
    assert "the correction is empty" in at.error[0].value
    assert all_corrections(ranked) == [] and shown_clip(at) == first


def test_skip_moves_on_and_gives_the_clip_to_the_next_annotator(ranked, app_for, sign_in):
    head = queue(ranked, top=2)
    ada = sign_in(app_for(ranked), "ada")
    ada.button(key="skip").click().run()
    assert shown_clip(ada) == head[1].clip_id
    ada.run()
    assert shown_clip(ada) == head[1].clip_id  # the skipped clip does not come back this session
    bob = sign_in(app_for(ranked), "bob")
    assert shown_clip(bob) == head[0].clip_id
    assert all_corrections(ranked) == []


def test_flag_with_a_reason(ranked, app_for, sign_in):
    head = queue(ranked, top=2)
    at = sign_in(app_for(ranked), "ada")
    # no reason is chosen for the annotator, and Flag waits for one: never a stray click
    assert at.selectbox(key=f"flag_reason-{head[0].clip_id}").value is None
    assert at.button(key="flag").disabled
    at.selectbox(key=f"flag_reason-{head[0].clip_id}").select("bad audio").run()
    assert not at.button(key="flag").disabled
    at.text_input(key=f"flag_note-{head[0].clip_id}").input("hum at 50 Hz")
    at.button(key="flag").click().run()
    (row,) = all_corrections(ranked)
    assert (row.clip_id, row.text, row.flag, row.note, row.annotator) == (
        head[0].clip_id, None, "bad audio", "hum at 50 Hz", "ada")
    assert shown_clip(at) == head[1].clip_id
    assert "Flagged" in at.success[0].value and "1 flagged" in at.get("progress")[0].proto.text
    assert set(at.selectbox(key=f"flag_reason-{head[1].clip_id}").options) == set(review.FLAG_REASONS)
    assert at.selectbox(key=f"flag_reason-{head[1].clip_id}").value is None


def test_two_sessions_never_get_the_same_clip_until_the_lease_runs_out(ranked, app_for, sign_in):
    head = queue(ranked, top=3)
    ada = sign_in(app_for(ranked), "ada")
    bob = sign_in(app_for(ranked), "bob")
    assert (shown_clip(ada), shown_clip(bob)) == (head[0].clip_id, head[1].clip_id)
    # ada walks away; her lease runs out and the clip goes to the next session
    with ranked.store.session() as s:
        s.execute(update(Lease).where(Lease.clip_id == head[0].clip_id)
                  .values(expires_at=utcnow() - timedelta(seconds=1)))
    cy = sign_in(app_for(ranked), "cy")
    assert shown_clip(cy) == head[0].clip_id
    # ada comes back: she is told, and saves first
    ada.run()
    assert "another annotator (or another tab of yours) has it now" in ada.warning[0].value
    save(ada, "ada's text")
    # cy's save would replace ada's unseen: she is shown it and chooses to replace it
    save(cy, "cy's text")
    assert not cy.exception and shown_clip(cy) == head[0].clip_id
    assert "ada saved “ada's text” at" in cy.warning[0].value
    cy.button(key="overwrite").click().run()
    assert shown_clip(cy) != head[0].clip_id and cy.success[0].value.startswith("Saved")
    texts = [(c.annotator, c.text) for c in all_corrections(ranked) if c.clip_id == head[0].clip_id]
    assert texts == [("ada", "ada's text"), ("cy", "cy's text")]


def expire(project, clip_id) -> None:
    with project.store.session() as s:
        s.execute(update(Lease).where(Lease.clip_id == clip_id)
                  .values(expires_at=utcnow() - timedelta(seconds=1)))


def test_a_save_over_a_text_saved_meanwhile_asks_first(ranked, app_for, sign_in):
    head = queue(ranked, top=3)
    ada = sign_in(app_for(ranked), "ada")
    assert shown_clip(ada) == head[0].clip_id
    expire(ranked, head[0].clip_id)
    bob = sign_in(app_for(ranked), "bob")
    assert shown_clip(bob) == head[0].clip_id
    save(bob, "bob's careful text")
    # bob's save freed the clip, so ada's page renews her hold without a word ...
    ada.run()
    assert not ada.warning
    save(ada, "ada's text from the hypothesis")
    # ... but her save is refused, naming who saved what and when
    assert not ada.exception and shown_clip(ada) == head[0].clip_id
    assert "bob saved “bob's careful text” at 20" in ada.warning[0].value
    assert [c.annotator for c in all_corrections(ranked)] == ["bob"]
    ada.run()  # the choice stays on the page until she makes it
    assert "bob saved" in ada.warning[0].value
    ada.button(key="keep_theirs").click().run()
    assert shown_clip(ada) not in (head[0].clip_id,) and not ada.warning
    assert "Kept the other annotator's text" in ada.success[0].value
    assert [(c.annotator, c.text) for c in all_corrections(ranked)] == [("bob", "bob's careful text")]
    # a flag after someone else's save asks too
    mine = shown_clip(ada)
    review.save_correction(ranked, review.open_clip(ranked, mine), "cy's text", annotator="cy",
                           seconds_spent=1)
    ada.selectbox(key=f"flag_reason-{mine}").select("no speech").run()
    ada.button(key="flag").click().run()
    assert "cy saved “cy's text”" in ada.warning[0].value
    ada.button(key="overwrite").click().run()
    assert [(c.annotator, c.flag) for c in all_corrections(ranked) if c.clip_id == mine] == [
        ("cy", None), ("ada", "no speech")]
    assert "Flagged" in ada.success[0].value


def test_a_text_too_long_for_the_clip_is_refused_on_the_page(ranked, app_for, sign_in):
    at = sign_in(app_for(ranked))
    first = shown_clip(at)
    save(at, " ".join(["word"] * 20_000))
    assert not at.exception and "the correction is too long" in at.error[0].value
    assert all_corrections(ranked) == [] and shown_clip(at) == first


def test_a_clip_whose_audio_is_gone_can_be_skipped_or_flagged(ranked, app_for, sign_in):
    head = queue(ranked, top=3)
    review.open_clip(ranked, head[0].clip_id).audio_path.unlink()
    ada = sign_in(app_for(ranked), "ada")
    assert not ada.exception
    assert "stored clip is missing" in ada.error[0].value
    assert ada.selectbox(key=f"flag_reason-{head[0].clip_id}")
    assert not ada.get("bidi_component")  # nothing to correct without the audio
    ada.button(key="skip").click().run()
    assert shown_clip(ada) == head[1].clip_id and not ada.error
    bob = sign_in(app_for(ranked), "bob")
    assert "stored clip is missing" in bob.error[0].value
    assert bob.selectbox(key=f"flag_reason-{head[0].clip_id}").value == review.AUDIO_MISSING
    bob.button(key="flag").click().run()
    (row,) = all_corrections(ranked)
    assert (row.clip_id, row.flag, row.annotator) == (head[0].clip_id, review.AUDIO_MISSING, "bob")
    assert not bob.error and shown_clip(bob) == head[2].clip_id  # the queue goes on


def test_a_reload_keeps_the_name_and_the_clip(ranked, app_for, sign_in):
    head = queue(ranked, top=3)
    ada = sign_in(app_for(ranked), "ada")
    assert ada.query_params["annotator"] == "ada"
    bob = sign_in(app_for(ranked), "bob")
    assert (shown_clip(ada), shown_clip(bob)) == (head[0].clip_id, head[1].clip_id)
    # the reload: a new browser session on the same URL
    again = app_for(ranked)
    again.query_params = dict(ada.query_params)
    again.run()
    assert not again.exception
    assert not [w for w in again.text_input if w.key == "annotator_name"]
    assert again.sidebar.markdown[0].value == "Annotating as **ada**"
    assert shown_clip(again) == head[0].clip_id  # her clip, not the next one
    save(again, editor_data(again)["text"])
    assert [(c.clip_id, c.annotator) for c in all_corrections(ranked)] == [(head[0].clip_id, "ada")]
    # signing out forgets the name in the URL too
    again.button(key="sign_out").click().run()
    assert "annotator" not in again.query_params


def test_when_every_clip_is_reviewed_the_page_says_so(ranked, app_for, sign_in):
    for i, row in enumerate(queue(ranked, top=100)):
        item = review.open_clip(ranked, row.clip_id)
        review.save_correction(ranked, item, f"text {i}", annotator="bot", seconds_spent=1)
    at = sign_in(app_for(ranked))
    assert not at.exception and not at.get("bidi_component")
    assert "all clips reviewed" in at.info[0].value


def test_skipped_clips_can_be_shown_again_when_nothing_else_is_left(ranked, app_for, sign_in):
    rows = queue(ranked, top=100)
    for row in rows[1:]:
        review.save_correction(ranked, review.open_clip(ranked, row.clip_id), "done",
                               annotator="bot", seconds_spent=1)
    at = sign_in(app_for(ranked))
    at.button(key="skip").click().run()
    assert "you skipped 1" in at.info[0].value
    at.button(key="unskip").click().run()
    assert shown_clip(at) == rows[0].clip_id


def test_a_project_with_nothing_ranked_says_what_to_run(unranked, app_for, sign_in):
    at = sign_in(app_for(unranked))
    assert not at.exception
    assert "nothing ranked yet" in at.info[0].value and "earmark rank" in at.info[0].value


def test_a_damaged_database_is_a_message_that_names_the_snapshot(ranked, app_for, sign_in):
    snap = backup.take(ranked, "review")
    damage(ranked, "clips")
    at = sign_in(app_for(ranked), "ada")
    assert not at.exception and not at.get("bidi_component")
    message = at.error[0].value.replace("\\", "")  # Markdown's escapes off: the text as shown
    assert "the project database is damaged" in message
    assert f"earmark restore {ranked.root}" in message and snap.name in message


def test_a_missing_project_is_a_clear_message(tmp_path, app_for):
    at = app_for(tmp_path / "nowhere").run()
    assert not at.exception
    assert "no earmark project here" in at.error[0].value


def test_no_project_given_is_a_clear_message(app_for, monkeypatch):
    at = app_for("unused")
    monkeypatch.delenv(review.PROJECT_ENV)
    at.run()
    assert not at.exception and "earmark review PROJECT" in at.error[0].value


def test_change_name_releases_the_clip(ranked, app_for, sign_in):
    at = sign_in(app_for(ranked), "ada")
    at.button(key="sign_out").click().run()
    assert at.text_input(key="annotator_name").label == "Your name" and not at.get("bidi_component")
    with ranked.store.session() as s:
        assert s.scalars(select(Lease)).all() == []


def test_a_looped_hypothesis_is_shown_with_a_warning(ranked, app_for, sign_in):
    from earmark.store.db import TranscriptRow

    head = queue(ranked, top=1)[0]
    at = sign_in(app_for(ranked))
    assert not at.warning  # tiny.en's transcripts of the shipped clips carry no flag
    with ranked.store.session() as s:
        tr = s.scalar(select(TranscriptRow).where(TranscriptRow.clip_id == head.clip_id))
        tr.scores = {**tr.scores, "flags": ["loop"]}
    at.run()
    assert not at.exception and shown_clip(at) == head.clip_id
    assert [w.value for w in at.warning] == [review.HYPOTHESIS_WARNINGS["loop"]]


def test_a_name_or_text_is_shown_as_typed_not_as_markdown(ranked, app_for, sign_in):
    at = sign_in(app_for(ranked), "**kim** [site](http://e.example) $5")
    assert at.sidebar.markdown[0].value == r"Annotating as **\*\*kim\*\* \[site\](http\://e.example) \$5**"
    with ranked.store.session() as s:
        assert s.scalar(select(Lease.annotator)).startswith("**kim** [site](http://e.example) $5#")


def test_an_empty_name_is_asked_for_again_with_a_message(ranked, app_for, sign_in):
    at = sign_in(app_for(ranked), "   ")
    assert not at.get("bidi_component") and "Enter your name first" in at.warning[0].value


def test_change_name_gives_the_next_person_a_fresh_start(ranked, app_for, sign_in):
    head = queue(ranked, top=2)
    at = sign_in(app_for(ranked), "sam")
    at.button(key="skip").click().run()
    assert shown_clip(at) == head[1].clip_id
    at.button(key="sign_out").click().run()
    at.text_input(key="annotator_name").input("tess")
    at.button[0].click().run()
    assert shown_clip(at) == head[0].clip_id  # sam's skip is not hers


def test_two_open_tabs_of_one_annotator_do_not_keep_taking_each_others_clip(ranked, app_for, sign_in):
    head = queue(ranked, top=3)
    tab1 = sign_in(app_for(ranked), "ada")
    tab2 = app_for(ranked)
    tab2.query_params = dict(tab1.query_params)
    tab2.run()
    assert shown_clip(tab2) == head[0].clip_id  # a new tab (or a reload) resumes her clip
    save(tab2, editor_data(tab2)["text"])
    assert shown_clip(tab2) == head[1].clip_id
    save(tab1, editor_data(tab1)["text"])  # her own clip again: no conflict with herself
    assert not tab1.exception and shown_clip(tab1) == head[2].clip_id  # not tab 2's clip
    tab2.run()
    assert shown_clip(tab2) == head[1].clip_id and not tab2.warning


def also(at) -> list[str]:
    """The page's warnings that its name is open in another browser."""
    return [w.value for w in at.warning if "also reviewing" in w.value]


def test_two_browsers_under_one_name_are_told_so(ranked, app_for, sign_in):
    tab1 = in_browser(sign_in(app_for(ranked), "ada"), "laptop")
    tab2 = app_for(ranked)
    tab2.query_params = dict(tab1.query_params)
    in_browser(tab2.run(), "laptop")  # another tab of the same browser: the same person
    assert not also(tab2) and not also(tab1.run())
    other = app_for(ranked)
    other.query_params = dict(tab1.query_params)
    in_browser(other.run(), "desk-pc")  # another browser under the same name
    assert "**ada** is also reviewing in 1 other browser right now" in also(other)[0]
    assert "also reviewing in 1 other browser" in also(in_browser(tab1, "laptop"))[0]
    # someone else's name is no concern of hers
    bob = in_browser(sign_in(app_for(ranked), "bob"), "desk-pc")
    assert not also(bob)
