"""The review editor's library side: the word diff stored with a correction, the
waveform, the marks' share, what the editor is given, its keymap in earmark.json, the
schema migration that adds the new columns, the team's pace and the browsers under one
name. No model and no browser."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from sqlalchemy import select

from earmark.config import KeymapConfig, ProjectConfig, ReviewConfig
from earmark.review import workflow as review
from earmark.review.charts import implausible, readable_step
from earmark.review.editor import ACTIONS, DraftPlace, editor_data, marks_shown
from earmark.review.pace import Presence, round_pace, work_with_and_without_marks
from earmark.review.waveform import peaks
from earmark.review.worddiff import kept_words, word_diff
from earmark.store.db import SCHEMA_VERSION, Correction, Store, schema_version, sqlite_url


def test_word_diff_names_kept_replaced_deleted_and_inserted_words():
    d = word_diff("The pharmacist flagged water in and through Canada.",
                  "the pharmacist flagged warfarin and fluconazole today")
    assert (d["hyp_words"], d["text_words"]) == (8, 7)
    assert d["kept"] + d["replaced"] + d["deleted"] == d["hyp_words"]
    assert d["kept"] + d["replaced"] + d["inserted"] == d["text_words"]
    # case and the punctuation around a word make no edit
    assert kept_words(d)[:3] == [True, True, True] and kept_words(d)[5] is True  # "and"
    assert d["ops"][0] == {"op": "kept", "hyp": [0, 3], "text": [0, 3]}
    assert {op["op"] for op in d["ops"]} >= {"kept", "replaced"}
    assert word_diff("a b", "a b")["kept"] == 2 and word_diff("a b", "a b")["ops"][0]["op"] == "kept"
    assert word_diff("", "new words")["inserted"] == 2
    assert word_diff("old words", "")["deleted"] == 2


def test_peaks_scale_to_the_loudest_sample_and_keep_the_shape():
    x = np.concatenate([np.zeros(1000), 0.5 * np.sin(np.arange(1000)), np.zeros(1000)]).astype(np.float32)
    p = peaks(x, columns=30)
    assert len(p) == 30 and all(lo <= hi for lo, hi in p)
    assert max(hi for _, hi in p) == pytest.approx(1.0, abs=1e-3)
    assert p[0] == [0.0, 0.0] and p[-1] == [0.0, 0.0] and p[15][1] > 0.5
    assert peaks(np.zeros(10), 5) == [[0.0, 0.0]] * 5 and peaks(np.zeros(0)) == []


def test_marks_are_off_for_the_configured_share_of_clips_and_always_the_same_clips():
    shown = [marks_shown(c, 0.3) for c in range(2000)]
    assert 0.25 < 1 - sum(shown) / len(shown) < 0.35
    assert shown == [marks_shown(c, 0.3) for c in range(2000)]
    assert all(marks_shown(c, 0.0) for c in range(100))
    assert not any(marks_shown(c, 1.0) for c in range(100))


def item(text: str = "hello world", start: str | None = None) -> review.ReviewItem:
    words = (review.Word(" hello", 0.1, 0.5, 0.9), review.Word(" world", 0.5, 1.0, 0.2))
    return review.ReviewItem(clip_id=7, name="a.wav", duration=1.5, speaker=None, audio_path=None,
                             rank=1, score=1.0, model_version="tiny.en", transcript_id=1,
                             hypothesis=text, words=words,
                             start_text=text if start is None else start, seen_correction_id=3)


def test_editor_data_carries_the_words_marks_keys_and_timing():
    cfg = ReviewConfig(autoplay=True, keys=KeymapConfig(play_pause=("F9",)))
    d = editor_data(item(), b"RIFF", np.zeros(16000, np.float32), threshold=0.5, review=cfg,
                    draft=DraftPlace("k", "7:3"), guidelines="# Rules")
    json.dumps(d)  # what the component is given is JSON
    assert d["tag"] == "7:3" and d["audio"].startswith("data:audio/wav;base64,")
    assert [(w["t"], w["low"]) for w in d["words"]] == [("hello", False), ("world", True)]
    assert d["words"][1]["lead"] == " " and d["words"][0]["lead"] == ""
    assert d["keys"]["play_pause"] == ["F9"] and set(d["keys"]) == set(ACTIONS) == set(d["labels"])
    assert d["autoplay"] and d["keepalive"] == cfg.keepalive_seconds and d["guidelines"] == "# Rules"
    assert d["labels"]["back"] == "back 2 s"
    # a text that starts from an earlier correction has no word spans to mark
    later = editor_data(item(start="hello there"), b"", np.zeros(10), threshold=0.5, review=cfg)
    assert later["words"] == [] and later["text"] == "hello there" and len(later["wave_words"]) == 2


def test_the_keymap_and_review_settings_come_from_earmark_json(tmp_path):
    from earmark.store.project import init_project, load_config

    project = init_project(tmp_path / "p")
    path = project.root / "earmark.json"
    cfg = json.loads(path.read_text())
    cfg["review"].update({"autoplay": True, "unmarked_share": 0.25,
                          "keys": {"play_pause": ["F9", "Ctrl+Space"]}})
    path.write_text(json.dumps(cfg))
    loaded = load_config(project.root)
    assert loaded.review.keys.play_pause == ("F9", "Ctrl+Space")
    assert loaded.review.keys.save_next == KeymapConfig().save_next  # the rest keep defaults
    assert loaded.review.autoplay and loaded.review.unmarked_share == 0.25
    project.store.dispose()
    bad = ProjectConfig(review=ReviewConfig(lease_minutes=0.2, keepalive_seconds=30))
    assert any(p.startswith("review.keepalive_seconds") for p in bad.problems())
    assert any(p.startswith("review.unmarked_share")
               for p in ProjectConfig(review=ReviewConfig(unmarked_share=2)).problems())
    blank = ReviewConfig(keys=KeymapConfig(skip=("Ctrl+Shift+Enter", " ")))
    assert [p.split(" ")[0] for p in blank.problems()] == ["keys.skip"]


def test_a_database_of_schema_1_gets_the_new_correction_columns(tmp_path):
    db = tmp_path / "old.db"
    Store(sqlite_url(db)).dispose()
    with sqlite3.connect(db) as conn:  # make it what the previous release wrote
        for col in ("word_diff", "listen_seconds", "edit_seconds", "marks_shown"):
            conn.execute(f"ALTER TABLE corrections DROP COLUMN {col}")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        now = "2026-01-01 00:00:00"
        conn.execute("INSERT INTO sources (id, path, sha256, status, created_at) "
                     "VALUES (1, 'a.wav', 'x', 'ok', ?)", (now,))
        conn.execute("INSERT INTO clips (id, source_id, offset, duration, audio_path, created_at) "
                     "VALUES (1, 1, 0, 1.0, 'a.flac', ?)", (now,))
        conn.execute("INSERT INTO corrections (clip_id, text, annotator, seconds_spent, created_at) "
                     "VALUES (1, 'old text', 'ada', 3, ?)", (now,))
    store = Store(sqlite_url(db))
    assert schema_version(store.engine) == SCHEMA_VERSION == 2
    with store.session() as s:
        (old,) = s.scalars(select(Correction)).all()
        assert old.text == "old text" and old.word_diff is None and old.marks_shown is None
        s.add(Correction(clip_id=1, text="new", annotator="bob", word_diff={"kept": 1},
                         listen_seconds=1.5, edit_seconds=2.0, marks_shown=False))
    with store.session() as s:
        new = s.scalars(select(Correction).where(Correction.annotator == "bob")).one()
        assert new.word_diff == {"kept": 1} and new.marks_shown is False
    store.dispose()


def test_a_save_stores_the_diff_and_the_seconds_and_the_pace_follows(handmade):
    assert round_pace(handmade).seconds_per_audio_second is None
    first = review.next_clip(handmade, "ada#1")
    text = first.hypothesis.replace("hello", "hello there")  # one word inserted
    review.save_correction(handmade, first, text, annotator="ada", seconds_spent=12.0, holder="ada#1",
                           work=review.Work(listen_seconds=4.0, edit_seconds=3.5, marks_shown=False))
    with handmade.store.session() as s:
        row = s.scalars(select(Correction)).one()
    assert row.word_diff["inserted"] == 1 and row.word_diff["kept"] == 2
    assert (row.listen_seconds, row.edit_seconds, row.marks_shown) == (4.0, 3.5, False)
    pace = round_pace(handmade)
    assert pace.seconds_per_audio_second == pytest.approx(12.0 / first.duration)
    budget = handmade.config.review.round_budget_minutes
    assert pace.minutes_left == pytest.approx((budget - first.duration / 60) * 12.0 / first.duration)
    # a flag records no diff
    second = review.next_clip(handmade, "ada#1")
    review.flag(handmade, second, "no speech", annotator="ada", seconds_spent=2, holder="ada#1")
    with handmade.store.session() as s:
        assert s.scalars(select(Correction).where(Correction.flag.is_not(None))).one().word_diff is None
    table = work_with_and_without_marks(handmade)
    assert list(table["marks"]) == ["unmarked"] and table["clips"].tolist() == [1]
    assert table["seconds_per_audio_minute"].iloc[0] == pytest.approx(12.0 / (first.duration / 60))


def test_presence_counts_other_browsers_of_a_name_within_the_window():
    p = Presence(window=60)
    assert p.visit("ada", "laptop", 0) == 0
    assert p.visit("ada", "laptop", 5) == 0  # a reload, or another tab: the same browser
    assert p.visit("bob", "desk", 6) == 0
    assert p.visit("ada", "desk", 10) == 1 and p.visit("ada", "laptop", 20) == 1
    assert p.visit("ada", "desk", 90) == 0  # the laptop stopped reporting: gone


def test_readable_bins_and_implausible_corrections():
    import pandas as pd

    assert readable_step(0, 1) == 0.05 and readable_step(0.13, 2.71, max_bins=10) == 0.5
    assert readable_step(1, 1) == 1.0
    frame = pd.DataFrame({"words": [4, 40, 8], "hyp_words": [4, 5, 2]})
    assert implausible(frame).tolist() == [False, True, True]
