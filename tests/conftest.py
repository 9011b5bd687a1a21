"""Shared fixtures. Slow fixtures load the real tiny.en weights, never a stand-in."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from _support import SAMPLES, write_manifest


@pytest.fixture(scope="session")
def tiny_model():
    """The real tiny.en model (converted from the offline weight package once)."""
    from earmark.models.loading import load_model

    return load_model("tiny.en", "cpu")


@pytest.fixture(scope="session")
def ranked_project(tmp_path_factory):
    """A project with every shipped sample imported and ranked by tiny.en."""
    from earmark.ingest import import_audio
    from earmark.store.project import init_project
    from earmark.ranking.rank import rank

    root = tmp_path_factory.mktemp("ranked") / "proj"
    project = init_project(root)
    import_audio(project, SAMPLES / "manifest.jsonl", progress=False)
    rank(project, progress=False)
    return project


@pytest.fixture
def project(tmp_path):
    """An empty project."""
    from earmark.store.project import init_project

    return init_project(tmp_path / "proj")


@pytest.fixture
def copy_samples(tmp_path):
    """Copy a few shipped clips to a temp folder; returns the folder."""
    def _copy(names: list[str]) -> Path:
        out = tmp_path / "src"
        out.mkdir(exist_ok=True)
        for n in names:
            shutil.copy(SAMPLES / "audio" / n, out / n)
        return out
    return _copy


@pytest.fixture
def handmade(tmp_path):
    """Three imported clips with transcripts and a queue written here (no model).

    Clip scores 3.0, 2.0, 1.0 put them in queue order of their ids; each transcript has
    two words, the second one doubtful.
    """
    from sqlalchemy import select

    from earmark.ingest import import_audio
    from earmark.store.project import init_project
    from earmark.store.db import Clip, QueueEntry, TranscriptRow

    project = init_project(tmp_path / "handmade")
    import_audio(project, write_manifest(tmp_path, ("s06", "s09", "s17")), progress=False)
    mv = project.store.active_model()
    with project.store.session() as s:
        ids = s.scalars(select(Clip.id).order_by(Clip.id)).all()
        for rank, cid in enumerate(ids, start=1):
            score = float(4 - rank)
            s.add(TranscriptRow(clip_id=cid, model_version_id=mv.id, text=f" hello world{cid}",
                             tokens=[], avg_logprob=-0.5, no_speech_prob=0.01,
                             compression_ratio=1.0,
                             words=[{"word": " hello", "start": 0.1, "end": 0.5, "p": 0.9},
                                    {"word": f" world{cid}", "start": 0.5, "end": 1.0, "p": 0.2}],
                             scores={"errors_per_second": score}))
            s.add(QueueEntry(clip_id=cid, rank=rank, score=score, strategy="errors-per-second",
                             model_version_id=mv.id))
    yield project
    project.store.dispose()
