"""Whether ``rank --ray`` ships the clips' audio to its actors, and how.

Actors on the driver's machine read the project's audio folder in place. Actors on
other machines see it only when it lives on storage every node mounts at the same path
(NFS, a shared volume); otherwise the driver reads each shard's clip files and sends
their bytes with the shard. Files are sent as stored (16 kHz FLAC, about 16 KB a
second of audio), never decoded on the driver.

The driver reads the audio wave by wave, each wave at most :data:`WAVE_BYTES` of files,
so a large pool never sits in the driver's memory or Ray's object store at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

SHIP_CHOICES = ("auto", "always", "never")
WAVE_BYTES = 512 << 20  # audio files read and handed to Ray at a time


def should_ship(mode: str, *, client: bool, driver_node: str, nodes: list[str]) -> bool:
    """Whether the driver sends the audio (``mode``: auto, always or never).

    ``auto`` ships when the driver is a Ray client (``ray://``: it is no node of the
    cluster) or the cluster has a live node other than the driver's: on a one-machine
    cluster the paths are read in place.
    """
    if mode not in SHIP_CHOICES:
        raise ValueError(f"ship_audio {mode!r}: choose one of {', '.join(SHIP_CHOICES)}")
    if mode != "auto":
        return mode == "always"
    return client or any(n != driver_node for n in nodes)


def cluster_view(ray: Any) -> dict[str, Any]:
    """:func:`should_ship`'s facts about the cluster ``ray`` is connected to."""
    try:
        client = bool(ray.util.client.ray.is_connected())
    except AttributeError:  # a Ray without the client
        client = False
    if client:
        return {"client": True, "driver_node": "", "nodes": []}
    return {"client": False, "driver_node": ray.get_runtime_context().get_node_id(),
            "nodes": [n["NodeID"] for n in ray.nodes() if n.get("Alive")]}


def file_bytes(path: str) -> bytes | None:
    """A clip file's bytes, or None when it cannot be read (the actor then says why)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def waves(shards: list[dict], budget: int = WAVE_BYTES) -> Iterator[list[dict]]:
    """Consecutive groups of ``shards`` whose files add up to at most ``budget`` bytes each
    (a shard larger than that alone), each shard with its ``audio`` (file bytes) added.

    Files are read as each group is asked for.
    """
    group: list[dict] = []
    size = 0
    for shard in shards:
        est = sum(_size(p) for p in shard["paths"])
        if group and size + est > budget:
            yield group
            group, size = [], 0
        group.append({**shard, "audio": [file_bytes(p) for p in shard["paths"]]})
        size += est
    if group:
        yield group


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
