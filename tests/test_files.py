"""vae_core.files: atomic writes and the one network probe."""
import os
import socket
import stat
import threading
import time

import pytest

from vae_core import files
from vae_core.files import atomic_write, can_connect


def test_atomic_write_writes_the_bytes_with_normal_permissions(tmp_path):
    path = atomic_write(tmp_path / "sub" / "dir" / "a.bin", b"\x00hello\xff")  # parents are made
    assert path == tmp_path / "sub" / "dir" / "a.bin"
    assert path.read_bytes() == b"\x00hello\xff"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    atomic_write(os.fspath(path), b"new")  # a str path works too, and replaces the file
    assert path.read_bytes() == b"new" and stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.bin"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = atomic_write(tmp_path / "a.bin", b"old content")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, b"new content that never lands")
    monkeypatch.undo()
    assert path.read_bytes() == b"old content"
    with pytest.raises(TypeError):
        atomic_write(path, "not bytes")  # fails inside the write itself
    assert path.read_bytes() == b"old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]
    with pytest.raises(TypeError):
        atomic_write(tmp_path / "b.bin", "not bytes")
    assert not (tmp_path / "b.bin").exists()  # no half file where there was none


@pytest.fixture
def listening_port():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    yield server.getsockname()[1]
    server.close()


def test_can_connect_to_a_listening_socket(listening_port):
    assert can_connect("127.0.0.1", listening_port, timeout=2.0) is None


def test_can_connect_to_a_closed_port_returns_the_error():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    err = can_connect("127.0.0.1", port, timeout=2.0)
    assert isinstance(err, OSError)


def test_can_connect_gives_up_after_its_timeout(monkeypatch):
    """A lookup or connection that hangs (DNS ignores socket timeouts) is abandoned."""
    release = threading.Event()

    def hang(*args, **kwargs):
        release.wait(30)
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.perf_counter()
    err = can_connect("example.invalid", 443, timeout=0.5)
    elapsed = time.perf_counter() - start
    release.set()
    assert isinstance(err, OSError) and "0.5" in str(err)
    assert 0.4 < elapsed < 2.0


def test_default_timeout_is_a_few_seconds():
    assert 1 <= files.NETWORK_CHECK_SECONDS <= 10
