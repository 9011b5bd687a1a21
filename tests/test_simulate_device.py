"""``earmark simulate --device cuda``: decoding in half precision with card-sized
batches and training under autocast. The checks of the setting run anywhere; the test
marked ``gpu`` runs the tiny study on a CUDA GPU and is skipped where there is none.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from earmark.errors import BadConfig
from earmark.study_config import SimulateConfig

from _support import SHARED, forbid_model_load, one_row_manifest


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_a_gpu_simulation_runs_in_one_process():
    assert not SimulateConfig().problems() and SimulateConfig().device == "cpu"
    problems = SimulateConfig(device="cuda", workers=2).problems()
    assert any("--workers 1" in p and "--ray" in p for p in problems)
    assert not SimulateConfig(device="cuda").problems()


@pytest.mark.skipif(_cuda(), reason="checks the refusal on a machine without a CUDA GPU")
def test_a_missing_gpu_is_refused_before_any_model_work(tmp_path, monkeypatch, capsys):
    import earmark.simulate.run as sim
    from earmark.cli.main import main

    forbid_model_load(monkeypatch, sim, "the device")
    manifest = one_row_manifest(tmp_path)
    with pytest.raises(BadConfig, match="simulate --device: 'cuda' was asked for but torch sees no CUDA GPU"):
        sim.simulate(manifest, SimulateConfig(device="cuda"), tmp_path / "out", log=lambda m: None)
    assert main(["simulate", "--manifest", str(manifest), "--device", "cuda", "--out", str(tmp_path / "o")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(not _cuda(), reason="no CUDA GPU here (torch.cuda.is_available() is False): "
                                        "simulate --device cuda is not exercised")
@pytest.mark.skipif(not (SHARED / "manifest.jsonl").is_file(), reason="speechocean762 not present")
def test_the_tiny_study_on_a_gpu_reads_as_on_the_cpu(tmp_path):
    from earmark.simulate import simulate
    from test_simulate_ray import tiny_manifest

    manifest = tiny_manifest(tmp_path)
    cfg = SimulateConfig(strategies=("random", "errors-per-second"), rounds=1, budget_minutes=0.1, seeds=1,
                         test_speakers=1, dev_speakers=1, min_steps=2, threads=1)
    cpu = simulate(manifest, cfg, tmp_path / "cpu", log=lambda m: None)
    gpu = simulate(manifest, replace(cfg, device="cuda"), tmp_path / "gpu", log=lambda m: None)
    assert gpu["config"]["device"] == "cuda" and gpu["config"]["batch_decode"] >= 16
    a = json.loads((tmp_path / "cpu" / "rounds.json").read_text())
    b = json.loads((tmp_path / "gpu" / "rounds.json").read_text())
    # (the clips errors-per-second picks may differ: it ranks by the float16 decoder's scores)
    assert [(r["strategy"], r["round"]) for r in a] == [(r["strategy"], r["round"]) for r in b]
    for x, y in zip(a, b):  # float16 decoding and autocast training: close, not equal
        assert np.isfinite(y["test_wer"]) and abs(x["test_wer"] - y["test_wer"]) <= 0.15, (x, y)
    assert set(cpu["summary"]) == set(gpu["summary"])
