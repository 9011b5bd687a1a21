"""Where a model runs: the device (``auto``, ``cpu``, a GPU) and how many CPU threads torch
uses. torch is imported only when a GPU is asked for or a thread count is set, so checking
a setting stays instant."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

from earmark.errors import BadConfig


def resolve_device(device: str) -> str:
    """Map ``"auto"`` to ``"cuda"`` when a GPU is present, else ``"cpu"``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


DEVICES = "auto, cpu, cuda, cuda:N (a GPU's index) or mps"


def device_problem(device: str) -> str | None:
    """Why ``device`` cannot run a model here (None when it can).

    torch is imported only for a GPU device, so checking "auto" or "cpu" stays instant.
    """
    if device in ("auto", "cpu"):
        return None
    if not isinstance(device, str) or not re.fullmatch(r"cuda(:\d+)?|mps", device):
        return f"{device!r} is not a device; use {DEVICES}"
    import torch

    if device == "mps":
        if not torch.backends.mps.is_available():
            return "'mps' was asked for but torch sees no Apple GPU here; use auto or cpu"
        return None
    if not torch.cuda.is_available():
        return (f"{device!r} was asked for but torch sees no CUDA GPU here (no GPU, no driver, "
                "or a CPU-only torch); use auto or cpu")
    count = torch.cuda.device_count()
    index = int(device.partition(":")[2] or 0)
    if index >= count:
        return f"{device!r} was asked for but this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}"
    return None


def check_device(device: str, field: str = "device") -> None:
    """Raise :class:`BadConfig` unless ``device`` can run a model on this machine.

    Parameters
    ----------
    device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``; a GPU must be there.
    field
        The setting's name for the message (``"decode.device"``, ``"finetune.device"``).
    """
    problem = device_problem(device)
    if problem:
        raise BadConfig(f"{field}: {problem}")


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity mask, which a container narrows)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def usable_threads(n: int) -> int:
    """``n`` torch CPU threads, at most one per core (0 stays 0: torch's own choice).

    More threads than cores never helps torch and can make it crawl: OpenMP threads
    spin at every barrier, so 1,000 threads on two cores turn a 3 s clip into minutes.
    """
    return min(n, cpu_cores())


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` torch CPU threads (0: leave the count), then restore it.

    torch's thread count is process-wide: ranking sets one thread per overlapped stage,
    and a fine-tuning run that follows in the same process (a script that ranks, then
    fine-tunes) must not inherit that and train on one core.
    """
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(usable_threads(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
