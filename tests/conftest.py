"""Shared fixtures. Slow fixtures load the real tiny.en weights, never a stand-in."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from _support import SAMPLES


@pytest.fixture(scope="session")
def tiny_model():
    """The real tiny.en model (converted from the offline weight package once)."""
    from earmark.models import load_model

    return load_model("tiny.en", "cpu")


@pytest.fixture(scope="session")
def ranked_project(tmp_path_factory):
    """A project with every shipped sample imported and ranked by tiny.en."""
    from earmark.ingest import import_audio
    from earmark.project import init_project
    from earmark.ranking import rank

    root = tmp_path_factory.mktemp("ranked") / "proj"
    project = init_project(root)
    import_audio(project, SAMPLES / "manifest.jsonl", progress=False)
    rank(project, progress=False)
    return project


@pytest.fixture
def project(tmp_path):
    """An empty project."""
    from earmark.project import init_project

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
