"""``rank --ray`` shipping the clips' audio from the driver to its actors.

The slow test forces shipping on a local Ray (which would read the paths in place) and
checks that the transcripts are the single-process rank's.
"""

from __future__ import annotations

import pytest

from _support import SAMPLES


def test_auto_ships_only_when_the_cluster_has_other_machines():
    from earmark.ranking.shipping import should_ship

    alone = dict(client=False, driver_node="a", nodes=["a"])
    assert not should_ship("auto", **alone)
    assert should_ship("auto", client=False, driver_node="a", nodes=["a", "b"])
    assert should_ship("auto", client=True, driver_node="", nodes=[])  # ray://: no node of the cluster
    assert should_ship("always", **alone)
    assert not should_ship("never", client=True, driver_node="", nodes=[])
    with pytest.raises(ValueError, match="one of auto, always, never"):
        should_ship("sometimes", **alone)


def test_waves_hold_the_files_and_keep_the_shards(tmp_path):
    from earmark.ranking.shipping import waves

    files = []
    for i in range(5):
        p = tmp_path / f"{i}.flac"
        p.write_bytes(bytes([i]) * 100)
        files.append(str(p))
    shards = [{"shard": i, "paths": files[i : i + 1]} for i in range(5)] + [
        {"shard": 5, "paths": [str(tmp_path / "gone.flac")]}]
    got = list(waves(shards, budget=250))
    assert [[s["shard"] for s in w] for w in got] == [[0, 1], [2, 3], [4, 5]]  # 200 bytes a wave at most
    assert got[0][1]["audio"] == [bytes([1]) * 100] and got[2][1]["audio"] == [None]
    # a shard larger than the budget goes alone
    assert [[s["shard"] for s in w] for w in waves(shards[:2], budget=10)] == [[0], [1]]


def test_a_clip_reads_the_same_from_its_bytes(tmp_path):
    import numpy as np

    from earmark.audio import read_clip
    from earmark.errors import UnreadableAudio

    path = next((SAMPLES / "audio").iterdir())
    assert np.array_equal(read_clip(path, path.read_bytes()), read_clip(path))
    with pytest.raises(UnreadableAudio, match="stored clip is unreadable"):
        read_clip(tmp_path / "elsewhere.flac", b"not audio")
    with pytest.raises(UnreadableAudio, match="stored clip is missing"):
        read_clip(tmp_path / "elsewhere.flac")


def test_the_flag_reaches_the_ray_config():
    from earmark.cli.main import build_parser
    from earmark.cli.scale import ray_backend

    args = build_parser().parse_args(["rank", "p", "--ray", "--ship-audio", "always"])
    assert ray_backend(args).keywords["ray_cfg"].ship_audio == "always"
    assert ray_backend(build_parser().parse_args(["rank", "p", "--ray"])).keywords["ray_cfg"].ship_audio == "auto"


@pytest.mark.slow
def test_shipped_audio_gives_the_single_process_transcripts(tmp_path, monkeypatch):
    import functools
    from dataclasses import replace

    import earmark.ranking.distributed as dist
    from earmark.ranking.rank import rank
    from earmark.ranking.shipping import waves
    from test_rank_ray import _imported, _transcripts

    local, on_ray = _imported(tmp_path / "local"), _imported(tmp_path / "ray")
    decode = replace(local.config.decode, batch_size=1, threads=1, device="cpu")
    rank(local, decode=decode, progress=False)
    sent: list[int] = []

    def elsewhere(shards, budget=1 << 20):  # small waves: several pools of actors in turn
        # as on another machine: the paths the actors get name no file there, so only
        # the shipped bytes can be transcribed
        for wave in waves(shards, budget):
            sent.extend(len(s["audio"]) for s in wave)
            yield [{**s, "paths": [str(tmp_path / "not-here" / p.rsplit("/", 1)[-1]) for p in s["paths"]]}
                   for s in wave]

    monkeypatch.setattr(dist, "waves", elsewhere)
    report = rank(on_ray, decode=decode, progress=False, transcribe=functools.partial(
        dist.transcribe_on_ray, ray_cfg=dist.RayConfig(local_cpus=2, workers=2, ship_audio="always")))
    a, b = _transcripts(local), _transcripts(on_ray)
    assert sum(sent) == len(a) and not report.unreadable
    assert report.transcribed == len(a) == len(b) >= 31 and set(a) == set(b)
    for cid in a:
        assert a[cid][0] == b[cid][0], cid  # the same text, clip by clip
        assert b[cid][1]["errors_per_second"] == pytest.approx(a[cid][1]["errors_per_second"], rel=1e-3, abs=1e-3)
