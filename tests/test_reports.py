"""The queue and status as people see them, the round's queue summary, and CLI arguments."""

from __future__ import annotations

import argparse

import pytest
from sqlalchemy import select

from earmark.cli.common import count, number, plural, port, positive_float, positive_int
from earmark.review.reports import queue, status
from earmark.rounds import queue_change
from earmark.store.db import Clip, Correction, QueueEntry, TranscriptRow


def _queue_three_clips(project, copy_samples):
    from earmark.ingest import import_audio

    import_audio(project, copy_samples(["s01.wav", "s02.wav", "s03.wav"]), progress=False)
    mv = project.store.active_model()
    with project.store.session() as s:
        ids = sorted(s.scalars(select(Clip.id)))
        for rank, cid in enumerate(ids, 1):
            s.add(TranscriptRow(clip_id=cid, model_version_id=mv.id, text="a b", tokens=[],
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
                              (number(float, 0), "x", "not a number"),
                              (positive_int, "99999999999999999999", "at most 2147483647"),
                              (port, "70000", "at most 65535"), (positive_float, "nan", "finite"),
                              (positive_float, "inf", "finite")]:
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
    from earmark.store.db import Round

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

    from earmark.cli.main import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["review", str(project.root), "--port", str(port)]) == 2
    out = capsys.readouterr()
    assert f"cannot listen on 127.0.0.1:{port}" in out.err and "--port N" in out.err
    assert "http://" not in out.out


def test_review_with_a_host_that_is_not_this_machine_says_so(project, capsys):
    from earmark.cli.main import main

    for host in ("999.1.1.1", "192.0.2.1"):  # not an address at all; one of no interface here
        assert main(["review", str(project.root), "--host", host, "--port", "8799"]) == 2
        err = capsys.readouterr().err
        assert f"{host} is not an address of this machine" in err and "--host 127.0.0.1" in err


def test_rank_and_queue_on_a_project_without_clips_say_to_import(project, capsys):
    from earmark.cli.main import main

    assert main(["rank", str(project.root)]) == 0
    assert f"no clips yet: import audio first, e.g. `earmark import {project.root}" in capsys.readouterr().out
    assert main(["queue", str(project.root)]) == 0
    assert f"`earmark import {project.root} recordings/` adds them" in capsys.readouterr().out


def _three_versions(project):
    """tiny.en (active), ft-001 refused by the gate, ft-002 a run that was killed."""
    from earmark.store.db import ModelVersion

    base = project.store.ensure_model_version("tiny.en")
    verdict = "ft-001 is kept but not activated: dev WER 0.400 -> 0.450 on 2 held-out clips"
    with project.store.session() as s:
        s.add(ModelVersion(
            name="ft-001", spec=str(project.root / "models/ft-001/model.pt"), parent_id=base.id,
            status="rejected", config={"mode": "decoder"},
            record={"parent": {"name": "tiny.en"}, "train_clips": [3, 4, 5], "dev_clips": [1, 2],
                    "dev_wer_before": 0.4, "dev_wer_after": 0.45, "steps": 9,
                    "drift": {"changed": 0.031}, "checkpoint": "models/ft-001/model.pt",
                    "gate": {"passed": False, "message": verdict},
                    "started_at": "2026-12-01T10:00:00+00:00", "finished_at": "2026-12-01T10:05:00+00:00"}))
        s.add(ModelVersion(name="ft-002", spec=str(project.root / "models/ft-002/model.pt"),
                           parent_id=base.id, status="training", config={"mode": "full"}))
    return verdict


def test_models_lists_every_version_newest_first_with_its_dev_wer(project, capsys):
    from earmark.cli.main import main

    _three_versions(project)
    assert main(["models", str(project.root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[1:4]] == [["ft-002", "unfinished"], ["ft-001", "rejected"],
                                                        ["tiny.en", "active"]]
    assert "0.400 -> 0.450" in lines[2] and "3.1%" in lines[2] and "2026-12-01 10:05" in lines[2]
    # no model.pt was ever written for ft-001 here: the list says so (not for the unfinished one)
    assert lines[2].endswith("CHECKPOINT MISSING") and "MISSING" not in lines[1]
    assert any(line.startswith("missing: the checkpoint file of ft-001 is gone") for line in lines)
    assert "--show NAME" in lines[-1]


def test_models_show_gives_the_gates_verdict_or_says_what_a_version_is(project, capsys):
    from earmark.cli.main import main
    from earmark.review.reports import version_details

    verdict = _three_versions(project)
    v = version_details(project, "ft-001")
    assert (v.status, v.verdict, v.parent, v.mode, v.train_clips, v.dev_clips, v.steps) == (
        "rejected", verdict, "tiny.en", "decoder", 3, 2, 9)
    assert v.record_path == project.root / "models" / "ft-001" / "record.json"

    assert main(["models", str(project.root), "--show", "ft-001"]) == 0
    out = capsys.readouterr().out
    assert "ft-001 (rejected)" in out and verdict in out and "3 training clips, 2 dev clips, 9 steps" in out
    assert main(["models", str(project.root), "--show", "ft-002"]) == 0
    out = capsys.readouterr().out
    assert "--resume" in out and "unfinished" in out
    assert "model.pt" not in out  # not written yet: no path to a file that is not there
    assert main(["models", str(project.root), "--show", "tiny.en"]) == 0
    assert "a base model" in capsys.readouterr().out
    assert main(["models", str(project.root), "--show", "ft-009"]) == 2
    assert "known versions: tiny.en, ft-001, ft-002" in capsys.readouterr().err


def test_models_on_a_project_without_versions_says_how_to_get_one(project, capsys):
    from earmark.cli.main import main

    assert main(["models", str(project.root)]) == 0
    assert "`earmark rank" in capsys.readouterr().out
