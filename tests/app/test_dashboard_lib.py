"""The dashboard queries: the clip table and its filters, and the dashboard's figures.

Like the review library's tests, these run on the ``handmade`` project: the figures are
bookkeeping over the database, not anything the model decides.
"""

from __future__ import annotations

import numpy as np
import pytest

from earmark.review import dashboard

from earmark.review import workflow as review


def test_search_filters_by_text_status_score_and_speaker(handmade):
    frame = dashboard.clips_frame(handmade)
    assert list(frame["status"]) == ["queued"] * 3
    assert list(frame["rank"]) == [1, 2, 3] and list(frame["score"]) == [3.0, 2.0, 1.0]
    first, second = review.next_clip(handmade, "ann#1"), review.next_clip(handmade, "bob#1")
    review.save_correction(handmade, first, "A Lien Was Filed", annotator="ann", seconds_spent=1,
                           holder="ann#1")
    found = dashboard.search_clips(handmade, text="lien was")
    assert list(found["clip"]) == [first.clip_id] and list(found["status"]) == ["corrected"]
    assert list(dashboard.search_clips(handmade, statuses=["in review"])["clip"]) == [second.clip_id]
    assert list(dashboard.search_clips(handmade, score_range=(1.5, 2.5))["clip"]) == [second.clip_id]
    speaker = dashboard.speakers(frame)[0]
    by_speaker = dashboard.search_clips(handmade, speaker=speaker)
    assert len(by_speaker) >= 1 and set(by_speaker["speaker"]) == {speaker}
    assert dashboard.search_clips(handmade, text="no such words").empty


def test_dashboard_figures(handmade):
    assert dashboard.labeled_over_time(handmade).empty
    assert dashboard.edit_rate_by_band(handmade).empty
    assert dashboard.annotator_rates(handmade).empty
    items = [review.next_clip(handmade, f"u{i}#1") for i in range(3)]
    # clip scores are 3, 2, 1: make the high-score clips need the most edits
    texts = ["totally other words here", f"hello earth{items[1].clip_id}", f"Hello, world{items[2].clip_id}!"]
    for i, (item, text) in enumerate(zip(items, texts)):
        review.save_correction(handmade, item, text, annotator="ann" if i else "bob",
                               seconds_spent=60, holder=f"u{i}#1")
    labeled = dashboard.labeled_over_time(handmade)
    assert list(labeled["clips"]) == [1, 2, 3]
    assert labeled["minutes"].iloc[-1] == pytest.approx(sum(i.duration for i in items) / 60)
    rates = dashboard.edit_rates(handmade).set_index("clip")
    assert rates.loc[items[2].clip_id, "edit_rate"] == 0  # case and punctuation are not edits
    assert rates.loc[items[1].clip_id, "edits"] == 1
    bands = dashboard.edit_rate_by_band(handmade, bands=3)
    assert list(bands["clips"]) == [1, 1, 1]
    assert bands["edit_rate"].is_monotonic_increasing and bands["low"].is_monotonic_increasing
    per_annotator = dashboard.annotator_rates(handmade).set_index("annotator")
    assert per_annotator.loc["ann", "clips"] == 2
    assert per_annotator.loc["ann", "clips_per_hour"] == pytest.approx(60)
    dist = dashboard.score_distribution(handmade)
    assert sorted(dist["score"]) == [1.0, 2.0, 3.0] and set(dist["status"]) == {"corrected"}


def test_model_wer_compares_parent_and_child_on_the_child_dev_set(handmade):
    from earmark.store.db import ModelVersion

    assert dashboard.model_wer(handmade).empty
    with handmade.store.session() as s:
        s.add(ModelVersion(name="ft-001", spec="x.pt", status="ready", record={
            "parent": {"name": "tiny.en"}, "dev_wer_before": 0.42, "dev_wer_after": 0.30,
            "dev_after": {"wer": 0.30}}))
    wer = dashboard.model_wer(handmade)
    assert list(zip(wer["model"], wer["dev_set"], wer["wer"])) == [
        ("tiny.en", "ft-001", 0.42), ("ft-001", "ft-001", 0.30)]


def test_model_versions_list_each_fine_tune_with_its_record(handmade):
    from earmark.store.db import ModelVersion

    with handmade.store.session() as s:
        s.add(ModelVersion(name="ft-001", spec="x.pt", status="rejected", record={
            "parent": {"name": "tiny.en"}, "train_clips": [1, 2, 3], "dev_wer_before": 0.42,
            "dev_wer_after": 0.45, "drift": {"clips": 100, "changed": 0.031},
            "finished_at": "2026-11-22T01:02:03+00:00"}))
    v = dashboard.model_versions(handmade).set_index("version")
    assert list(v.index) == ["ft-001", "tiny.en"]  # newest first
    assert v.loc["ft-001", ["parent", "status", "clips", "finished"]].tolist() == [
        "tiny.en", "rejected", 3, "2026-11-22 01:02"]
    assert v.loc["ft-001", ["dev_wer_before", "dev_wer_after", "forgetting"]].tolist() == [0.42, 0.45, 0.031]
    assert v.loc["tiny.en", "status"] == "active" and np.isnan(v.loc["tiny.en", "forgetting"])


@pytest.mark.parametrize("hyp, ref, expected", [
    ("Hello, World.", "hello world", (0, 2)),
    ("the cat sat", "the cat sat down", (1, 4)),
    ("", "two words", (2, 2)),
    ("stray words", "", (2, 0)),
])
def test_word_edits(hyp, ref, expected):
    assert dashboard.word_edits(hyp, ref) == expected
