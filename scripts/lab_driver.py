"""Driving JupyterLab in headless Chromium with Playwright: the real-browser test's machinery.

Used by ``tests/test_browser.py`` (the latent explorer in Lab) and
``benchmarks/lab_run_all.py`` (notebook 04's Run All until its slider answers). Needs
Debian's chromium at /usr/bin/chromium (``scripts/install_chromium.sh``) and the
playwright package; Playwright never downloads a browser here.

    jupyter_lab(workdir, root)     a Lab server on a free port (context manager)
    run_all_cells(page)            Run > Run All Cells, clicked again if Lab dropped it
    wait_all_cells_ran(page, lab)  every code cell shows [n]; fails at once on an error
    assert_no_cell_errors(page)    no error output, no Traceback on stderr
    IMAGE_BYTES_JS, WATCH_JS       page scripts: hash an <img>'s PNG; time keys and src changes
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

# Console "error" messages that are not errors of the course's code, each explained.
BENIGN_CONSOLE = [
    # Lab's offline-safe fetches of optional resources answer 404 when nothing is
    # configured (e.g. a missing favicon or translation bundle); Chromium logs every
    # non-2xx resource load as a console error. Only 404s of plain resource loads.
    re.compile(r"^Failed to load resource: the server responded with a status of 404"),
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"JupyterLab did not answer at {url} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def jupyter_lab(workdir: Path, root: Path, env: dict | None = None):
    """A JupyterLab server on a free localhost port with a random token, serving root.

    workdir: a fresh folder for Lab's settings, runtime files and log (lab.log) and the
    kernel's model cache (VAE_CACHE_DIR=workdir/cache: nothing cached). The kernel is this
    environment's python and inherits os.environ (VAE_DATA_DIR, VAE_SMOKE, ...) updated
    with env. Yields {'base', 'token', 'pid', 'log'}; stops Lab by its PID at the end.
    """
    state = workdir / "jupyter"  # fresh settings, workspaces and runtime files per run
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, **(env or {})}
    env.update({
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "JUPYTER_CONFIG_DIR": str(state / "config"),
        "VAE_CACHE_DIR": str(workdir / "cache"),
        "PYTHONUNBUFFERED": "1",
        # the 'python3' kernelspec runs whichever `python` is first on PATH: make it this
        # environment's, whatever virtualenv the caller's shell has activated
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    })
    env.pop("VIRTUAL_ENV", None)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
           "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
           f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}",
           f"--LabApp.user_settings_dir={state / 'settings'}",
           f"--LabApp.workspaces_dir={state / 'workspaces'}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    # User settings for this run only: start the notebook's kernel without the "Select
    # Kernel" dialog, and never fetch Jupyter news (no network; no notification toast).
    for plugin, values in [("@jupyterlab/notebook-extension/tracker",
                            # every cell in the page, not only those scrolled into view, so that
                            # the prompts read by wait_all_cells_ran are all of them
                            {"autoStartDefaultKernel": True, "windowingMode": "none"}),
                           ("@jupyterlab/apputils-extension/notification", {"fetchNews": "false"})]:
        f = state / "settings" / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values))
    # The debugger sidebar is no part of the explorer; it also sends debug requests on
    # every kernel (re)connection, which log console errors while a socket reconnects.
    page_config = state / "config" / "labconfig" / "page_config.json"
    page_config.parent.mkdir(parents=True, exist_ok=True)
    page_config.write_text(json.dumps({"disabledExtensions": {"@jupyterlab/debugger-extension": True}}))
    log = workdir / "lab.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root,
                                start_new_session=True)
    pid = proc.pid
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_server(f"{base}/api/status?token={token}", proc, log)
        yield {"base": base, "token": token, "pid": pid, "log": log}
    finally:
        # Stop JupyterLab by its PID: SIGTERM makes it shut its kernel down and exit;
        # SIGKILL only if it has not exited 20 s later.
        if proc.poll() is None:
            os.kill(pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                proc.wait(timeout=10)


IMAGE_BYTES_JS = """async (img) => {
  const buf = await (await fetch(img.src)).arrayBuffer();
  const b = new Uint8Array(buf);
  let h = 2166136261 >>> 0;  // FNV-1a over the PNG bytes
  for (let i = 0; i < b.length; i++) { h ^= b[i]; h = Math.imul(h, 16777619) >>> 0; }
  return {n: b.length, hash: h, png: b[1] === 80 && b[2] === 78 && b[3] === 71};
}"""

WATCH_JS = """(img) => {
  // Time stamps of key presses (capture phase) and of the image's src changes.
  window.__vae = {keys: [], srcs: []};
  document.addEventListener('keydown', () => window.__vae.keys.push(performance.now()), true);
  new MutationObserver(() => window.__vae.srcs.push(performance.now()))
      .observe(img, {attributes: true, attributeFilter: ['src']});
}"""


def run_all_cells(page, attempts: int = 3) -> float:
    """Run > Run All Cells, make sure the run really started; returns the click's time.

    Right after the notebook opens, Lab may still be (re)connecting the kernel's
    websocket; a run request in that window can be dropped without any message. So wait
    for the kernel to be idle and Lab's HTTP traffic to settle, click Run All Cells, and
    check that a prompt turns to [*] (Lab marks every queued cell so) or otherwise changes;
    if none does within 20 s, click again (nothing ran, so nothing runs twice). A notebook
    saved with its outputs already shows [n] prompts, hence the comparison with before.
    Returns time.monotonic() at the click that started the run.
    """
    prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt")
    for attempt in range(attempts):
        page.wait_for_selector(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']",
                               timeout=60_000)
        try:
            page.wait_for_load_state("networkidle", timeout=15_000)
        except Exception:  # a busy Lab may keep polling; idle kernel is what matters
            pass
        # Make the notebook the current widget: Run All Cells acts on (and is only
        # enabled for) the current notebook.
        page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.click()
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        before = prompts.all_inner_texts()
        clicked = time.monotonic()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        while time.monotonic() < clicked + 20:
            now = prompts.all_inner_texts()
            if any("*" in t for t in now) or now != before:
                return clicked
            time.sleep(0.1)
        print(f"\nRun All Cells attempt {attempt + 1}: no cell started; trying again")
    raise AssertionError(f"Run All Cells started no cell in {attempts} attempts")


def wait_all_cells_ran(page, lab, timeout: float = 120.0) -> int:
    """Wait until every code cell shows an execution count [n] (none [ ] or [*]); returns
    how many times all cells had to be run again (0 for a clean run).

    A cell that shows an error fails the test at once, with the error's text (Lab then
    leaves the cells after it un-run, so waiting longer would only hide the cause). If
    the kernel sits idle with cells un-run and no error (a run request lost, e.g. while a
    busy machine's websocket reconnects, or a kernel restart), say so with Lab's log and
    run all cells once more (cells that had run then run twice: a timing with a re-run is
    no clean measurement).
    """
    deadline = time.monotonic() + timeout
    stalled_since, reruns = None, 0
    while time.monotonic() < deadline:
        prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
        if prompts and all(re.search(r"\[\d+\]", t) for t in prompts):
            return reruns
        assert_no_cell_errors(page)
        if page.locator(".jp-Dialog", has_text="Kernel Restarting").count():
            log = Path(lab["log"]).read_text(errors="replace")[-3000:]
            raise AssertionError(f"the kernel died while running the cells (prompts {prompts}); "
                                 f"Lab's log (end):\n{log}")
        idle = page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']").count() > 0
        if idle and not any("*" in t for t in prompts):
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 10 and reruns == 0:
                log = Path(lab["log"]).read_text(errors="replace")[-2000:]
                print(f"\nkernel idle with cells un-run ({prompts}) and no error shown; running all cells "
                      f"again. Lab's log (end):\n{log}")
                reruns += 1
                stalled_since = None
                run_all_cells(page)
        else:
            stalled_since = None
        time.sleep(0.25)
    outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
    raise AssertionError(f"not every code cell ran within {timeout:.0f} s: prompts {prompts}; "
                         f"cell outputs so far: {outputs}")


def slider_number(text: str) -> float:
    """A slider readout as a float (ipywidgets prints negatives with a Unicode minus)."""
    return float(text.strip().replace("\u2212", "-"))


def latencies(keys: list[float], srcs: list[float]) -> list[float]:
    """For each key press, ms until the first image src change after it."""
    out = []
    for k in keys:
        after = [s for s in srcs if s >= k]
        if after:
            out.append(after[0] - k)
    assert len(out) == len(keys), (keys, srcs)
    return out


def assert_no_cell_errors(page) -> None:
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error'], "
                          ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
    assert errors.count() == 0, errors.all_inner_texts()
    stderr = page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
    bad = [t for t in stderr if "Error" in t or "Traceback" in t]
    assert not bad, f"cell output shows an error: {bad}"
    # A widget the frontend cannot show is reported as plain text, not as stderr.
    broken = [t for t in page.locator(".jp-OutputArea-output").all_inner_texts() if "Error displaying widget" in t]
    assert not broken, broken


def save_failure_state(page, lab, console_all) -> None:
    """On failure: a screenshot, the cell outputs and the console next to Lab's log, and their ends printed."""
    out = Path(lab["log"]).parent
    try:
        page.screenshot(path=str(out / "failure.png"))
        texts = page.locator(".jp-OutputArea-output").all_inner_texts()
        (out / "failure_outputs.txt").write_text("\n----\n".join(texts))
        (out / "failure_console.txt").write_text("\n".join(console_all))
        print(f"\nfailure state saved in {out} (failure.png, failure_outputs.txt, lab.log)")
        # CI keeps only the log: the end of the cell outputs and of Lab's log go there too
        print("cell outputs (end):\n" + "\n----\n".join(texts)[-4000:])
        print("lab.log (end):\n" + Path(lab["log"]).read_text(errors="replace")[-4000:])
    except Exception as exc:  # the page may be gone; the original error matters more
        print(f"\ncould not save the failure state: {exc}")
