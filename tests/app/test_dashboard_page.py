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
                               seconds_spent=30)
    with ranked.store.session() as s:
        s.add(ModelVersion(name="ft-001", spec="x.pt", status="ready", record={
            "parent": {"name": "tiny.en"}, "dev_wer_before": 0.42, "dev_wer_after": 0.35,
            "drift": {"clips": 100, "changed": 0.031}}))
    at = dashboard(app_for, ranked)
    assert not at.exception and not at.info
    assert len(at.get("vega_lite_chart")) == 5
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
