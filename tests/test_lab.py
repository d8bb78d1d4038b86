"""`make lab`, as a student on a cloud box or in Docker would start it: as root, with no display.

The test runs the README's command itself (`make lab`, with LAB_ARGS choosing a free port
and a token), waits until the server answers, and checks that it printed the URL to open,
that it did not try to start a browser, and that the course's settings turn JupyterLab's
news pop-up off (the settings the page loads, read through Lab's own settings API).
The server is stopped through its process group, always.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NEWS = "@jupyterlab/apputils-extension:notification"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="checks `make lab` as root; this user is not root")
def test_make_lab_starts_as_root_headless_with_no_news_prompt(tmp_path):
    port, token = _free_port(), secrets.token_hex(16)
    log = tmp_path / "lab.log"
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}  # a headless server
    args = f"--port={port} --ServerApp.ip=127.0.0.1 --IdentityProvider.token={token}"
    with open(log, "w") as out:
        proc = subprocess.Popen(["make", "lab", f"LAB_ARGS={args}"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline, status = time.monotonic() + 120, None
        while time.monotonic() < deadline and status is None:
            assert proc.poll() is None, f"make lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    status = json.load(r)
            except OSError:
                time.sleep(0.5)
        assert status is not None, f"no server after 120 s:\n{log.read_text()[-3000:]}"
        with urllib.request.urlopen(f"{base}/lab/api/settings/{NEWS}?token={token}", timeout=10) as r:
            schema = json.load(r)["schema"]["properties"]  # overrides.json becomes the defaults
        text = log.read_text()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    # as root JupyterLab refuses to start without --allow-root; the answer above shows it started
    assert "jupyter lab --allow-root --no-browser" in text, "make echoes the command it ran"
    assert f"http://127.0.0.1:{port}/lab" in text and token in text, "the URL to open is printed"
    assert "No web browser found" not in text
    defaults = {k: schema[k]["default"] for k in ("fetchNews", "checkForUpdates")}
    assert defaults == {"fetchNews": "false", "checkForUpdates": False}, defaults
