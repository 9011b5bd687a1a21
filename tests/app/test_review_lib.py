"""The review library: leases, append-only corrections, rounds, history, locked databases.

These run on the ``handmade`` project (transcripts written by the fixture), because the
logic under test is bookkeeping in the database, not anything the model decides.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

from earmark.review import leases
from earmark.review import workflow as review
from earmark.errors import (
    CorrectedMeanwhile,
    DatabaseBusy,
    InvalidReview,
    NothingRanked,
    PoolExhausted,
)
from earmark.store.project import open_project
from earmark.store.db import Correction, Lease, Round, utcnow


def expire_leases(project) -> None:
    """Make every lease run out now (as if the annotator walked away)."""
    with project.store.session() as s:
        s.execute(update(Lease).values(expires_at=utcnow() - timedelta(seconds=1)))


def corrections(project, clip_id=None) -> list[Correction]:
    with project.store.session() as s:
        q = select(Correction).order_by(Correction.id)
        if clip_id is not None:
            q = q.where(Correction.clip_id == clip_id)
        return list(s.scalars(q))


def test_next_clip_follows_the_queue_and_leases_each_clip_to_one_session(handmade):
    a = review.next_clip(handmade, "ann#1")
    b = review.next_clip(handmade, "bob#1")
    assert (a.rank, b.rank) == (1, 2)
    assert a.hypothesis == f"hello world{a.clip_id}"
    assert [w.text.strip() for w in a.words] == ["hello", f"world{a.clip_id}"]
    # asking again keeps the clip the session holds instead of taking another
    assert review.next_clip(handmade, "ann#1").clip_id == a.clip_id
    assert review.next_clip(handmade, "cy#1").rank == 3


def test_a_reloaded_tab_gets_the_annotators_own_held_clip_back(handmade):
    a = review.next_clip(handmade, "ann#1")
    b = review.next_clip(handmade, "bob#1")
    c = review.next_clip(handmade, "cy#1")
    # ann reloads her page: a new browser session, her old tab's lease still live
    assert review.next_clip(handmade, "ann#2").clip_id == a.clip_id
    with handmade.store.session() as s:
        assert s.scalar(select(Lease.annotator).where(Lease.clip_id == a.clip_id)) == "ann#2"
    assert review.renew(handmade, a.clip_id, "ann#1") is False  # the dead tab lost it
    # her own tab's clip is not counted as held by another annotator
    with pytest.raises(PoolExhausted, match="you skipped 1; 2 are open in other annotators"):
        review.next_clip(handmade, "ann#3", exclude=[a.clip_id])
    # another name is not ann, even one that reads as a pattern matching hers
    for other in ("an#1", "a_n#1", "ann%#1"):
        with pytest.raises(PoolExhausted, match="3 are open in other annotators"):
            review.next_clip(handmade, other)
    assert a.clip_id not in (b.clip_id, c.clip_id)


def test_a_name_holding_a_hash_is_not_taken_for_another_annotators_session(handmade):
    kim, kim2, hashed = (review.holder_id(n, "t1") for n in ("kim", "kim#2", "#x"))
    assert [review.annotator_of(h) for h in (kim, kim2, hashed)] == ["kim", "kim#2", "#x"]
    assert review.annotator_of(review.holder_id("50%#", "t")) == "50%#"
    a = review.next_clip(handmade, kim)
    b = review.next_clip(handmade, kim2)  # a first clip of its session: may resume kim2's own only
    c = review.next_clip(handmade, review.holder_id("#y", "t1"))
    assert len({a.clip_id, b.clip_id, c.clip_id}) == 3
    assert review.next_clip(handmade, review.holder_id("kim", "t2")).clip_id == a.clip_id  # kim's reload
    with pytest.raises(ValueError, match="no '#'"):
        review.holder_id("kim", "t#1")


def test_a_second_open_tab_of_one_annotator_leaves_the_first_tabs_clip_alone(handmade):
    first = review.next_clip(handmade, "ann#1")
    reloaded = review.next_clip(handmade, "ann#2")  # a new tab's first clip: hers, handed back
    assert reloaded.clip_id == first.clip_id
    review.save_correction(handmade, reloaded, "saved in tab 2", annotator="ann", seconds_spent=1,
                           holder="ann#2")
    mine = review.next_clip(handmade, "ann#1", resume=False)  # tab 1 moves on after a save
    nxt = review.next_clip(handmade, "ann#2", resume=False)  # so does tab 2
    assert len({first.clip_id, mine.clip_id, nxt.clip_id}) == 3
    with pytest.raises(PoolExhausted, match="1 is open in another tab of yours"):
        review.next_clip(handmade, "ann#3", exclude=[nxt.clip_id], resume=False)


def test_expired_lease_returns_the_clip_to_the_queue(handmade):
    a = review.next_clip(handmade, "ann#1")
    assert review.next_clip(handmade, "bob#1").clip_id != a.clip_id
    expire_leases(handmade)
    assert review.next_clip(handmade, "cy#1").clip_id == a.clip_id
    assert review.renew(handmade, a.clip_id, "ann#1") is False  # cy has it now


def test_concurrent_sessions_never_get_the_same_clip(handmade):
    # each thread has its own connection pool, as separate app processes would
    projects = [open_project(handmade.root) for _ in range(6)]
    start = threading.Barrier(len(projects))
    got: dict[int, int | None] = {}

    def work(i: int) -> None:
        start.wait()
        try:
            got[i] = review.next_clip(projects[i], f"user{i}#s").clip_id
        except PoolExhausted:
            got[i] = None

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(projects))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken = [c for c in got.values() if c is not None]
    assert len(taken) == 3 and len(set(taken)) == 3  # three clips, three holders, no sharing
    with handmade.store.session() as s:
        assert len(s.scalars(select(Lease)).all()) == 3
    for p in projects:
        p.store.dispose()


def test_a_clip_saved_after_it_was_read_as_free_is_not_leased(handmade):
    item = review.next_clip(handmade, "ann#1")
    expire_leases(handmade)
    # ann saves late, while bob's session has already read the clip as free
    review.save_correction(handmade, item, "saved late", annotator="ann", seconds_spent=1)
    now = utcnow()
    with handmade.store.session() as s:
        assert leases._claim(s, item.clip_id, "bob#1", now, now + timedelta(minutes=10),
                              from_same_annotator=True) is False
        assert s.scalars(select(Lease).where(Lease.clip_id == item.clip_id)).all() == []


def test_skip_gives_the_clip_to_others_but_not_back_to_the_skipper(handmade):
    first = review.next_clip(handmade, "ann#1")
    review.skip(handmade, first.clip_id, "ann#1")
    assert review.next_clip(handmade, "ann#1", exclude=[first.clip_id]).rank == 2
    assert review.next_clip(handmade, "bob#1").clip_id == first.clip_id
    assert corrections(handmade) == []


def test_save_records_who_when_how_long_and_the_starting_hypothesis(handmade):
    item = review.next_clip(handmade, "ann#1")
    review.save_correction(handmade, item, "  hello   there ", annotator="ann", seconds_spent=12.5,
                           holder="ann#1")
    (row,) = corrections(handmade)
    assert (row.clip_id, row.text, row.flag, row.annotator) == (item.clip_id, "hello there", None, "ann")
    assert row.seconds_spent == 12.5
    assert row.transcript_id == item.transcript_id and row.hypothesis == item.hypothesis
    assert abs((utcnow() - review.as_utc(row.created_at)).total_seconds()) < 60
    with handmade.store.session() as s:
        assert s.scalars(select(Lease)).all() == []  # released with the save
    # the clip left the queue: the next session starts at rank 2
    assert review.next_clip(handmade, "bob#1").rank == 2


def test_a_save_over_another_annotators_newer_one_is_refused_until_chosen(handmade):
    ada = review.next_clip(handmade, "ada#1")
    expire_leases(handmade)
    bob = review.next_clip(handmade, "bob#1")
    assert bob.clip_id == ada.clip_id
    review.save_correction(handmade, bob, "bob's careful text", annotator="bob", seconds_spent=3,
                           holder="bob#1")
    # bob's save freed the clip, so ada's lease renews as if nothing happened ...
    assert review.renew(handmade, ada.clip_id, "ada#1") is True
    # ... but her save of the hypothesis she started from does not replace his text
    with pytest.raises(CorrectedMeanwhile, match=r"bob saved “bob's careful text” at 20\d\d-") as exc:
        review.save_correction(handmade, ada, "ada's text from the hypothesis", annotator="ada",
                               seconds_spent=4, holder="ada#1")
    with pytest.raises(CorrectedMeanwhile, match="bob saved"):
        review.flag(handmade, ada, "no speech", annotator="ada", seconds_spent=4)
    assert [c.text for c in corrections(handmade)] == ["bob's careful text"]
    # she chooses to replace it: both stay in the history, hers is the newest
    chosen = replace(ada, seen_correction_id=exc.value.newest_id)
    review.save_correction(handmade, chosen, "ada's text", annotator="ada", seconds_spent=4,
                           holder="ada#1")
    history = review.clip_history(handmade, ada.clip_id)
    assert [(e.annotator, e.text) for e in history.entries] == [
        ("bob", "bob's careful text"), ("ada", "ada's text")]
    assert history.entries[-1].hypothesis == ada.start_text  # what she really started from
    # re-correcting starts from the newest text and records that as its hypothesis
    again = review.open_clip(handmade, ada.clip_id)
    assert again.start_text == "ada's text"
    review.save_correction(handmade, again, "final text", annotator="cy", seconds_spent=1)
    rows = corrections(handmade, ada.clip_id)
    assert [r.text for r in rows] == ["bob's careful text", "ada's text", "final text"]
    assert rows[-1].hypothesis == "ada's text"


def test_a_correction_or_flag_from_browse_meanwhile_is_not_overwritten(handmade):
    ada = review.next_clip(handmade, "ada#1")
    # bob corrects the same clip from the Browse page (no lease) while ada has it open
    review.save_correction(handmade, review.open_clip(handmade, ada.clip_id), "bob's text",
                           annotator="bob", seconds_spent=2)
    with pytest.raises(CorrectedMeanwhile, match="bob saved “bob's text”"):
        review.save_correction(handmade, ada, "ada's text", annotator="ada", seconds_spent=2,
                               holder="ada#1")
    other = review.next_clip(handmade, "ada#1")
    review.flag(handmade, review.open_clip(handmade, other.clip_id), "bad audio",
                annotator="cy", seconds_spent=1)
    with pytest.raises(CorrectedMeanwhile, match="cy flagged it as 'bad audio' at"):
        review.save_correction(handmade, other, "ada's text", annotator="ada", seconds_spent=2)
    assert [c.annotator for c in corrections(handmade)] == ["bob", "cy"]


def test_reading_a_clip_as_first_seen_keeps_the_starting_text(handmade):
    ada = review.next_clip(handmade, "ada#1")
    assert ada.seen_correction_id == 0
    review.save_correction(handmade, review.open_clip(handmade, ada.clip_id), "bob's text",
                           annotator="bob", seconds_spent=2)
    later = review.open_clip(handmade, ada.clip_id, as_of=ada.seen_correction_id)
    assert later == ada  # a rerun of the page sees what ada first saw
    now = review.open_clip(handmade, ada.clip_id)
    assert now.start_text == "bob's text" and now.seen_correction_id > 0


def test_annotators_recorrect_their_own_clips_freely(handmade):
    first = review.next_clip(handmade, "ada#1")
    review.save_correction(handmade, first, "one", annotator="ada", seconds_spent=1, holder="ada#1")
    # from a stale page of hers, and from a fresh read (the Browse page)
    review.save_correction(handmade, first, "two", annotator="ada", seconds_spent=1)
    review.save_correction(handmade, review.open_clip(handmade, first.clip_id), "three",
                           annotator="ada", seconds_spent=1)
    review.flag(handmade, first, "other", annotator="ada", seconds_spent=1, note="music")
    assert [c.text for c in corrections(handmade)] == ["one", "two", "three", None]


def test_a_text_too_long_for_the_clip_is_refused(handmade):
    item = review.next_clip(handmade, "ada#1")
    limit = review.max_words(item.duration)
    assert limit == max(20, math.ceil(8 * item.duration))
    review.save_correction(handmade, item, " ".join(["word"] * limit), annotator="ada",
                           seconds_spent=1)
    for text in (" ".join(["word"] * (limit + 1)), " ".join(["word"] * 20_000), "x" * 40 * limit):
        with pytest.raises(InvalidReview, match=rf"too long for {item.name}: .* for "
                                                rf"{item.duration:.1f} s of audio, where at most "
                                                rf"{limit} words fit"):
            review.save_correction(handmade, item, text, annotator="ada", seconds_spent=1)
    assert len(corrections(handmade)) == 1
    assert review.max_words(0.5) == 20 and review.max_words(10) == 80


def test_flag_needs_a_known_reason_and_takes_the_clip_out_of_the_queue(handmade):
    item = review.next_clip(handmade, "ann#1")
    with pytest.raises(InvalidReview, match="unknown flag reason"):
        review.flag(handmade, item, "boring", annotator="ann", seconds_spent=1)
    review.flag(handmade, item, "bad audio", annotator="ann", seconds_spent=2, note=" hum ",
                holder="ann#1")
    (row,) = corrections(handmade)
    assert (row.text, row.flag, row.note) == (None, "bad audio", "hum")
    assert review.next_clip(handmade, "ann#1").rank == 2
    assert review.round_progress(handmade).flagged == 1


def test_empty_text_or_missing_name_are_refused_with_advice(handmade):
    item = review.next_clip(handmade, "ann#1")
    with pytest.raises(InvalidReview, match="flag the clip"):
        review.save_correction(handmade, item, "   ", annotator="ann", seconds_spent=1)
    with pytest.raises(InvalidReview, match="name"):
        review.save_correction(handmade, item, "text", annotator=" ", seconds_spent=1)
    with pytest.raises(InvalidReview, match="not in the project"):
        review.open_clip(handmade, 999)
    assert corrections(handmade) == []


def test_empty_queue_explains_itself(handmade, unranked):
    with pytest.raises(NothingRanked, match="run `earmark rank"):
        review.next_clip(unranked, "ann#1")
    held = review.next_clip(handmade, "bob#1")
    skipped = review.next_clip(handmade, "ann#1")
    last = review.next_clip(handmade, "cy#1")
    with pytest.raises(PoolExhausted, match="you skipped 1; 2 are open in other annotators"):
        review.next_clip(handmade, "ann#1", exclude=[skipped.clip_id])
    for item, who in ((held, "bob"), (skipped, "ann"), (last, "cy")):
        review.save_correction(handmade, item, "done", annotator=who, seconds_spent=1,
                               holder=f"{who}#1")
    with pytest.raises(PoolExhausted, match="all clips reviewed") as exc:
        review.next_clip(handmade, "ann#1")
    assert not isinstance(exc.value, NothingRanked)


def test_round_progress_counts_this_round_against_its_budget(handmade):
    before = review.round_progress(handmade)
    assert (before.number, before.clips, before.minutes, before.model_version) == (1, 0, 0.0, "tiny.en")
    assert before.budget_minutes == handmade.config.review.round_budget_minutes
    items = [review.next_clip(handmade, f"u{i}#1") for i in range(2)]
    for i, item in enumerate(items):
        review.save_correction(handmade, item, "text", annotator=f"u{i}", seconds_spent=5,
                               holder=f"u{i}#1")
    review.save_correction(handmade, items[0], "again", annotator="u0", seconds_spent=5)
    now = review.round_progress(handmade)
    assert now.clips == 2  # a clip corrected twice counts once
    assert now.minutes == pytest.approx(sum(i.duration for i in items) / 60)
    assert 0 < now.fraction < 1
    # closing the round (the fine-tuning step does) makes the next save open round 2
    with handmade.store.session() as s:
        s.execute(update(Round).values(closed_at=utcnow()))
    assert review.round_progress(handmade).number == 2
    review.save_correction(handmade, items[1], "round two", annotator="u1", seconds_spent=5)
    assert (review.round_progress(handmade).number, review.round_progress(handmade).clips) == (2, 1)


def test_a_locked_database_is_a_domain_error(handmade):
    db = handmade.root / "earmark.db"
    # wait 0.1 s for locks instead of the store's 30 s
    event.listen(handmade.store.engine, "connect",
                 lambda conn, _: conn.execute("PRAGMA busy_timeout=100"))
    handmade.store.engine.dispose()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock, as a long `rank` chunk would
    try:
        with pytest.raises(DatabaseBusy, match="locked by another process"):
            review.next_clip(handmade, "ann#1")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert review.next_clip(handmade, "ann#1").rank == 1


def test_the_lease_is_one_conditional_statement_on_postgresql_too():
    from sqlalchemy.dialects import postgresql

    now = utcnow()
    stmt = leases._lease_stmt(postgresql.insert, 7, "ann#1", now, now + timedelta(minutes=10))
    sql = str(stmt.compile(dialect=postgresql.dialect()))
    assert "ON CONFLICT (clip_id) DO UPDATE" in sql
    assert "WHERE leases.expires_at <=" in sql and "OR leases.annotator =" in sql


def test_player_marks_low_words_by_two_cues_and_plays_word_spans():
    from earmark.review.player import SPEEDS, player_html

    words = [review.Word(" Take", 0.1, 0.4, 0.91), review.Word(" <b>&", 0.4, 0.9, 0.23),
             review.Word("-ish", 0.9, 1.2, 0.6)]
    page = player_html(b"RIFFdata", words, threshold=0.5, margin=0.15)
    assert 'src="data:audio/wav;base64,UklGRmRhdGE="' in page
    assert ('<span class="w low" id="w1" data-start="0.400" data-end="0.900" title="p=0.23">'
            '&lt;b&gt;&amp;</span>') in page
    assert 'class="w" id="w0"' in page and 'title="p=0.91"' in page
    assert "&amp;</span><span" in page  # "-ish" joins the word before it, as the model wrote
    assert ".low { color: #c62828; font-weight: 700; text-decoration: underline" in page
    assert "const MARGIN = 0.15;" in page
    assert all(f'<option value="{s:g}"' in page for s in SPEEDS) and min(SPEEDS) == 0.5 and max(SPEEDS) == 2.0
    assert "no words" in player_html(b"", [], threshold=0.5)
    assert "const DRAFT = null;" in page  # no draft asked for, none kept


def test_player_keeps_drafts_under_the_given_key_and_tag_only():
    from earmark.review.player import Draft, player_html

    page = player_html(b"", [], threshold=0.5,
                       draft=Draft(key="earmark-draft:/p</script>:ada", tag="7:3", box="Transcript"))
    assert ('const DRAFT = {"key": "earmark-draft:/p<\\/script>:ada", "tag": "7:3", '
            '"box": "Transcript"};') in page
    assert page.count("</script>") == 1  # a project path cannot end the script early
    assert '<div class="restored" id="restored" hidden>' in page


def test_review_command_refuses_a_missing_project(tmp_path, capsys):
    from earmark.cli.main import main

    assert main(["review", str(tmp_path / "nowhere")]) == 2
    assert "no earmark project here" in capsys.readouterr().err


def test_a_doubtful_hypothesis_comes_with_what_its_flags_mean(handmade):
    from earmark.store.db import TranscriptRow

    first = review.next_clip(handmade, "ann#1")
    assert first.flags == () and first.warnings == []
    with handmade.store.session() as s:
        tr = s.scalar(select(TranscriptRow).where(TranscriptRow.clip_id == first.clip_id))
        tr.scores = {**tr.scores, "flags": ["loop", "too-fast", "some-future-flag"]}
    item = review.open_clip(handmade, first.clip_id)
    assert item.flags == ("loop", "too-fast", "some-future-flag")
    # one sentence per known flag; a flag this version does not know is not shown
    assert item.warnings == [review.HYPOTHESIS_WARNINGS["loop"], review.HYPOTHESIS_WARNINGS["too-fast"]]
    assert "went into a loop" in item.warnings[0]
