"""The ``--ray`` options of ``rank`` and ``simulate`` (argparse only)."""

from __future__ import annotations

import argparse
from typing import Any

from earmark.cli.common import positive_int


def add_ray_flags(s: argparse.ArgumentParser) -> None:
    """``--ray [ADDRESS]``, ``--ray-workers``, ``--ray-cpus-per-worker``, ``--ship-audio``."""
    s.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="transcribe on Ray (needs `pip install 'earmark[ray]'`): no address starts a "
                        "local Ray; HOST:PORT, ray://HOST:PORT or auto joins a cluster")
    s.add_argument("--ray-workers", type=positive_int,
                   help="actors, one model each (default: one per GPU, else one per 2 CPUs)")
    s.add_argument("--ray-cpus-per-worker", type=positive_int,
                   help="CPUs (torch threads) per actor (default: the CPUs shared out among --ray-workers, else 2)")
    s.add_argument("--ship-audio", choices=("auto", "always", "never"), default="auto",
                   help="send the clips' audio from this machine with each shard: auto (default) when the "
                        "cluster has other machines; never when the project folder is on storage every node "
                        "mounts at the same path (NFS, a shared volume), so actors read it in place")


def ray_backend(args: argparse.Namespace) -> Any:
    """The ``transcribe`` backend for :func:`earmark.ranking.rank.rank` (None: in this process)."""
    if getattr(args, "ray", None) is None:  # `earmark demo` ranks without these options
        return None
    import functools

    from earmark.ranking.distributed import RayConfig, check_reachable, import_ray, transcribe_on_ray

    import_ray()  # a missing extra or a wrong address fails before a model loads
    check_reachable(args.ray)
    cfg = RayConfig(address=args.ray, workers=getattr(args, "ray_workers", None) or 0,
                    cpus_per_worker=getattr(args, "ray_cpus_per_worker", None) or 0,
                    ship_audio=getattr(args, "ship_audio", None) or "auto")
    return functools.partial(transcribe_on_ray, ray_cfg=cfg)


def add_simulate_ray_flag(s: argparse.ArgumentParser) -> None:
    """``simulate --ray [ADDRESS]``: the (strategy, seed) grid as Ray tasks."""
    s.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run each (strategy, seed) as a Ray task (needs `pip install 'earmark[ray]'`; "
                        "each task takes --threads CPUs, 1 by default): no address starts a local Ray; "
                        "HOST:PORT, ray://HOST:PORT or auto joins a cluster whose nodes have earmark "
                        "installed")


def simulate_ray(args: argparse.Namespace) -> Any:
    """The :class:`~earmark.ranking.distributed.RayConfig` of ``simulate --ray`` (None: local)."""
    if getattr(args, "ray", None) is None:
        return None
    from earmark.ranking.distributed import RayConfig, check_reachable, import_ray

    import_ray()  # a missing extra or a wrong address fails before the study is encoded
    check_reachable(args.ray)
    return RayConfig(address=args.ray)
