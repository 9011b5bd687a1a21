"""earmark as a real package: the wheel, installed away from the source tree, runs the demo
on the samples it ships and serves the review app it ships.

The wheel is built offline from a copy of the source (no build isolation, so the build
tools come from the test extra) and installed with ``pip --target`` into a folder that is
the only entry of PYTHONPATH; the commands run from a folder outside the checkout, so
neither ``src/`` nor the current directory can supply earmark. The heavy dependencies
(torch, whisper, streamlit) come from the running interpreter's environment.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from _support import REPO

from earmark.review.server import wait_until_serving

pytestmark = pytest.mark.slow


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """Build the wheel, install it into a bare folder; the folder, the env and a cwd."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    # a copy without the checkout's build leftovers (egg-info, caches), so the wheel
    # holds only what the package configuration selects
    shutil.copytree(REPO / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    dist = base / "dist"
    built = _run([sys.executable, "-m", "build", "--wheel", "--no-isolation",
                  "--outdir", str(dist), str(source)], timeout=300)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    wheels = list(dist.glob("earmark-*.whl"))
    assert len(wheels) == 1, wheels

    site = base / "site"
    pip = _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                "--target", str(site), str(wheels[0])], timeout=300)
    assert pip.returncode == 0, pip.stderr[-2000:]
    shutil.rmtree(source)  # nothing of the source copy is left to be found either

    cwd = base / "elsewhere"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = str(site)
    return {"site": site, "cwd": cwd, "env": env, "script": site / "bin" / "earmark"}


def test_the_installed_copy_is_the_one_imported(installed):
    out = _run([sys.executable, "-c", "import earmark; print(earmark.__file__)"],
               cwd=installed["cwd"], env=installed["env"], timeout=120)
    assert out.returncode == 0, out.stderr
    imported = Path(out.stdout.strip()).resolve()
    assert imported.is_relative_to(installed["site"].resolve()), imported
    assert not imported.is_relative_to(REPO.resolve())
    # the app and the samples are package data of the wheel
    pkg = installed["site"] / "earmark"
    for name in ("app/Review.py", "app/earmark_ui.py", "samples/manifest.jsonl",
                 "samples/audio/s01.wav", "samples/audio/long_dictation.wav"):
        assert (pkg / name).is_file(), name
    assert list((pkg / "app" / "pages").glob("*.py")), "the app's pages are missing"


def test_installed_demo_ranks_the_shipped_samples(installed):
    project = installed["cwd"] / "demo"
    out = _run([str(installed["script"]), "demo", str(project), "--no-app", "--top", "5"],
               cwd=installed["cwd"], env=installed["env"], timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    # the samples came out of the installed package, not the checkout
    manifest = installed["site"] / "earmark" / "samples" / "manifest.jsonl"
    assert f"$ earmark import {project} {manifest}" in out.stdout
    assert "imported 31 files as 32 clips" in out.stdout
    assert "queue: 32 clips ordered by errors-per-second" in out.stdout
    assert "next: earmark review" in out.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_installed_review_serves_the_shipped_app(installed):
    project = installed["cwd"] / "review"
    init = _run([str(installed["script"]), "init", str(project)],
                cwd=installed["cwd"], env=installed["env"], timeout=120)
    assert init.returncode == 0, init.stderr
    port = _free_port()
    proc = subprocess.Popen([str(installed["script"]), "review", str(project), "--port", str(port)],
                            cwd=installed["cwd"], env=installed["env"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert wait_until_serving(f"http://127.0.0.1:{port}", proc, timeout=120), \
            f"no health answer; exit {proc.poll()}"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            assert r.status == 200 and "<html" in r.read().decode().lower()
    finally:
        # Ctrl+C, as a person stops it; the whole group, so streamlit's server stops too
        running = proc.poll() is None
        if running:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            output, _ = proc.communicate(timeout=30)
            stopped = True
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            stopped = False
    assert running and stopped, f"not stopped by Ctrl+C within 30 s:\n{output[-2000:]}"
    assert f"review app for {project}: http://127.0.0.1:{port}" in output
    assert "Traceback" not in output, output[-2000:]
