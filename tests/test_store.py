"""The project database: schema version, migrations, WAL, append-only corrections."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from earmark.config import DecodeConfig, ProjectConfig
from earmark.errors import BadConfig, CorruptDatabase, ModelWeightsNotFound, ProjectExists, ProjectNotFound, SchemaTooNew
from earmark.store.project import init_project, open_project
from earmark.store.db import (SCHEMA_VERSION, Clip, Correction, Meta, ModelVersion, Source, Store,
                           schema_version, sqlite_url)


def test_new_database_has_current_schema_and_wal(tmp_path):
    store = Store(sqlite_url(tmp_path / "a.db"))
    assert schema_version(store.engine) == SCHEMA_VERSION
    with store.engine.connect() as c:
        assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_reopening_keeps_data_and_version(tmp_path):
    url = sqlite_url(tmp_path / "a.db")
    Store(url).ensure_model_version("tiny.en")
    again = Store(url)
    assert again.active_model().spec == "tiny.en"
    assert schema_version(again.engine) == SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path):
    store = Store(sqlite_url(tmp_path / "a.db"))
    with store.session() as s:
        s.get(Meta, "schema_version").value = str(SCHEMA_VERSION + 1)
    with pytest.raises(SchemaTooNew, match="upgrade earmark"):
        Store(sqlite_url(tmp_path / "a.db"))


def test_corrupt_database_gives_actionable_error(tmp_path):
    db = tmp_path / "earmark.db"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CorruptDatabase, match="restore it from a backup"):
        Store(sqlite_url(db))


def test_project_errors(tmp_path):
    with pytest.raises(ProjectNotFound, match="earmark init"):
        open_project(tmp_path / "nothing")
    init_project(tmp_path / "p")
    with pytest.raises(ProjectExists):
        init_project(tmp_path / "p")
    (tmp_path / "p" / "earmark.json").write_text("{broken")
    with pytest.raises(ProjectNotFound, match="not a valid project config"):
        open_project(tmp_path / "p")


@pytest.mark.parametrize("damage, why", [("empty", "is empty"), ("remove", "is missing")])
def test_a_lost_database_is_not_silently_replaced_by_an_empty_one(tmp_path, damage, why):
    init_project(tmp_path / "p").store.dispose()
    open_project(tmp_path / "p").store.dispose()  # an intact project opens
    db = tmp_path / "p" / "earmark.db"
    for leftover in (db.with_name("earmark.db-wal"), db.with_name("earmark.db-shm")):
        leftover.unlink(missing_ok=True)
    db.write_bytes(b"") if damage == "empty" else db.unlink()
    with pytest.raises(CorruptDatabase, match=f"earmark.db: the project's database {why}.*earmark init"):
        open_project(tmp_path / "p")
    assert not db.exists() or db.stat().st_size == 0  # nothing was written in its place


def test_init_refuses_a_file_and_a_bad_database_url_without_leaving_a_folder(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ProjectExists, match="is a file, not a folder"):
        init_project(tmp_path / "afile")
    with pytest.raises(BadConfig, match="database URL bogus://x: .*postgresql"):
        init_project(tmp_path / "p", ProjectConfig(database_url="bogus://x"))
    assert not (tmp_path / "p").exists()
    with pytest.raises(BadConfig, match="afile/sub: cannot create the project folder"):
        init_project(tmp_path / "afile" / "sub")  # a path through a file
    for blank in ("", "  "):
        with pytest.raises(BadConfig, match="project folder name is empty"):
            init_project(blank)
    with pytest.raises(ProjectNotFound, match="afile: a file, not a project folder"):
        open_project(tmp_path / "afile")  # not advice to `earmark init` a file
    with pytest.raises(ModelWeightsNotFound, match="'tiny.eng' is neither a checkpoint file nor a Whisper name"):
        init_project(tmp_path / "p", ProjectConfig(decode=DecodeConfig(model="tiny.eng")))
    assert not (tmp_path / "p").exists()


def test_a_project_config_that_is_not_an_object_or_names_no_strategy_is_refused(tmp_path):
    import json

    init_project(tmp_path / "p").store.dispose()
    cfg = tmp_path / "p" / "earmark.json"
    good = json.loads(cfg.read_text())
    cfg.write_text(json.dumps({**good, "selection": {**good["selection"], "strategy": "bogus"}}))
    with pytest.raises(BadConfig, match="earmark.json: selection.strategy 'bogus' is not one of"):
        open_project(tmp_path / "p")
    cfg.write_text("[1, 2]")
    with pytest.raises(ProjectNotFound, match="earmark.json: not a valid project config"):
        open_project(tmp_path / "p")


def _clip(store: Store) -> int:
    with store.session() as s:
        src = Source(path="x.wav", sha256="h" * 64, status="ok")
        s.add(src)
        s.flush()
        clip = Clip(source_id=src.id, offset=0.0, duration=2.0, audio_path="audio/x.flac")
        s.add(clip)
        s.flush()
        return clip.id


def test_corrections_are_append_only_and_latest_wins(tmp_path):
    store = Store(sqlite_url(tmp_path / "a.db"))
    cid = _clip(store)
    with store.session() as s:
        s.add(Correction(clip_id=cid, text="first", annotator="ann"))
    with store.session() as s:
        s.add(Correction(clip_id=cid, text="second", annotator="bob"))
    latest = store.latest_corrections()
    assert [c.text for c in latest] == ["second"]
    with store.session() as s:
        assert [c.text for c in s.scalars(select(Correction).order_by(Correction.id))] == ["first", "second"]
    with store.session() as s:
        s.add(Correction(clip_id=cid, flag="no speech", annotator="ann"))
    assert store.latest_corrections() == []
    assert store.latest_corrections(include_flagged=True)[0].flag == "no speech"


def test_transaction_rolls_back_on_error(tmp_path):
    store = Store(sqlite_url(tmp_path / "a.db"))
    cid = _clip(store)
    with pytest.raises(RuntimeError):
        with store.session() as s:
            s.add(Correction(clip_id=cid, text="lost", annotator="a"))
            s.flush()
            raise RuntimeError("killed mid-write")
    assert store.latest_corrections() == []


def test_one_active_model(tmp_path):
    store = Store(sqlite_url(tmp_path / "a.db"))
    a = store.ensure_model_version("tiny.en")
    b = store.ensure_model_version("/ckpt/v1.pt", name="v1")
    assert store.active_model().id == a.id
    store.set_active(b.id)
    with store.session() as s:
        assert [m.name for m in s.scalars(select(ModelVersion).where(ModelVersion.active))] == ["v1"]


@pytest.mark.parametrize("section, key, value, error, said", [
    ("decode", "batch_size", "big", ProjectNotFound, 'decode.batch_size is "big", not a whole number'),
    ("decode", "pack", 1, ProjectNotFound, "decode.pack is 1, not true or false"),
    ("selection", "low_confidence", "x", ProjectNotFound, 'selection.low_confidence is "x", not a number'),
    ("audio", "extensions", ".wav", ProjectNotFound, 'audio.extensions is ".wav", not a list'),
    ("audio", "extensions", [".wav", 3], ProjectNotFound, r"audio.extensions\[1\] is 3, not a string"),
    ("finetune", "augmentation", [], ProjectNotFound, "finetune.augmentation is \\[\\], not an object"),
    ("audio", "max_clip_seconds", 0, BadConfig, r"audio.max_clip_seconds must be above 0 and at most 30 .* \(got 0.0\)"),
    ("audio", "extensions", ["wav"], BadConfig, "audio.extensions must list file endings with their dot"),
    ("selection", "low_confidence", 2, BadConfig, "selection.low_confidence must be a probability"),
    ("review", "lease_minutes", -1, BadConfig, "review.lease_minutes must be above 0"),
])
def test_a_project_config_value_of_the_wrong_type_or_range_is_named(tmp_path, section, key, value, error, said):
    import json

    init_project(tmp_path / "p").store.dispose()
    cfg = tmp_path / "p" / "earmark.json"
    good = json.loads(cfg.read_text())
    cfg.write_text(json.dumps({**good, section: {**good[section], key: value}}))
    with pytest.raises(error, match=said):
        open_project(tmp_path / "p")
    good["audio"]["max_clip_seconds"] = 20  # a whole number where the default is 20.0: fine
    cfg.write_text(json.dumps(good))
    assert open_project(tmp_path / "p").config.audio.max_clip_seconds == 20.0


def test_a_misspelt_setting_in_earmark_json_is_named_not_silently_ignored(tmp_path, capsys):
    import json

    from earmark.cli.main import main
    from earmark.config import ProjectConfig, unknown_keys
    from earmark.store.project import init_project

    init_project(tmp_path / "p", ProjectConfig())
    cfg = tmp_path / "p" / "earmark.json"
    data = json.loads(cfg.read_text())
    assert unknown_keys(ProjectConfig, data) == []  # what init writes is all known
    data["selection"]["low_confidnce"] = 0.3
    cfg.write_text(json.dumps(data))
    assert unknown_keys(ProjectConfig, data) == ["selection.low_confidnce"]
    assert main(["status", str(tmp_path / "p")]) == 0
    err = capsys.readouterr().err
    assert "earmark: warning:" in err and "selection.low_confidnce is not a setting" in err


def test_a_mistyped_version_name_lists_the_projects_versions(project):
    from earmark.models.versions import switch_model

    with pytest.raises(ModelWeightsNotFound, match=r"nor is it a version of this project \(its versions: "
                                                    r"tiny.en; see `earmark models`\)"):
        switch_model(project, "ft-099", "cpu")
