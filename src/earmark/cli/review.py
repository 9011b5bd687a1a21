"""The ``review`` command: the review app (Streamlit) for a project."""

from __future__ import annotations

import argparse
import sys

from earmark.cli.common import PROJECT_HELP, add_command, open_for_writing, port
from earmark.errors import EarmarkError
from earmark.review.server import machine_hosts, run_until_stopped


def cmd_review(args: argparse.Namespace) -> int:
    import os
    import subprocess

    from earmark.resources import review_app
    from earmark.review.workflow import PROJECT_ENV

    project = open_for_writing(args.project, "review")  # a wrong path fails here, not in the browser
    app = review_app()
    # the app answers only requests addressed to this machine (see earmark.review.server)
    allow = [a for h in machine_hosts(args.host, args.allow_host or ()) for a in ("--allow", h)]
    cmd = [sys.executable, "-m", "earmark.review.server", *allow, "--", str(app),
           "--server.address", args.host, "--server.port", str(args.port),
           "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--client.toolbarMode", "viewer"]
    _check_port_free(args.host, args.port)  # else the URL printed would show whatever holds it
    env = {**os.environ, PROJECT_ENV: str(project.root.resolve())}
    if not _loopback(args.host):
        print(f"warning: --host {args.host} lets anyone who can reach this machine at port "
              f"{args.port} open the review app, which has no login: they can read the clips and "
              "save corrections under any name. Keep it on a trusted network, or keep the default "
              "--host 127.0.0.1 and put a reverse proxy with authentication in front (e.g. nginx "
              "with auth_basic, or Caddy with basicauth, forwarding to 127.0.0.1:"
              f"{args.port}, and name its host with --allow-host)", file=sys.stderr, flush=True)
    print(f"review app for {args.project}: http://{args.host}:{args.port}  (Ctrl+C stops it)",
          flush=True)
    return run_until_stopped(subprocess.Popen(cmd, env=env))


def _loopback(host: str) -> bool:
    """True when ``host`` is reachable from this machine only."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: whatever it resolves to may be on the network
        return False


def _check_port_free(host: str, port: int) -> None:
    import errno
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the app's server binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
                raise EarmarkError(f"cannot listen on {host}:{port} ({exc.strerror}): {host} is not "
                                   "an address of this machine; pass --host 127.0.0.1 (this machine "
                                   "only) or --host 0.0.0.0 (every network it is on)") from None
            if exc.errno == errno.EACCES:
                raise EarmarkError(f"cannot listen on {host}:{port} ({exc.strerror}): ports below "
                                   "1024 need administrator rights; pass --port N with N of 1024 "
                                   "or more") from None
            raise EarmarkError(f"cannot listen on {host}:{port} ({exc.strerror}): another program, "
                               "perhaps another `earmark review`, is using it; pass --port N with "
                               "a free port") from None


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``review``."""
    s = add_command(sub, "review", cmd_review, help="open the review app in the browser",
                    description="Start the review app (Streamlit): annotators correct the clips "
                                "the model is least sure of, with a dashboard and a clip browser. "
                                "It listens on loopback unless --host says otherwise.",
                    epilog="example:\n  earmark review myproj                  # http://127.0.0.1:8501\n"
                           "  earmark review myproj --host 0.0.0.0 --port 8600   # reachable "
                           "from the network")
    s.add_argument("project", help=PROJECT_HELP)
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default %(default)s: this machine only)")
    s.add_argument("--port", type=port, default=8501, help="port (default %(default)s)")
    s.add_argument("--allow-host", action="append", metavar="NAME",
                   help="also answer requests addressed to NAME (a reverse proxy's name); by "
                        "default only this machine's names and addresses are answered, which "
                        "keeps other web sites out (DNS rebinding); repeat for more names")
