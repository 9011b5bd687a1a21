"""Hostile inputs shared by the reliability tests and ``benchmarks/bench_reliability.py``.

Each maker writes one bad (or tricky) thing into a folder and says what the import must
do with it, so that a test and the benchmark try the same cases without copying them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SR = 16_000


def tone(seconds: float = 0.6, freq: float = 330.0, sr: int = SR, amp: float = 0.3) -> np.ndarray:
    """A sine tone: loud enough to pass the silence check, short enough to be cheap."""
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def wav_bytes(audio: np.ndarray, rate: int = SR, width: int = 2, channels: int = 1,
              header_rate: int | None = None, fmt_tag: int = 1) -> bytes:
    """A RIFF/WAVE file built by hand, so its header can say anything.

    Parameters
    ----------
    audio
        Samples in [-1, 1], shape (n,).
    rate
        The rate the samples are at.
    width
        Bytes per sample: 1 (unsigned), 2, 3 or 4 (signed PCM).
    header_rate
        The rate written into the header (default ``rate``): 0 or absurd values make a
        damaged header.
    fmt_tag
        The format code (1: PCM; others are formats no decoder here knows).
    """
    header_rate = rate if header_rate is None else header_rate
    scaled = np.clip(audio, -1, 1)
    if width == 1:
        data = ((scaled * 127) + 128).astype(np.uint8).tobytes()
    elif width == 3:
        ints = (scaled * (2**23 - 1)).astype("<i4")
        data = b"".join(int(v).to_bytes(4, "little", signed=True)[:3] for v in ints)
    else:
        data = (scaled * (2 ** (8 * width - 1) - 1)).astype(f"<i{width}").tobytes()
    # every channel holds the same signal: each sample's bytes repeated once per channel
    data = np.repeat(np.frombuffer(data, np.uint8).reshape(-1, width), channels, axis=0).tobytes()
    block = width * channels
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, header_rate & 0xFFFFFFFF,
                      (header_rate * block) & 0xFFFFFFFF, block, 8 * width)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@dataclass(frozen=True)
class Case:
    """One hostile entry for an import: its path and whether it must be imported."""

    name: str
    path: Path
    good: bool  # True: imported as a clip; False: rejected with a reason (or left out, said)


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _symlink(path: Path, target: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)
    return path


def hostile_files(folder: Path) -> list[Case]:
    """Write the fixed hostile cases of issue #23 (and a good file) into ``folder``.

    Returns
    -------
    list[Case]
        Every entry written, with what an import must do with it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    cases = [
        Case("good", _write(folder / "good.wav", wav_bytes(tone())), True),
        Case("good_8bit_3ch_rate", _write(folder / "good_22k.wav", wav_bytes(tone(sr=22050), 22050, 3)), True),
        Case("rate_zero", _write(folder / "rate0.wav", wav_bytes(tone(), header_rate=0)), False),
        Case("rate_absurd", _write(folder / "rate_huge.wav", wav_bytes(tone(), header_rate=2**31 - 1)), False),
        Case("text_as_mp3", _write(folder / "notes.mp3", b"these are my notes, not audio\n" * 4), False),
        Case("empty", _write(folder / "empty.wav", b""), False),
        Case("header_only", _write(folder / "cut.wav", wav_bytes(tone())[:44]), False),
        Case("unknown_format", _write(folder / "fmt.wav", wav_bytes(tone(), fmt_tag=0x1234)), False),
        Case("loop_self", _symlink(folder / "loop.wav", "loop.wav"), False),
        Case("loop_pair", _symlink(folder / "a_loop.wav", "b_loop.wav"), False),
        Case("loop_pair_b", _symlink(folder / "b_loop.wav", "a_loop.wav"), False),
        Case("dangling", _symlink(folder / "gone.wav", "nowhere/gone.wav"), False),
        # a file every user, root too, fails to read: reading it gives an I/O error
        Case("io_error", _symlink(folder / "io_error.wav", "/proc/self/mem"), False),
        Case("odd_name", _write(folder / "we\x1b[31mird\n name [x](http:e).wav", wav_bytes(tone(freq=440))), True),
    ]
    looped = folder / "looped_dir"
    looped.mkdir()
    _symlink(looped / "up", "..")  # a link to a folder above: not followed
    os.mkdir(folder / "folder.wav")  # a folder named like a recording
    return cases


def hostile_manifest(folder: Path, cases: list[Case]) -> Path:
    """A JSONL manifest naming every case, plus a path holding a NUL byte and a folder."""
    rows = [{"audio": str(c.path)} for c in cases]
    rows += [{"audio": "nul\x00byte.wav"}, {"audio": str(folder / "folder.wav")}]
    path = folder / "hostile.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# --- the command line ------------------------------------------------------------------------

@dataclass(frozen=True)
class CliResult:
    """What one in-process run of ``earmark.cli.main.main`` did."""

    argv: tuple[str, ...]
    code: int | None
    out: str
    err: str
    crashed: str  # the traceback of an exception that escaped main ("" if none)

    @property
    def clear_error(self) -> bool:
        """Exit 2 with one line on stderr (notes before it allowed) and no traceback."""
        lines = [l for l in self.err.splitlines() if l.strip() and not l.startswith("note: ")]
        return (self.code == 2 and not self.crashed and "Traceback" not in self.err
                and len(lines) == 1 and "error" in lines[0])


def run_cli(argv: list[str]) -> CliResult:
    """Run ``earmark`` in this process, capturing its output; never raises."""
    from earmark.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    crashed, code = "", None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse exits on a bad argument
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException:  # noqa: BLE001 - this is what the test counts
            crashed = traceback.format_exc()
    return CliResult(tuple(argv), code, out.getvalue(), err.getvalue(), crashed)


def hostile_commands(tmp: Path, project: Path) -> list[list[str]]:
    """Command lines that must each end in one clear line and exit 2.

    ``project`` is an initialised project; ``tmp`` a scratch folder.
    """
    loop = _symlink(tmp / "cli_loop.wav", "cli_loop.wav")
    a_file = _write(tmp / "plain.txt", b"not a folder\n")
    nul_manifest = tmp / "nul.jsonl"
    nul_manifest.write_text(json.dumps({"audio": "x\x00.wav"}) + "\n")
    p = str(project)
    return [
        ["init", str(tmp / "mem"), "--db-url", "sqlite:///:memory:"],
        ["init", str(tmp / "mem2"), "--db-url", "sqlite://"],
        ["init", str(tmp / "bad_url"), "--db-url", "nosuchdb://x"],
        ["init", str(a_file)],
        ["import", p, str(loop)],
        ["import", p, str(tmp / "missing_folder")],
        ["import", p, str(a_file)],
        ["import", str(tmp / "no_project"), str(tmp)],
        ["import", p, p],
        ["rank", p, "--batch-size", "0"],
        ["rank", p, "--threads", "-1"],
        ["rank", p, "--strategy", "nonsense"],
        ["rank", p, "--ray-workers", "0"],
        ["rank", p, "--ray", "no.such.host.invalid:6379"],
        ["queue", p, "--top", "0"],
        ["queue", str(a_file)],
        ["status", str(tmp / "no_project")],
        ["status", p, "--show-rejected", "x"],
        ["backup", str(tmp / "no_project")],
        ["restore", p, "--snapshot", "nope.db"],
        ["restore", p],
        ["review", p, "--port", "0"],
        ["review", p, "--host", "no.such.host.invalid"],
        ["simulate", "--manifest", str(nul_manifest), "--out", str(a_file)],
        ["simulate", "--manifest", str(tmp / "missing.jsonl"), "--strategies", ""],
        ["simulate", "--manifest", str(tmp / "missing.jsonl"), "--strategies", "random,,entropy"],
        ["simulate", "--manifest", str(tmp / "missing.jsonl"), "--rounds", "nan"],
        ["finetune", p, "--epochs", "0"],
        ["finetune", p, "--mode", "everything"],
        ["evaluate", p, "--model", "no-such-version"],
        ["export", p, "--out", str(a_file)],
        ["export-model", p, "--format", "ct2", "--out", str(a_file)],
        ["export-model", p, "--format", "onnx", "--out", str(tmp / "onnx_model")],
        ["export-model", p, "--model", "no-such-version", "--format", "hf", "--out", str(tmp / "hf_model")],
        ["round", p, "--lr", "-1"],
        ["round", p],  # no corrections yet
        ["models", p, "--show", "no-such-version"],
        ["models", str(a_file)],
        ["demo", str(a_file), "--samples", str(tmp / "missing.jsonl"), "--no-app"],
        ["nonsense-command"],
    ]
