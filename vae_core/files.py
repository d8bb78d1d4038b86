"""Two small file and network utilities the engine shares.

  atomic_write   write bytes so that a reader sees the old file or the new one, never half
  can_connect    one TCP connection attempt that gives up after a timeout, even when DNS hangs
"""
from __future__ import annotations

import os
import socket
import tempfile
import threading
from pathlib import Path

NETWORK_CHECK_SECONDS = 4.0


def atomic_write(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file renamed into place; returns the path.

    An interrupted write leaves the previous file (or none), never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; give them the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def can_connect(host: str, port: int, timeout: float = NETWORK_CHECK_SECONDS) -> OSError | None:
    """Try one TCP connection to host:port; None if it opened, else the error.

    DNS lookups ignore socket timeouts, so the attempt runs in a daemon thread that is
    abandoned after ``timeout`` seconds (then the error says so): this never hangs.
    """
    outcome: list = []

    def attempt():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as err:
            outcome.append(err)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        return TimeoutError(f"no answer within {timeout:g} s")
    return outcome[0]


__all__ = ["NETWORK_CHECK_SECONDS", "atomic_write", "can_connect"]
