"""The Browse page: search and filters, a clip's history, and correcting it again."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from earmark.review import dashboard

from earmark.review import workflow as review
from earmark.review.reports import queue
from earmark.store.db import Correction

pytestmark = pytest.mark.slow


def browse(app_for, project):
    at = app_for(project).run()  # the main page first, as a browser would open it
    return at.switch_page("pages/2_Browse.py").run()


def listed(at) -> list[int]:
    return [int(c) for c in at.dataframe[0].value["clip"]]


def test_search_and_filters(ranked, app_for):
    frame = dashboard.clips_frame(ranked)
    at = browse(app_for, ranked)
    assert not at.exception
    assert sorted(listed(at)) == sorted(frame["clip"])
    assert at.caption[0].value == f"{len(frame)} of {len(frame)} clips"
    assert "Round 1" in at.get("progress")[0].proto.text  # progress on every page
    assert "unreviewed WER" in at.get("progress")[0].proto.text  # and where the pool stands

    word = frame["hypothesis"].iloc[0].split()[0].lower()
    at.text_input(key="q").input(word).run()
    expected = dashboard.search_clips(ranked, text=word)
    assert listed(at) == list(expected["clip"]) and len(expected) >= 1

    at.text_input(key="q").input("").run()
    first = queue(ranked, top=1)[0]
    review.save_correction(ranked, review.open_clip(ranked, first.clip_id), "a lien was filed",
                           annotator="ada", seconds_spent=3)
    at.multiselect(key="statuses").select("corrected").run()
    assert listed(at) == [first.clip_id]

    at.multiselect(key="statuses").unselect("corrected").run()
    speaker = dashboard.speakers(frame)[0]
    at.selectbox(key="speaker").select(speaker).run()
    assert listed(at) == list(frame.loc[frame["speaker"] == speaker, "clip"])

    at.selectbox(key="speaker").select("any").run()
    low, high = at.slider(key="score").value
    mid = (low + high) / 2
    at.slider(key="score").set_range(mid, high).run()
    assert listed(at) == list(frame.loc[frame["score"] >= mid, "clip"])

    at.text_input(key="q").input("no such words anywhere").run()
    assert at.caption[0].value.startswith("0 of") and not at.text_area


def test_open_a_clip_see_its_history_and_correct_it_again(ranked, app_for):
    target = queue(ranked, top=2)[1]
    item = review.open_clip(ranked, target.clip_id)
    review.save_correction(ranked, item, "first text", annotator="bob", seconds_spent=7)
    at = browse(app_for, ranked)
    at.selectbox(key="open_clip").select(target.clip_id).run()
    history = [m.value for m in at.markdown]
    assert any("**bob**" in m and "first text" in m for m in history)
    assert any("model **tiny.en**" in m and target.text.strip() in m for m in history)
    # no name yet: the page asks for it before the correction form
    at.text_input(key="annotator_name").input("ada")
    at.button[0].click().run()
    box = at.text_area(key=f"retext-{target.clip_id}")
    assert box.value == "first text"  # starts from the newest text
    box.input("second text")
    at.button(key="resave").click().run()
    assert not at.exception
    with ranked.store.session() as s:
        rows = s.scalars(select(Correction).where(Correction.clip_id == target.clip_id)
                         .order_by(Correction.id)).all()
    assert [(r.annotator, r.text, r.hypothesis) for r in rows] == [
        ("bob", "first text", target.text.strip()), ("ada", "second text", "first text")]
    assert "earlier ones stay in its history" in at.success[0].value
    history = [m.value for m in at.markdown]
    assert any("second text" in m for m in history) and any("first text" in m for m in history)


def test_a_correction_saved_meanwhile_is_replaced_only_on_purpose(ranked, app_for):
    target = queue(ranked, top=1)[0]
    at = browse(app_for, ranked)
    at.selectbox(key="open_clip").select(target.clip_id).run()
    at.text_input(key="annotator_name").input("ada")
    at.button[0].click().run()
    # bob saves the clip from his Review page while ada has it open here
    review.save_correction(ranked, review.open_clip(ranked, target.clip_id), "bob's text",
                           annotator="bob", seconds_spent=2)
    at.text_area(key=f"retext-{target.clip_id}").input("ada's text")
    at.button(key="resave").click().run()
    assert not at.exception and "bob saved “bob's text” at" in at.warning[0].value
    with ranked.store.session() as s:
        assert s.scalars(select(Correction.annotator)).all() == ["bob"]
    at.button(key="reoverwrite").click().run()
    assert "earlier ones stay in its history" in at.success[0].value and not at.warning
    # and she can correct her own text again at once
    at.text_area(key=f"retext-{target.clip_id}").input("ada's second text")
    at.button(key="resave").click().run()
    assert not at.warning
    with ranked.store.session() as s:
        rows = s.execute(select(Correction.annotator, Correction.text)
                         .order_by(Correction.id)).all()
    assert [tuple(r) for r in rows] == [("bob", "bob's text"), ("ada", "ada's text"),
                                        ("ada", "ada's second text")]


def test_browse_with_no_clips(tmp_path, app_for):
    from earmark.store.project import init_project

    project = init_project(tmp_path / "empty")
    at = browse(app_for, project)
    assert not at.exception and "No clips yet" in at.info[0].value


def test_the_history_shows_saved_texts_and_names_as_typed(ranked, app_for):
    target = queue(ranked, top=1)[0]
    review.save_correction(ranked, review.open_clip(ranked, target.clip_id),
                           "It costs $5 and *then* [here](http://e.example)", annotator="_bo_",
                           seconds_spent=3)
    at = browse(app_for, ranked)
    at.selectbox(key="open_clip").select(target.clip_id).run()
    entry = next(m.value for m in at.markdown if "costs" in m.value)
    assert r"**\_bo\_**" in entry
    assert r"“It costs \$5 and \*then\* \[here\](http\://e.example)”" in entry
