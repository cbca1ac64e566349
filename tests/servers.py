"""Real servers for integration tests: started as subprocesses on 127.0.0.1, stopped by PID.

Each helper is a context manager that yields the server's URL and always stops the whole
process group (the MLflow server forks workers), so no test leaks a process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen | None, timeout: float = 120.0) -> None:
    """Poll ``url`` until it answers 200; fail early if the server process (when given)
    died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM the server's process group, SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    pgid = os.getpgid(proc.pid)
    os.killpg(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(pgid, signal.SIGKILL)
        proc.wait(timeout)


@contextmanager
def _serve(cmd: list[str], env: dict[str, str], log_path: Path, health: str) -> Iterator[None]:
    """Start ``cmd`` in its own process group, wait until ``health`` answers, stop it after."""
    log = open(log_path, "ab")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    try:
        wait_http(health, proc)
        yield
    finally:
        stop(proc)
        log.close()


@contextmanager
def mlflow_server(root: Path, port: int | None = None) -> Iterator[str]:
    """A real ``mlflow server`` (SQLite backend, local artifacts under ``root``)."""
    port = port or free_port()
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
           "--artifacts-destination", str(root / "artifacts")]
    url = f"http://127.0.0.1:{port}"
    with _serve(cmd, env, root / "server.log", f"{url}/health"):
        yield url


@contextmanager
def prefect_server(home: Path, port: int | None = None, ui: bool = False) -> Iterator[str]:
    """A real ``prefect server`` with its own database under ``home`` (and its web UI at
    the URL without ``/api`` when ``ui``); yields the API URL."""
    port = port or free_port()
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_UI_ENABLED=str(ui).lower())
    env.pop("PREFECT_API_URL", None)
    cmd = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port),
           "--analytics-off"] + ([] if ui else ["--no-ui"])
    api = f"http://127.0.0.1:{port}/api"
    env["PREFECT_UI_API_URL"] = api  # else the UI calls the default port, 4200
    with _serve(cmd, env, home / "server.log", f"{api}/health"):
        yield api


PG_BIN = Path(os.environ.get("DEEPCAST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def postgres_missing() -> str | None:
    """Why a PostgreSQL server cannot be started here (None when it can)."""
    missing = [b for b in ("initdb", "postgres", "pg_isready") if not (PG_BIN / b).is_file()]
    if missing:
        return (f"PostgreSQL binaries not found in {PG_BIN} ({', '.join(missing)}); install "
                "Debian's postgresql package or set DEEPCAST_PG_BIN")
    if os.geteuid() == 0 and _server_user() is None:
        return "running as root and no 'postgres' or 'nobody' user to run the server as"
    return None


def _server_user():
    """The account the server runs as when we are root (postgres refuses to run as root)."""
    import pwd

    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    return None


@contextmanager
def postgres_server(port: int | None = None) -> Iterator[str]:
    """A throwaway PostgreSQL cluster (``initdb`` in a temp dir, trust auth, fsync off) on
    127.0.0.1; yields its SQLAlchemy URL for the psycopg 3 driver. As root, the server runs
    as ``postgres`` (or ``nobody``) and owns the temp dir."""
    import shutil
    import tempfile

    port = port or free_port()
    root = Path(tempfile.mkdtemp(prefix="deepcast-pg-"))
    user = _server_user() if os.geteuid() == 0 else None

    def demote() -> None:
        if user is not None:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)

    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    log = open(root / "server.log", "ab")  # noqa: SIM115 - closed in finally
    if user is not None:
        os.chown(root / "server.log", user.pw_uid, user.pw_gid)
    proc = None
    try:
        subprocess.run([str(PG_BIN / "initdb"), "-D", str(root / "data"), "-U", "postgres",
                        "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync",
                        "--no-instructions"], stdout=log, stderr=subprocess.STDOUT,
                       preexec_fn=demote, check=True, timeout=120)
        proc = subprocess.Popen(
            [str(PG_BIN / "postgres"), "-D", str(root / "data"), "-h", "127.0.0.1",
             "-p", str(port), "-k", str(root), "-c", "fsync=off",
             "-c", "full_page_writes=off", "-c", "synchronous_commit=off"],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=demote, start_new_session=True)
        deadline = time.monotonic() + 60
        while subprocess.run([str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1",
                              "-p", str(port)], check=False).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start (see {root / 'server.log'}):\n"
                                   + (root / "server.log").read_text()[-2000:])
            time.sleep(0.2)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(os.getpgid(proc.pid), signal.SIGINT)  # fast shutdown: ends sessions
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                stop(proc)
        log.close()
        shutil.rmtree(root, ignore_errors=True)
