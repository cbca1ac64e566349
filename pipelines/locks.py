"""Crash safety between processes: who is still alive, and one exclusive lock per model.

A process killed with SIGKILL cannot clean up after itself; the next process of the same
host uses :func:`process_alive` to recognise what it left behind (temp files, runs left
RUNNING). :func:`exclusive` serialises a critical section (the promotion decision) across
the processes of one host.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOST = socket.gethostname()


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


@contextmanager
def exclusive(*key: str) -> Iterator[None]:
    """Hold an exclusive lock named by ``key`` (e.g. store URI and model name) for the
    block; other processes of this host asking for the same key wait. The kernel releases
    it if the holder dies, so a killed process never leaves it locked."""
    digest = hashlib.sha256("\0".join(key).encode()).hexdigest()[:24]
    folder = Path(tempfile.gettempdir()) / "deepcast-locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{digest}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
