"""Soak: eight annotators, a rank and a decoder fine-tune on one SQLite project, each
process then killed with SIGKILL; nothing acknowledged is lost or doubled (see
:mod:`soak`). Real tiny.en, about a minute on two cores."""

from __future__ import annotations

import pytest

from soak import run_soak


@pytest.mark.slow
def test_kill_9_during_concurrent_work_loses_no_correction(tmp_path):
    r = run_soak(tmp_path / "proj", run_seconds=20.0)
    assert r.saved > 50, r  # the annotators did save while everything ran
    assert r.lost == 0 and r.doubled == 0, r
    assert r.stored >= r.saved  # a save killed after its commit, before its log line
    assert r.integrity == "ok", r
    assert not r.problems, r.problems

    # the killed rank left no lock behind: the next rank may start
    from earmark.store.project import open_project
    from earmark.ranking.rank import ranking_alone

    with ranking_alone(open_project(tmp_path / "proj")):
        pass
