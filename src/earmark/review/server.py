"""Serve the review app (Streamlit) so that only requests addressed to this machine get in.

A web page on another site can make the browser send requests to ``127.0.0.1:8501``
under a name it controls (DNS rebinding) and so read the project's transcripts through
the annotator's browser. Such a request carries the other site's name in its ``Host``
header; the app refuses every request whose ``Host`` is not one of this machine's names
or addresses (Starlette's ``TrustedHostMiddleware`` in front of Streamlit's own).

Run as ``python -m earmark.review.server --allow HOST [--allow HOST ...] -- APP.py
[streamlit options]``; ``earmark review`` does.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Sequence


def machine_hosts(bind: str, extra: Iterable[str] = ()) -> list[str]:
    """The host names a request to this machine may carry: loopback, this machine's
    names and addresses, the address the app listens on, and ``extra``.

    Parameters
    ----------
    bind
        The address the app listens on (``--host``); ``0.0.0.0``/``::`` add every
        address of every network interface.
    extra
        More names to accept (a reverse proxy's, say).
    """
    hosts = {"localhost", "127.0.0.1", "::1", socket.gethostname(), socket.getfqdn()}
    if bind not in ("0.0.0.0", "::", ""):
        hosts.add(bind)
    try:
        hosts.update(info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None))
    except OSError:
        pass  # a name that does not resolve adds no address
    if bind in ("0.0.0.0", "::"):
        import psutil

        hosts.update(a.address.split("%")[0] for addrs in psutil.net_if_addrs().values()
                     for a in addrs if a.family in (socket.AF_INET, socket.AF_INET6))
    hosts.update(h.strip() for h in extra if h.strip())
    # the Host header writes an IPv6 address in brackets; the check compares it bare
    return sorted(h.strip("[]").lower() for h in hosts if h)


def run_until_stopped(child: subprocess.Popen) -> int:
    """Wait for the app's process, stopping it when this one is told to stop.

    A SIGTERM (a service manager, ``kill``, a closed terminal's SIGHUP) would end this
    process alone and leave Streamlit listening on the port; it is passed on instead,
    and this process ends when the app has.
    """
    import signal

    def stop(signum: int, _frame: object) -> None:
        child.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:  # Ctrl+C reaches the app too; wait for it to finish
                continue
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child.poll() is None:
            child.kill()


def _guard(allowed: Sequence[str]) -> None:
    """Put the Host check in front of Streamlit's middleware (its server builds the app
    from ``create_streamlit_middleware`` at start)."""
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from streamlit.web.server.starlette import starlette_app

    own = starlette_app.create_streamlit_middleware

    def with_host_check() -> list[Middleware]:
        return [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed),
                           www_redirect=False), *own()]

    starlette_app.create_streamlit_middleware = with_host_check


def main(argv: Sequence[str] | None = None) -> int:
    """``--allow HOST``... ``--`` then ``streamlit run``'s arguments."""
    args = list(sys.argv[1:] if argv is None else argv)
    split = args.index("--") if "--" in args else len(args)
    allowed = [a for flag, a in zip(args[:split], args[1:split]) if flag == "--allow"]
    if not allowed:
        raise SystemExit("earmark.review.server: give at least one --allow HOST")
    _guard(allowed)
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", *args[split + 1:]]
    return cli.main()


if __name__ == "__main__":
    sys.exit(main())


def wait_until_serving(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> bool:
    """Wait until the app at ``url`` answers Streamlit's health check.

    Returns
    -------
    bool
        True once it answers; False if ``proc`` (the ``earmark review`` process) ended
        or ``timeout`` seconds passed first.
    """
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False
