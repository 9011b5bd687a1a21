"""The queue and status as people see them, the round's queue summary, and CLI arguments."""

from __future__ import annotations

import argparse

import pytest
from sqlalchemy import select

from earmark.cli import count, number, plural, positive_float, positive_int
from earmark.reports import queue, status
from earmark.rounds import queue_change
from earmark.store import Clip, Correction, QueueEntry, Transcript


def _queue_three_clips(project, copy_samples):
    from earmark.ingest import import_audio

    import_audio(project, copy_samples(["s01.wav", "s02.wav", "s03.wav"]), progress=False)
    mv = project.store.active_model()
    with project.store.session() as s:
        ids = sorted(s.scalars(select(Clip.id)))
        for rank, cid in enumerate(ids, 1):
            s.add(Transcript(clip_id=cid, model_version_id=mv.id, text="a b", tokens=[],
                             words=[{"word": " a", "start": 0, "end": 1, "p": 0.9}], avg_logprob=-0.1,
                             no_speech_prob=0.0, compression_ratio=1.0, scores={}))
            s.add(QueueEntry(clip_id=cid, rank=rank, score=1.0 / rank, strategy="test", model_version_id=mv.id))
    return ids


def test_the_queue_leaves_out_clips_reviewed_since_the_last_rank(project, copy_samples):
    ids = _queue_three_clips(project, copy_samples)
    assert [r.clip_id for r in queue(project)] == ids and status(project).queued == 3
    with project.store.session() as s:
        s.add(Correction(clip_id=ids[0], text="fixed", annotator="ann"))
        s.add(Correction(clip_id=ids[2], flag="no speech", annotator="ann"))
    assert [(r.rank, r.clip_id) for r in queue(project)] == [(2, ids[1])]  # ranks as rank gave them
    assert status(project).queued == 1


def test_the_round_summary_never_speaks_of_a_top_larger_than_the_queue():
    change = queue_change({1: 1, 2: 2, 3: 3}, {1: 2, 2: 1, 3: 3}, top=10)
    assert change.top == 3 and change.top_kept == 3
    assert queue_change({i: i for i in range(1, 30)}, {i: i for i in range(1, 30)}, top=10).top == 10


def test_numeric_flags_refuse_values_out_of_range():
    assert positive_int("3") == 3 and count("0") == 0 and positive_float("1e-5") == 1e-5
    for parse, text, said in [(positive_int, "0", "at least 1"), (count, "-1", "at least 0"),
                              (positive_float, "0", "above 0"), (positive_int, "2.5", "whole number"),
                              (number(float, 0), "x", "not a number")]:
        with pytest.raises(argparse.ArgumentTypeError, match=said):
            parse(text)


def test_counts_read_as_english():
    assert (plural(1, "file"), plural(0, "file"), plural(2, "clip")) == ("1 file", "0 files", "2 clips")


def test_the_round_compares_only_clips_still_waiting_in_queue_order(project, copy_samples):
    from earmark.rounds import queue_snapshot

    ids = _queue_three_clips(project, copy_samples)
    with project.store.session() as s:
        s.add(Correction(clip_id=ids[0], text="fixed", annotator="ann"))
    assert queue_snapshot(project) == {ids[1]: 1, ids[2]: 2}  # not a clip the new ranking dropped


def test_a_refused_version_leaves_the_labeling_round_open(project):
    from types import SimpleNamespace

    from earmark.rounds import close_round
    from earmark.store import Round

    with project.store.session() as s:
        s.add(Round(number=1, budget_minutes=5.0))
    refused = SimpleNamespace(version="ft-001", activated=False, dev_wer_before=0.3, dev_wer_after=0.31)
    assert close_round(project, refused) == 1
    with project.store.session() as s:
        r = s.scalars(select(Round)).one()
        assert r.closed_at is None and r.config["finetune_attempts"][0]["version"] == "ft-001"
    close_round(project, SimpleNamespace(version="ft-002", activated=True, dev_wer_before=0.3, dev_wer_after=0.2))
    with project.store.session() as s:
        r = s.scalars(select(Round)).one()
        assert r.closed_at is not None and r.config["finetune"]["version"] == "ft-002"
        assert len(r.config["finetune_attempts"]) == 2


def test_review_refuses_a_port_in_use_before_printing_its_address(project, capsys):
    import socket

    from earmark.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["review", str(project.root), "--port", str(port)]) == 2
    out = capsys.readouterr()
    assert f"cannot listen on 127.0.0.1:{port}" in out.err and "--port N" in out.err
    assert "http://" not in out.out
