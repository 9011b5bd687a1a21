"""The Review page's editor through AppTest: what the page gives it (keys, marks,
guidelines, autoplay) and what its events do (save with the diff and seconds, skip, the
keep-alive that renews the lease). The keys themselves run in a browser:
``tests/browser/test_editor_keys.py``."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from earmark.review.editor import marks_shown
from earmark.review.reports import queue
from earmark.store.db import Correction, Lease, utcnow

from _editor import editor_data, fire, save, shown_clip, skip

pytestmark = pytest.mark.slow


def set_review(project, **settings) -> None:
    path = project.root / "earmark.json"
    cfg = json.loads(path.read_text())
    cfg["review"].update(settings)
    path.write_text(json.dumps(cfg))


def test_the_editor_gets_the_projects_keys_marks_and_guidelines(ranked, app_for, sign_in):
    set_review(ranked, autoplay=True, keys={"play_pause": ["F9"]})
    (ranked.root / "guidelines.md").write_text("Write numbers as digits.\n")
    at = sign_in(app_for(ranked), "ada")
    data = editor_data(at)
    assert data["autoplay"] and data["keys"]["play_pause"] == ["F9"]
    assert data["keys"]["save_next"] == ["Ctrl+Enter"]
    assert data["guidelines"] == "Write numbers as digits.\n" and data["show_guidelines"]
    assert at.expander[0].label == "Guidelines"
    assert any("numbers as digits" in m.value for m in at.markdown)
    assert any(w["low"] for w in data["words"]) and data["marks"]
    at.run()
    assert not editor_data(at)["show_guidelines"]  # once: later clips keep it one key away
    assert "F9" in at.caption[0].value  # the page names the project's keys


def test_a_share_of_clips_is_shown_without_marks(ranked, app_for, sign_in):
    set_review(ranked, unmarked_share=0.5)
    at = sign_in(app_for(ranked), "ada")
    seen = {}
    for _ in range(len(queue(ranked, 100))):
        data = editor_data(at)
        seen[data["clip"]] = data["marks"]
        save(at, "a corrected text")
    assert seen == {c: marks_shown(c, 0.5) for c in seen} and len(set(seen.values())) == 2
    with ranked.store.session() as s:
        stored = {c.clip_id: c.marks_shown for c in s.scalars(select(Correction))}
    assert stored == seen


def test_the_editors_save_stores_the_diff_and_the_seconds(ranked, app_for, sign_in):
    at = sign_in(app_for(ranked), "ada")
    data = editor_data(at)
    words = data["text"].split()
    save(at, " ".join(["zebra", *words[1:]]), listen_s=6.5, edit_s=2.25)
    assert not at.exception and shown_clip(at) != data["clip"]
    with ranked.store.session() as s:
        row = s.scalars(select(Correction)).one()
    assert row.word_diff["replaced"] == 1 and row.word_diff["kept"] == len(words) - 1
    assert (row.listen_seconds, row.edit_seconds, row.marks_shown) == (6.5, 2.25, True)
    # a save of a clip the page no longer shows (a late event) saves nothing
    fire(at, "save", {"clip": data["clip"], "text": "late", "tag": data["tag"]})
    with ranked.store.session() as s:
        assert len(s.scalars(select(Correction)).all()) == 1


def test_the_editors_skip_and_keep_alive(ranked, app_for, sign_in):
    head = queue(ranked, top=2)
    at = sign_in(app_for(ranked), "ada")
    assert shown_clip(at) == head[0].clip_id
    # the keep-alive of an open tab renews the lease before it runs out
    with ranked.store.session() as s:
        s.execute(update(Lease).values(expires_at=utcnow() + timedelta(seconds=5)))
    fire(at, "alive", 123)
    with ranked.store.session() as s:
        lease = s.scalars(select(Lease)).one()
    assert lease.expires_at.replace(tzinfo=None) > (utcnow() + timedelta(seconds=40)).replace(tzinfo=None)
    skip(at)
    assert shown_clip(at) == head[1].clip_id
    with ranked.store.session() as s:
        assert s.scalars(select(Correction)).all() == []
        assert [lease.clip_id for lease in s.scalars(select(Lease))] == [head[1].clip_id]
