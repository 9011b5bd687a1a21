"""Refit after the gate: the saved weights are trained again on every correction, dev clips too.

Real tiny.en on shipped clips (8 voices, each clip its own speaker; 2 held out as dev),
steps capped so each test stays short on 2 CPU cores. A negative gate margin lets the
version through even where its dev WER ties, so the refit is reached.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from test_finetune import SMALL, make_project, version
from earmark.train.trainer import STATE_FILE

REFIT = replace(SMALL, refit=True, gate_margin=-1.0)


def test_the_refit_run_trains_on_dev_clips_in_its_own_folder(tmp_path):
    from earmark.train.dataset import Example, Split
    from earmark.train.refit import REFIT_DIR, refit_run
    from earmark.train.run import Run

    ex = [Example(i, f"a/{i}.flac", "t", 3.0, f"s{i}", i) for i in range(5)]
    run = Run(1, "ft-001", tmp_path, REFIT, {"id": 1, "name": "tiny.en", "spec": "tiny.en"},
              Split(tuple(ex[:3]), tuple(ex[3:]), ("speaker:s3", "speaker:s4"), "speaker"), (), (),
              {"fingerprint": "abc"})
    again = refit_run(run)
    assert [e.clip_id for e in again.split.train] == [0, 1, 2, 3, 4] and again.split.dev == ()
    # its own training state: never the gated run's, never another run's
    assert again.folder == tmp_path / REFIT_DIR and again.record["fingerprint"] != "abc"
    assert run.split.dev and run.record["fingerprint"] == "abc"  # the gated run is untouched


@pytest.mark.slow
def test_a_version_that_passes_the_gate_is_refit_on_every_correction(tmp_path):
    import torch
    import whisper

    from earmark.evaluate.heldout import evaluate
    from earmark.train.finetune import finetune

    project = make_project(tmp_path / "refit")
    r = finetune(project, REFIT, progress=False)
    assert r.activated and project.store.active_model().name == r.version
    assert r.refit_steps == r.kept_step >= 1 and r.refit_clips == 8 and r.train_clips == 6
    record = json.loads((r.checkpoint.parent / "record.json").read_text())
    assert version(project, r.version).record == record
    refit = record["refit"]
    # the record lists the clips the saved weights learned from: the dev clips too
    assert set(refit["clips"]) == set(record["train_clips"]) | set(record["dev_clips"])
    assert refit["used"] and refit["steps"] == record["kept_step"] and refit["dev_clips_trained"] == 2
    assert "trained again" in r.message and "on all 8 corrections" in r.message
    assert not (r.checkpoint.parent / STATE_FILE).exists() and not (r.checkpoint.parent / "refit").exists()

    # --no-refit: the same gated run (same dev figures) saves its own weights
    plain = make_project(tmp_path / "plain")
    p = finetune(plain, replace(REFIT, refit=False), progress=False)
    assert p.activated and p.refit_steps == 0 and version(plain, p.version).record["refit"] is None
    assert (p.dev_wer_before, p.dev_wer_after, p.kept_step) == (r.dev_wer_before, r.dev_wer_after, r.kept_step)
    assert evaluate(plain, model=p.version).wer == pytest.approx(p.dev_wer_after)  # the gated weights
    a = whisper.load_model(str(r.checkpoint), device="cpu").state_dict()
    b = whisper.load_model(str(p.checkpoint), device="cpu").state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the dev clips changed the weights


@pytest.mark.slow
def test_a_killed_refit_leaves_the_active_model_and_resumes(tmp_path, monkeypatch):
    from earmark.train import refit as refit_module
    from earmark.train.finetune import finetune

    project = make_project(tmp_path / "proj")
    cfg = replace(REFIT, epochs=2, eval_every=100)  # 2 steps, one evaluation: step 2 is kept
    original = refit_module._RefitTrainer.step

    def killed_after_one_step(self):
        if self.state.step == 1:  # its state after step 1 is saved (save_every 1)
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(refit_module._RefitTrainer, "step", killed_after_one_step)
    with pytest.raises(KeyboardInterrupt):
        finetune(project, cfg, progress=False)
    folder = tmp_path / "proj" / "models" / "ft-001"
    assert project.store.active_model().name == "tiny.en"  # nothing activated half-way
    assert version(project, "ft-001").status == "training"
    assert (folder / STATE_FILE).exists() and (folder / "refit" / STATE_FILE).exists()

    monkeypatch.setattr(refit_module._RefitTrainer, "step", original)
    r = finetune(project, resume=True, progress=False)
    assert r.version == "ft-001" and r.activated and r.kept_step == 2 and r.refit_steps == 2
    record = version(project, "ft-001").record
    assert record["refit"]["resumes"] == [1] and record["resumes"] == [2]
    assert not (folder / "refit").exists() and project.store.active_model().name == "ft-001"
