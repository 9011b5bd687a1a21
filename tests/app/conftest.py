"""Fixtures for the review library and the Streamlit pages.

``ranked_template`` ranks a few shipped clips with the real tiny.en model once per
session; each test gets its own copy (``ranked``), so tests can write corrections
without seeing each other's. ``handmade`` is a project whose transcripts are written
by the test itself, for the lease and bookkeeping logic that needs no model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "app"
SAMPLES = REPO / "data_samples"
# hard clips and easy ones, so the queue has a clear order
CLIPS = ("s01", "s06", "s07", "s09", "s12", "s17")


def write_manifest(folder: Path, names: tuple[str, ...]) -> Path:
    """A JSONL manifest of some shipped samples, with absolute audio paths."""
    rows = [json.loads(line) for line in (SAMPLES / "manifest.jsonl").read_text().splitlines()
            if line.strip()]
    chosen = [{**r, "audio": str(SAMPLES / r["audio"])} for r in rows
              if Path(r["audio"]).stem in names]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in chosen))
    return path


@pytest.fixture(autouse=True)
def _app_on_path(monkeypatch):
    # `streamlit run app/Review.py` puts app/ on sys.path; AppTest does not
    monkeypatch.syspath_prepend(str(APP))


@pytest.fixture(scope="session")
def ranked_template(tmp_path_factory):
    """A project with six shipped clips imported and ranked by the real tiny.en."""
    from earmark.ingest import import_audio
    from earmark.project import init_project
    from earmark.ranking import rank

    base = tmp_path_factory.mktemp("ranked")
    project = init_project(base / "proj")
    import_audio(project, write_manifest(base, CLIPS), progress=False)
    rank(project, progress=False)
    project.store.dispose()  # the last connection out folds the WAL into the file
    return project.root


@pytest.fixture
def ranked(ranked_template, tmp_path):
    """A private copy of the ranked project."""
    from earmark.project import open_project

    root = tmp_path / "proj"
    shutil.copytree(ranked_template, root)
    project = open_project(root)
    yield project
    project.store.dispose()


@pytest.fixture
def unranked(tmp_path):
    """A project with clips imported but not ranked."""
    from earmark.ingest import import_audio
    from earmark.project import init_project

    project = init_project(tmp_path / "unranked")
    import_audio(project, write_manifest(tmp_path, CLIPS[:2]), progress=False)
    yield project
    project.store.dispose()


@pytest.fixture
def handmade(tmp_path):
    """Three imported clips with transcripts and a queue written here (no model).

    Clip scores 3.0, 2.0, 1.0 put them in queue order of their ids; each transcript has
    two words, the second one doubtful.
    """
    from sqlalchemy import select

    from earmark.ingest import import_audio
    from earmark.project import init_project
    from earmark.store import Clip, QueueEntry, Transcript

    project = init_project(tmp_path / "handmade")
    import_audio(project, write_manifest(tmp_path, ("s06", "s09", "s17")), progress=False)
    mv = project.store.active_model()
    with project.store.session() as s:
        ids = s.scalars(select(Clip.id).order_by(Clip.id)).all()
        for rank, cid in enumerate(ids, start=1):
            score = float(4 - rank)
            s.add(Transcript(clip_id=cid, model_version_id=mv.id, text=f" hello world{cid}",
                             tokens=[], avg_logprob=-0.5, no_speech_prob=0.01,
                             compression_ratio=1.0,
                             words=[{"word": " hello", "start": 0.1, "end": 0.5, "p": 0.9},
                                    {"word": f" world{cid}", "start": 0.5, "end": 1.0, "p": 0.2}],
                             scores={"errors_per_second": score}))
            s.add(QueueEntry(clip_id=cid, rank=rank, score=score, strategy="errors-per-second",
                             model_version_id=mv.id))
    yield project
    project.store.dispose()


@pytest.fixture
def app_for(monkeypatch):
    """``app_for(project_or_path)``: an AppTest of the review app over that project."""
    from streamlit.testing.v1 import AppTest

    from earmark.review import PROJECT_ENV

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
