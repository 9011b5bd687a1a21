"""The Dashboard page: its figures come from the library, drawn as charts."""

from __future__ import annotations

import pytest

from earmark.review import workflow as review
from earmark.review.reports import queue
from earmark.store.db import ModelVersion

pytestmark = pytest.mark.slow


def dashboard(app_for, project):
    at = app_for(project).run()
    return at.switch_page("pages/1_Dashboard.py").run()


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_before_any_review_it_shows_the_scores_and_says_what_is_missing(ranked, app_for):
    at = dashboard(app_for, ranked)
    assert not at.exception
    assert metrics(at)["Clips corrected"] == "0"
    assert metrics(at)["Clips scored"] == str(len(queue(ranked, 100)))
    assert len(at.get("vega_lite_chart")) == 1  # the score distribution
    infos = " ".join(i.value for i in at.info)
    assert "No corrections yet" in infos and "No model has been evaluated" in infos
    assert "Round 1" in at.get("progress")[0].proto.text


def test_after_reviews_every_figure_is_a_chart(ranked, app_for):
    for i, row in enumerate(queue(ranked, top=4)):
        item = review.open_clip(ranked, row.clip_id)
        review.save_correction(ranked, item, "a corrected text", annotator=("ada", "bob")[i % 2],
                               seconds_spent=30, work=review.Work(3.0, 5.0, marks_shown=i < 2))
    with ranked.store.session() as s:
        s.add(ModelVersion(name="ft-001", spec="x.pt", status="ready", record={
            "parent": {"name": "tiny.en"}, "dev_wer_before": 0.42, "dev_wer_after": 0.35,
            "drift": {"clips": 100, "changed": 0.031}}))
    at = dashboard(app_for, ranked)
    assert not at.exception and not at.info
    assert len(at.get("vega_lite_chart")) == 6
    versions = at.dataframe[0].value.set_index("version")
    assert versions.loc["ft-001", "forgetting"] == 0.031 and versions.loc["tiny.en", "status"] == "active"
    assert metrics(at)["Clips corrected"] == "4" and metrics(at)["Annotators"] == "2"


def test_corrections_without_review_times_say_so_instead_of_an_empty_rate_chart(ranked, app_for):
    for row in queue(ranked, top=2):  # saved by a script: no time the clip was open
        review.save_correction(ranked, review.open_clip(ranked, row.clip_id), "a corrected text",
                               annotator="script", seconds_spent=0)
    at = dashboard(app_for, ranked)
    assert not at.exception and metrics(at)["Annotators"] == "1"
    assert any("No review times recorded yet" in i.value for i in at.info)


def chart_specs(at) -> list[dict]:
    import json

    return [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]


def test_charts_read_as_people_read_them(ranked, app_for):
    rows = queue(ranked, top=3)
    for i, row in enumerate(rows[:2]):
        review.save_correction(ranked, review.open_clip(ranked, row.clip_id), "a corrected text",
                               annotator="ada", seconds_spent=40,
                               work=review.Work(4.0, 9.0, marks_shown=bool(i)))
    # a text pasted into the wrong clip (stored before saves were held to the clip's
    # length): far more words than the hypothesis
    from earmark.store.db import Correction

    item = review.open_clip(ranked, rows[2].clip_id)
    pasted = " ".join(["word"] * (4 * len(item.hypothesis.split()) + 6))
    with ranked.store.session() as s:
        s.add(Correction(clip_id=item.clip_id, text=pasted, annotator="bob", seconds_spent=20,
                         transcript_id=item.transcript_id, hypothesis=item.hypothesis))
    at = dashboard(app_for, ranked)
    assert not at.exception
    specs = chart_specs(at)
    text = " ".join(str(s) for s in specs)
    assert "%H:%M" in text and "%I" not in text  # 24-hour clock
    # the score histogram: a round bin step, not maxbins' odd edges
    (hist,) = [s for s in specs if s.get("encoding", {}).get("x", {}).get("bin")]
    step = hist["encoding"]["x"]["bin"]["step"]
    assert any(abs(step - m * 10 ** e) < 1e-12 for m in (1, 2, 5) for e in range(-3, 3))
    # tooltips name what they show, not the frame's column names
    for spec in specs:
        enc = spec.get("encoding") or spec.get("spec", {}).get("encoding", {})
        for tip in enc.get("tooltip", []):
            assert tip.get("title"), tip
    warns = " ".join(w.value for w in at.warning)
    assert "1 implausible correction" in warns and f"clip {rows[2].clip_id}" in warns
    # with and without marks: ada's two timed clips, one of each
    marks = [s for s in specs if "seconds of work per minute of audio" in str(s)]
    assert marks and "unmarked" in str(marks[0]) and "marked" in str(marks[0])
