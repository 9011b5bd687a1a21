"""``earmark simulate --ray``: the (strategy, seed) grid as Ray tasks on a local Ray.

The slow test runs the same tiny study as tests/test_simulate.py twice, in this process
and on a local Ray with 2 CPUs (one task per CPU), and compares every round's figures.
"""

from __future__ import annotations

import json
import socket
import sys
import time

import pytest

from earmark.study_config import SimulateConfig

from _support import SHARED, forbid_model_load, one_row_manifest, tiny_speechocean_manifest


def test_the_grid_is_the_local_order_of_results():
    from earmark.simulate.distributed import cells, task_cpus

    cfg = SimulateConfig(strategies=("random", "entropy"), seeds=2)
    assert cells(cfg) == [(0, "random"), (0, "entropy"), (1, "random"), (1, "entropy")]
    assert task_cpus(cfg) == 1 and task_cpus(SimulateConfig(threads=4)) == 4


def test_a_cluster_too_small_for_a_task_is_refused():
    from earmark.errors import ClusterUnavailable
    from earmark.simulate.distributed import check_cluster

    check_cluster({"CPU": 2.0}, 2)
    with pytest.raises(ClusterUnavailable, match="no CPU"):
        check_cluster({}, 1)
    with pytest.raises(ClusterUnavailable, match="asks for 4 CPUs.*has 2.*--threads"):
        check_cluster({"CPU": 2.0}, 4)
    check_cluster({"CPU": 2.0, "GPU": 1.0}, 1, gpus=1)
    with pytest.raises(ClusterUnavailable, match="each task on a GPU.*has none"):
        check_cluster({"CPU": 8.0}, 1, gpus=1)


def _free_port() -> int:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_bad_address_is_one_line_before_any_model_work(tmp_path, capsys, monkeypatch):
    import earmark.simulate.run as sim
    from earmark.cli.main import main

    forbid_model_load(monkeypatch, sim, "the address")
    manifest = one_row_manifest(tmp_path)
    start = time.monotonic()
    argv = ["simulate", "--manifest", str(manifest), "--out", str(tmp_path / "out")]
    assert main(argv + ["--ray", f"127.0.0.1:{_free_port()}"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the Ray head" in err and "ray start --head" in err
    assert len(err.strip().splitlines()) == 1 and time.monotonic() - start < 30
    assert main(argv + ["--ray", "nonsense"]) == 2
    assert "not a cluster address" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    assert main(argv + ["--ray"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'earmark[ray]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def tiny_manifest(tmp_path):
    """Three clips of each of four speechocean762 speakers (as tests/test_simulate.py uses)."""
    return tiny_speechocean_manifest(tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "manifest.jsonl").is_file(), reason="speechocean762 not present")
def test_ray_gives_the_local_rounds(tmp_path):
    from earmark.ranking.distributed import RayConfig
    from earmark.simulate import simulate

    manifest = tiny_manifest(tmp_path)
    # two seeds x two strategies: four tasks on two CPUs
    cfg = SimulateConfig(strategies=("random", "errors-per-second"), rounds=1, budget_minutes=0.1,
                         seeds=2, test_speakers=1, dev_speakers=1, min_steps=2, threads=1)
    local = simulate(manifest, cfg, tmp_path / "local", log=lambda m: None)
    lines: list[str] = []
    on_ray = simulate(manifest, cfg, tmp_path / "ray", log=lines.append,
                      ray=RayConfig(local_cpus=2))
    a = json.loads((tmp_path / "local" / "rounds.json").read_text())
    b = json.loads((tmp_path / "ray" / "rounds.json").read_text())
    assert len(a) == len(b) == 2 * 2 * 2  # seeds x strategies x (round 0 + round 1)
    keys = ("strategy", "seed", "round", "labeled_clips", "labeled_minutes", "changed_minutes",
            "test_wer", "dev_wer")
    for x, y in zip(a, b):
        # one thread in both, the same weights and seeds: the same arithmetic, so the
        # same figures (seconds aside)
        assert {k: x[k] for k in keys} == {k: y[k] for k in keys}
    assert on_ray["summary"] == local["summary"] and on_ray["verdict"] == local["verdict"]
    assert any("4 (strategy, seed) tasks" in line for line in lines)
    assert not (tmp_path / "ray" / "rounds.partial.jsonl").exists()
