"""Fixtures for the review library and the Streamlit pages.

``ranked_template`` ranks a few shipped clips with the real tiny.en model once per
session; each test gets its own copy (``ranked``), so tests can write corrections
without seeing each other's. ``handmade`` (in the top-level conftest) is a project whose
transcripts are written by the fixture, for the bookkeeping logic that needs no model.
"""

from __future__ import annotations

import shutil

import pytest

from _support import REPO, write_manifest

APP = REPO / "src" / "earmark" / "app"
# hard clips and easy ones, so the queue has a clear order
CLIPS = ("s01", "s06", "s07", "s09", "s12", "s17")


@pytest.fixture(autouse=True)
def _app_on_path(monkeypatch):
    # `streamlit run app/Review.py` puts app/ on sys.path; AppTest does not
    monkeypatch.syspath_prepend(str(APP))


@pytest.fixture(scope="session")
def ranked_template(tmp_path_factory):
    """A project with six shipped clips imported and ranked by the real tiny.en."""
    from earmark.ingest import import_audio
    from earmark.store.project import init_project
    from earmark.ranking.rank import rank

    base = tmp_path_factory.mktemp("ranked")
    project = init_project(base / "proj")
    import_audio(project, write_manifest(base, CLIPS), progress=False)
    rank(project, progress=False)
    project.store.dispose()  # the last connection out folds the WAL into the file
    return project.root


@pytest.fixture
def ranked(ranked_template, tmp_path):
    """A private copy of the ranked project."""
    from earmark.store.project import open_project

    root = tmp_path / "proj"
    shutil.copytree(ranked_template, root)
    project = open_project(root)
    yield project
    project.store.dispose()


@pytest.fixture
def unranked(tmp_path):
    """A project with clips imported but not ranked."""
    from earmark.ingest import import_audio
    from earmark.store.project import init_project

    project = init_project(tmp_path / "unranked")
    import_audio(project, write_manifest(tmp_path, CLIPS[:2]), progress=False)
    yield project
    project.store.dispose()


@pytest.fixture
def app_for(monkeypatch):
    """``app_for(project_or_path)``: an AppTest of the review app over that project."""
    from streamlit.testing.v1 import AppTest

    from earmark.review.workflow import PROJECT_ENV

    def make(target):
        root = getattr(target, "root", target)
        monkeypatch.setenv(PROJECT_ENV, str(root))
        return AppTest.from_file(str(APP / "Review.py"), default_timeout=60)

    return make


@pytest.fixture
def sign_in():
    """``sign_in(at, name)``: run the app, give the name in its first form, run again."""

    def run(at, name: str = "ada"):
        at.run()
        at.text_input(key="annotator_name").input(name)
        at.button[0].click()  # "Start reviewing", the only button before a name is given
        return at.run()

    return run
