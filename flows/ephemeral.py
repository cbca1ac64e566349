"""Prefect's temporary API server, started by deepcast at the very start of a flow command.

With no ``PREFECT_API_URL``, Prefect starts a temporary server the first time a flow runs:
it imports its whole server package in the calling process (~3 s of CPU on 2 cores), then
starts ``uvicorn`` and waits for it (5-25 s). A command that starts the same server itself,
as the first thing after its preflight, gets the server's start-up on the other core while
it imports TensorFlow, Great Expectations and MLflow, and never imports the server package:
the cold ``deepcast forecast`` of 10,000 series dropped by about that much
(``benchmarks/speed.py cli``). The server is the one Prefect would start (same app, same
``PREFECT_HOME`` database, ephemeral services, no UI, 127.0.0.1 only); the flow reaches it
through ``PREFECT_API_URL``, set for this process and its children (Dask workers), and it
is stopped when the process exits. A process killed outright (SIGKILL, the OOM killer) runs
no exit handler: the server then watches its parent itself and stops when it is gone
(``python -m deepcast.flows.ephemeral PARENT_PID UVICORN_ARGS...``), so it never lingers
re-parented to PID 1.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from deepcast.features.errors import RunFailed

PORT_IN_USE = 3  # uvicorn's exit code when its port is taken (Prefect retries the same way)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TemporaryServer:
    """A ``prefect.server`` app under uvicorn on 127.0.0.1; :meth:`start` returns at once,
    :meth:`wait` blocks until it answers ``/api/health`` (or raises :class:`RunFailed`)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.error: str | None = None
        self._ready = threading.Event()
        self._log = tempfile.TemporaryFile(mode="w+b")  # the server's output, for errors

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def _spawn(self) -> None:
        self.port = _free_port()
        package = Path(importlib.util.find_spec("prefect").origin).parent
        env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
               "PREFECT__SERVER_FINAL": "1"}
        env.pop("PREFECT_API_URL", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "deepcast.flows.ephemeral", str(os.getpid()),
             "--app-dir", str(package.parent), "--factory",
             "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port",
             str(self.port), "--log-level", "error", "--lifespan", "on"],
            env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)

    def start(self) -> TemporaryServer:
        self._spawn()
        atexit.register(self.stop)
        threading.Thread(target=self._watch, name="prefect-server-start", daemon=True).start()
        return self

    def _watch(self) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            while time.monotonic() < deadline:
                code = self.process.poll()
                if code == PORT_IN_USE:
                    self._spawn()
                elif code is not None:
                    self.error = f"it exited with code {code}"
                    return
                with contextlib.suppress(OSError):
                    with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as r:
                        if r.status == 200:
                            return
                time.sleep(0.1)
            self.error = f"it did not answer within {self.timeout:.0f} s"
        except Exception as exc:  # noqa: BLE001  (reported by wait())
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._ready.set()

    def wait(self) -> str:
        """The API URL once the server answers; :class:`RunFailed` naming why it did not."""
        self._ready.wait()
        if self.error is None:
            return self.api_url
        self._log.seek(0)
        tail = self._log.read()[-1500:].decode("utf-8", "replace").strip()
        self.stop()
        raise RunFailed(
            f"Prefect's temporary API server did not start: {self.error}"
            + (f"; its output ended with: {tail}" if tail else ""),
            hint="point PREFECT_API_URL at a running server (`prefect server start`), or "
            "raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS on a slow machine")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


_SERVER: TemporaryServer | None = None


def start_if_needed() -> None:
    """Start the temporary server when this process has no Prefect API to talk to (no
    ``PREFECT_API_URL`` in the environment or the active profile) and Prefect would start
    one itself; a no-op otherwise, and when already started."""
    global _SERVER
    if _SERVER is not None:
        return
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_ALLOW_EPHEMERAL_MODE,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    )

    if PREFECT_API_URL.value() or not PREFECT_SERVER_ALLOW_EPHEMERAL_MODE.value():
        return
    _SERVER = TemporaryServer(float(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()))
    _SERVER.start()


def is_temporary(url: str | None) -> bool:
    """True when ``url`` is the temporary server this process started (reachable from
    this machine only: a remote Dask worker could not report to it)."""
    return _SERVER is not None and url == _SERVER.api_url


@contextlib.contextmanager
def api() -> Iterator[None]:
    """Run the enclosed flow against the temporary server when one was started (waits for
    it to answer first); otherwise against whatever Prefect is configured with."""
    if _SERVER is None:
        yield
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = _SERVER.wait()
    before = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url  # child processes (Dask workers) inherit it
    try:
        with temporary_settings({PREFECT_API_URL: url}):
            yield
    finally:
        if before is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = before


def _exit_with_parent(parent: int, poll: float = 0.5) -> None:
    """Stop this process (SIGTERM: uvicorn shuts down cleanly, then a hard exit after 10 s)
    once ``parent`` is no longer its parent: the parent died, however it died."""
    import signal

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


if __name__ == "__main__":  # the server process: watchdog, then uvicorn with the given args
    _exit_with_parent(int(sys.argv[1]))
    from uvicorn.main import main as uvicorn_command

    uvicorn_command.main(args=sys.argv[2:], prog_name="uvicorn")
