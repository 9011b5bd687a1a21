"""A simulation's (strategy, seed) grid as Ray tasks (``earmark simulate --ray``).

Every (strategy, seed) cell of the grid is independent: the seed fixes the speaker
split, the strategy's own random order and every round's training seed, and the rounds
of one strategy never see another's. So each cell runs as one Ray task, calling the
same :func:`~earmark.simulate.rounds.run_seed` as the local path with that one
strategy, and the driver gathers the rounds in the local path's order (seed by seed,
strategies in the configured order) before :func:`~earmark.simulate.summary.write_outputs`
summarizes them exactly as it does locally.

What travels
    The study (every clip's encoder output, computed once on the driver) and the
    zero-shot transcripts are put in Ray's object store once and shared by every task;
    each task loads the base model itself (the weights package must be installed on
    every node, as earmark itself). No audio is read by a task.

Threads and GPUs
    A task asks Ray for ``threads`` CPUs (``--threads``; 1 when not set, as the local
    worker processes use) and sets torch to that many threads, so the tasks on a node
    never ask for more cores than it has. With ``--device cuda`` each task also asks
    for one GPU (the driver, which encodes the study, needs one too).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from earmark.config import DecodeConfig
from earmark.errors import ClusterUnavailable
from earmark.ranking.distributed import RayConfig, connect
from earmark.simulate.study import RoundResult, Study
from earmark.study_config import SimulateConfig


def task_cpus(cfg: SimulateConfig) -> int:
    """CPUs (and torch threads) one cell's task takes: ``--threads``, else 1."""
    return max(1, cfg.threads)


def cells(cfg: SimulateConfig) -> list[tuple[int, str]]:
    """The grid's (seed, strategy) cells in the local path's order of results."""
    return [(seed, name) for seed in range(cfg.seeds) for name in cfg.strategies]


def check_cluster(resources: dict[str, float], cpus: int, gpus: int = 0) -> None:
    """Raise :class:`ClusterUnavailable` unless the cluster can run one task of ``cpus``
    CPUs (and ``gpus`` GPUs)."""
    if gpus and int(resources.get("GPU", 0)) < gpus:
        raise ClusterUnavailable("simulate --device cuda on Ray runs each task on a GPU, but the Ray "
                                 f"cluster has none (its resources: {resources or 'none'}); add a GPU "
                                 "node, or leave --device out")
    have = int(resources.get("CPU", 0))
    if have < 1:
        raise ClusterUnavailable("the Ray cluster has no CPU to run on (its resources: "
                                 f"{resources or 'none'}); add a worker node with `ray start --address ...`")
    if cpus > have:
        raise ClusterUnavailable(f"a simulation task asks for {cpus} CPUs (--threads) but the Ray cluster "
                                 f"has {have}; pass a smaller --threads")


def run_cell(study: Study, cfg: SimulateConfig, decode_cfg: DecodeConfig, seed: int, strategy: str,
             zero_shot: dict, threads: int) -> list[RoundResult]:
    """One (strategy, seed) cell in this process: the local path's rounds for that pair."""
    import torch

    from earmark.models.loading import load_model
    from earmark.simulate.rounds import run_seed

    torch.set_num_threads(threads)
    if cfg.device != "cpu":  # Ray shows a task only its own GPU, as cuda:0
        cfg = replace(cfg, device="cuda")
    base = load_model(cfg.model, cfg.device)
    return run_seed(base, study, replace(cfg, strategies=(strategy,)), decode_cfg, seed, zero_shot,
                    log=lambda m: None, partial=None)


def run_grid_on_ray(study: Study, cfg: SimulateConfig, decode_cfg: DecodeConfig, zero_shot: dict,
                    ray_cfg: RayConfig, partial: Path | None = None, log: Any = print) -> list[RoundResult]:
    """Every (strategy, seed) cell as a Ray task; the rounds in the local path's order.

    Each cell's rounds are appended to ``partial`` as the cell comes back, so a stopped
    run keeps what it measured, as the local path does round by round.

    Raises
    ------
    MissingExtra
        Ray is not installed.
    ClusterUnavailable
        The address cannot be reached, or the cluster has too few CPUs for one task.
    """
    ray, started = connect(ray_cfg)
    try:
        cpus, gpus = task_cpus(cfg), int(cfg.device != "cpu")
        check_cluster(ray.cluster_resources(), cpus, gpus)
        study_ref, zero_ref = ray.put(study), ray.put(zero_shot)
        # on a GPU, one GPU a task (Ray sets each task's CUDA_VISIBLE_DEVICES to it)
        remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=2)(run_cell)
        grid = cells(cfg)
        refs = {remote.remote(study_ref, cfg, decode_cfg, seed, name, zero_ref, cpus): (seed, name)
                for seed, name in grid}
        log(f"simulate on Ray: {len(grid)} (strategy, seed) tasks of {cpus} CPU"
            f"{'s' if cpus > 1 else ''} on {int(ray.cluster_resources().get('CPU', 0))} CPUs")
        done: dict[tuple[int, str], list[RoundResult]] = {}
        waiting, start = list(refs), time.perf_counter()
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            seed, name = refs[ready[0]]
            done[(seed, name)] = rounds = ray.get(ready[0])
            if partial is not None:
                with partial.open("a") as f:
                    f.writelines(json.dumps(asdict(r)) + "\n" for r in rounds)
            last = rounds[-1]
            log(f"seed {seed} {name:>26} done ({len(done)}/{len(grid)}, {time.perf_counter() - start:.0f} s): "
                f"{last.labeled_minutes:5.2f} min labeled, test WER {last.test_wer:.4f}")
        return [r for cell in grid for r in done[cell]]
    finally:
        if started:
            ray.shutdown()
