"""deepcast's start of Prefect's temporary API server (flows/ephemeral.py): it answers,
flows run against it, it stops with its owner, and a failed start is one clear error."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from deepcast.features.errors import RunFailed
from deepcast.flows.ephemeral import TemporaryServer


def test_server_answers_and_stops(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / ".prefect"))
    server = TemporaryServer(timeout=120).start()
    try:
        url = server.wait()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/api")
        with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
            assert r.status == 200
        process = server.process
    finally:
        server.stop()
    assert process.poll() is not None and server.process is None
    assert (tmp_path / ".prefect").is_dir()  # its database lives in the caller's PREFECT_HOME


def test_a_start_that_times_out_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / ".prefect"))
    server = TemporaryServer(timeout=0.2).start()
    process = server.process
    with pytest.raises(RunFailed) as info:
        server.wait()
    assert "did not answer within" in str(info.value)
    assert "PREFECT_API_URL" in info.value.hint
    assert process.poll() is not None  # stopped, not left behind


def test_a_remote_dask_cluster_cannot_report_to_the_temporary_server(retail_csv,
                                                                     monkeypatch):
    """The temporary server listens on 127.0.0.1: a remote cluster is refused under it as
    it is with no Prefect API at all."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    import deepcast.flows.ephemeral as ephemeral
    from deepcast.features.errors import ConfigError
    from deepcast.flows.fanout import dask_mapper
    from deepcast.pipelines.config import DASK_ADDRESS_ENV, parse_config
    from tests.conftest import pipeline_dict

    server = ephemeral.TemporaryServer(timeout=1)
    server.port = 54321  # not started: only its URL matters here
    monkeypatch.setattr(ephemeral, "_SERVER", server)
    monkeypatch.setenv(DASK_ADDRESS_ENV, "tcp://10.0.0.5:8786")
    cfg = parse_config(pipeline_dict(retail_csv, execution={"runner": "dask"}))
    assert ephemeral.is_temporary(server.api_url)
    with temporary_settings({PREFECT_API_URL: server.api_url}), \
            pytest.raises(ConfigError, match="PREFECT_API_URL"):
        dask_mapper(cfg.execution)


OWNER = """
import sys, time
from deepcast.flows import ephemeral
ephemeral.start_if_needed()
url = ephemeral._SERVER.wait()
print(ephemeral._SERVER.process.pid, url, flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_server_stops_when_its_owner_is_killed(tmp_path):
    """SIGKILL runs no exit handler: the server notices its parent is gone and stops
    instead of living on re-parented to PID 1."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / ".prefect")
    def alive(pid: str) -> bool:  # a zombie no init reaps counts as gone
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
        except OSError:
            return False

    owner = subprocess.Popen([sys.executable, "-c", OWNER], env=env, stdout=subprocess.PIPE,
                             text=True)
    pid = "0"
    try:
        pid, url = owner.stdout.readline().split()
        with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
            assert r.status == 200
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.2)
        assert not alive(pid), "the server outlived its killed owner"
        with pytest.raises(OSError):
            urllib.request.urlopen(f"{url}/health", timeout=2)
    finally:
        owner.kill()
        if pid != "0" and alive(pid):
            os.kill(int(pid), signal.SIGKILL)
