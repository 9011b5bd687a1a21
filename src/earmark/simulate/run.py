"""The entry point of a simulation: encode the study once, decode it zero-shot, run
every seed (in forked worker processes when asked), and write the outputs.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from earmark.config import DecodeConfig

from earmark.study_config import SimulateConfig
from earmark.decode.decoder import Decoder
from earmark.errors import BadConfig
from earmark.models.device import check_device, resolve_device, torch_threads, usable_threads
from earmark.models.loading import load_model
from earmark.ranking.strategies import get_strategy
from earmark.simulate.rounds import decode, error_detection, run_seed
from earmark.simulate.study import (POSITIONS_PER_SECOND, RoundResult, Study, choose_speakers,
                                    concat_studies, encode_study, read_study_manifest, split_speakers)
from earmark.simulate.summary import write_outputs


def _worker(args: tuple) -> list[RoundResult]:
    import torch

    cfg, decode_cfg, seed, zero_shot, partial = args
    torch.set_num_threads(usable_threads(cfg.threads) or 1)
    base = load_model(cfg.model, "cpu")
    return run_seed(base, _SHARED["study"], cfg, decode_cfg, seed, zero_shot,
                    log=lambda m: print(m, flush=True), partial=partial)


_SHARED: dict[str, Any] = {}  # what forked workers read without pickling (the study)


def _encode_worker(args: tuple) -> Study:
    import torch

    cfg, rows, width = args
    torch.set_num_threads(usable_threads(cfg.threads) or 1)
    return encode_study(load_model(cfg.model, "cpu"), rows, cfg, width)


def simulate(manifest: Path | str, cfg: SimulateConfig = SimulateConfig(), out: Path | str = "simulate",
             log: Any = print, ray: Any = None) -> dict[str, Any]:
    """Replay the loop for every strategy and seed; write the curves, plot and summary to ``out``.

    With ``ray`` (a :class:`~earmark.ranking.distributed.RayConfig`), each (strategy,
    seed) cell runs as a Ray task (:mod:`earmark.simulate.distributed`); the outputs
    are the same.

    Returns
    -------
    dict
        ``summary`` (per strategy), ``error_detection`` (AUCs of the zero-shot model on
        the first seed's test set), ``best_strategy`` (None, null in summary.json, when
        no strategy beat random; see :func:`best_strategy`), ``best_label_saving`` (None
        then too, or when it cannot be computed), ``verdict`` (that finding as a line
        for people) and the rest of ``summary.json``.

    Raises
    ------
    BadConfig
        An unknown strategy, no "random" to compare with, a bad round/seed/budget count,
        or too few speakers for the test and dev sets: all before any model work.
    MissingExtra, ClusterUnavailable
        With ``ray``: Ray is not installed, or its address cannot be reached (before
        any model work), or the cluster has no CPU for a task.
    """
    for name in cfg.strategies:
        get_strategy(name)  # an unknown name fails before any work
    if problems := cfg.problems():
        raise BadConfig("; ".join(problems))
    check_device(cfg.device, "simulate --device")
    cfg = replace(cfg, device=resolve_device(cfg.device))
    _check_out(Path(out))
    if ray is not None:
        from earmark.ranking.distributed import check_reachable, import_ray

        import_ray()
        check_reachable(ray.address)
    with torch_threads(cfg.threads):
        return _simulate(Path(manifest), cfg, Path(out), log, ray)


def _check_out(out: Path) -> None:
    """Refuse an output folder that cannot be one, before any model work.

    Nothing is created here: a study refused later (too few speakers) leaves no folder.

    Raises
    ------
    BadConfig
        ``out`` is a file, or lies below one, or in a folder this user cannot write to.
    """
    if out.exists() and not out.is_dir():
        raise BadConfig(f"{out}: a file, not a folder; give --out a folder for rounds.csv, "
                        "summary.json and the plot (a new name is created)")
    above = out.absolute()
    while not above.exists():
        above = above.parent
    if not above.is_dir():
        raise BadConfig(f"{out}: {above} is a file, so no folder can be made below it; give --out "
                        "a new folder name")
    if not os.access(above, os.W_OK | os.X_OK):
        raise BadConfig(f"{out}: cannot create the output folder ({above} is not writable); give "
                        "--out a folder you can write to")


def _simulate(manifest: Path, cfg: SimulateConfig, out: Path, log: Any, ray: Any = None) -> dict[str, Any]:
    """The body of :func:`simulate`, under its thread count."""
    started = time.perf_counter()
    rows = choose_speakers(read_study_manifest(manifest), cfg.speakers)
    # every seed splits the same speakers, so one split tells whether there are enough,
    # before the model loads and encodes the clips (which takes a while)
    split_speakers([r["speaker"] for r in rows], 0, cfg.test_speakers, cfg.dev_speakers)
    out.mkdir(parents=True, exist_ok=True)
    decode_cfg = DecodeConfig(model=cfg.model, batch_size=cfg.batch_decode, device=cfg.device,
                              quantize="none" if cfg.device == "cpu" else "auto")
    base = load_model(cfg.model, cfg.device)
    if cfg.device != "cpu":  # a batch of clips sized for the card's memory (a GPU idles at 16)
        from earmark.decode.gpu import for_device

        decode_cfg = for_device(decode_cfg, base)
        cfg = replace(cfg, batch_decode=decode_cfg.batch_size)
    import multiprocessing as mp

    if cfg.workers > 1:
        k = -(-len(rows) // cfg.workers)
        longest = max(float(r.get("duration") or 30.0) for r in rows)
        width = min(1500, math.ceil((longest + cfg.context_margin_seconds) * POSITIONS_PER_SECOND))
        with mp.get_context("fork").Pool(cfg.workers) as p:
            study = concat_studies(p.map(_encode_worker, [(cfg, rows[i : i + k], width)
                                                   for i in range(0, len(rows), k)]))
    else:
        study = encode_study(base, rows, cfg)
    log(f"encoded {len(rows)} clips ({study.durations.sum() / 60:.1f} min, "
        f"{len(set(study.speakers))} speakers) in {time.perf_counter() - started:.0f} s")
    # the zero-shot model's transcripts: round 0 and the first ranking of every seed
    t0 = time.perf_counter()
    zero_shot = decode(Decoder(base, decode_cfg), study,
                       range(len(rows)), cfg.batch_decode)
    log(f"zero-shot decoding: {time.perf_counter() - t0:.0f} s")
    seeds = list(range(cfg.seeds))
    partial = out / "rounds.partial.jsonl"
    partial.unlink(missing_ok=True)
    if ray is not None:
        from earmark.simulate.distributed import run_grid_on_ray

        parts = [run_grid_on_ray(study, cfg, decode_cfg, zero_shot, ray, partial, log)]
    elif cfg.workers > 1 and len(seeds) > 1:
        _SHARED["study"] = study  # forked workers see it
        try:
            with mp.get_context("fork").Pool(min(cfg.workers, len(seeds))) as p:
                parts = p.map(_worker, [(cfg, decode_cfg, s, zero_shot, partial) for s in seeds])
        finally:
            _SHARED.clear()
    else:
        parts = [run_seed(base, study, cfg, decode_cfg, s, zero_shot, log, partial) for s in seeds]
    results = [r for part in parts for r in part]
    _, _, test0 = split_speakers(study.speakers, 0, cfg.test_speakers, cfg.dev_speakers)
    detection = error_detection(study, zero_shot, [i for i, s in enumerate(study.speakers) if s in test0])
    record = write_outputs(results, detection, cfg, out, time.perf_counter() - started, len(rows))
    # the partial file only keeps what a stopped run measured; rounds.json now holds it all
    partial.unlink(missing_ok=True)
    return record
