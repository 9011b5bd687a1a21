"""`earmark review` as a process: it answers only requests addressed to this machine,
and a SIGTERM to it stops its Streamlit child too (nothing is left listening)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys

import psutil
import pytest

from earmark.review.server import machine_hosts, wait_until_serving

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, host_header: str, path: str = "/_stcore/health") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Host": host_header})
    status = conn.getresponse().status
    conn.close()
    return status


@pytest.fixture
def served(handmade, tmp_path):
    """`earmark review` on a free port: (process, port); stopped after if still running."""
    port = free_port()
    log = open(tmp_path / "app.log", "w")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "earmark.cli", "review", str(handmade.root),
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env=env)
    if not wait_until_serving(f"http://127.0.0.1:{port}", proc, timeout=90):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"the review app did not start:\n{(tmp_path / 'app.log').read_text()}")
    yield proc, port
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


def test_only_requests_addressed_to_this_machine_are_answered(served):
    _, port = served
    assert get(port, f"localhost:{port}") == 200
    assert get(port, f"127.0.0.1:{port}", "/") == 200
    assert get(port, f"{socket.gethostname()}:{port}") == 200
    # a page of another site whose name was rebound to 127.0.0.1
    assert get(port, f"attacker.example:{port}") == 400
    assert get(port, f"attacker.example:{port}", "/") == 400


def test_sigterm_stops_the_streamlit_child_too(served):
    proc, port = served
    children = psutil.Process(proc.pid).children(recursive=True)
    assert children, "earmark review runs Streamlit as its child"
    proc.send_signal(signal.SIGTERM)  # to earmark alone, as a service manager would
    assert proc.wait(timeout=30) is not None
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive
    with socket.socket() as s:  # nothing listens on the port any more
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_the_hosts_of_this_machine():
    hosts = machine_hosts("127.0.0.1", ["proxy.example"])
    assert {"localhost", "127.0.0.1", "proxy.example", socket.gethostname().lower()} <= set(hosts)
    assert "0.0.0.0" not in machine_hosts("0.0.0.0")
    assert "127.0.0.1" in machine_hosts("0.0.0.0")
