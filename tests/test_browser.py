"""The latent explorer in a real browser: JupyterLab + headless Debian Chromium + Playwright.

The test copies tests/browser/explorer.ipynb to a temporary folder, starts JupyterLab
there on a free localhost port with a random token (the kernel is this virtual
environment's python), opens the notebook in headless Chromium, runs all cells from the
Run menu (the notebook loads notebook 04's shipped main model and ends a cell with
``LatentSliders(main.model, ...)`` as notebook 04 does, which the Explorer base displays as its widget),
waits for the explorer, moves the top latent slider with the keyboard (focus +
ArrowRight), and checks that

* the decoded image's bytes changed after every key press,
* no cell output shows an error (stderr text with "Error"/"Traceback", or an error output),
* the page logged no JavaScript error (page errors and console errors; see
  BENIGN_CONSOLE for the only ones ignored, each explained),

and saves a screenshot to figures/10_latent_explorer_jupyterlab.png. It also prints the
browser-side latency from key press to the new image (the full path: browser -> kernel
-> browser). JupyterLab is stopped by its PID in the fixture's teardown, always.

Run All Cells is clicked once Lab is idle; if no cell has started 20 s later (Lab can
drop a run request while it is still connecting the kernel), it is clicked again, which
prints a line saying so. On failure a screenshot, the cell outputs and the browser
console go next to Lab's log in pytest's tmp_path; VAE_BROWSER_DEBUG=1 prints the
console messages of a passing run too.

Needs Debian's chromium at /usr/bin/chromium (scripts/install_chromium.sh, run by
`make test`); skips with a message when it is missing. Playwright never downloads a
browser here.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = Path(__file__).resolve().parent / "browser" / "explorer.ipynb"
SCREENSHOT = ROOT / "figures" / "10_latent_explorer_jupyterlab.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
KEY_PRESSES = 8

# Console "error" messages that are not errors of the course's code, each explained.
BENIGN_CONSOLE = [
    # Lab's offline-safe fetches of optional resources answer 404 when nothing is
    # configured (e.g. a missing favicon or translation bundle); Chromium logs every
    # non-2xx resource load as a console error. Only 404s of plain resource loads.
    re.compile(r"^Failed to load resource: the server responded with a status of 404"),
]

pytestmark = [pytest.mark.browser, pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"{CHROMIUM} is missing: install Debian's chromium (bash scripts/install_chromium.sh, "
           "run by `make test` as root) to run the real-browser test")]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
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


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on a free port serving a temp copy of the explorer notebook."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    state = tmp_path / "jupyter"  # fresh settings, workspaces and runtime files per run
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ)  # VAE_DATA_DIR (offline MNIST), VAE_SMOKE, ... pass through to the kernel
    env.update({
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "JUPYTER_CONFIG_DIR": str(state / "config"),
        "VAE_CACHE_DIR": str(tmp_path / "cache"),
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
    for plugin, values in [("@jupyterlab/notebook-extension/tracker", {"autoStartDefaultKernel": True}),
                           ("@jupyterlab/apputils-extension/notification", {"fetchNews": "false"})]:
        f = state / "settings" / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values))
    # The debugger sidebar is no part of the explorer; it also sends debug requests on
    # every kernel (re)connection, which log console errors while a socket reconnects.
    page_config = state / "config" / "labconfig" / "page_config.json"
    page_config.parent.mkdir(parents=True, exist_ok=True)
    page_config.write_text(json.dumps({"disabledExtensions": {"@jupyterlab/debugger-extension": True}}))
    log = tmp_path / "lab.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root,
                                start_new_session=True)
    pid = proc.pid
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_server(f"{base}/api/status?token={token}", proc, log)
        yield {"base": base, "token": token, "pid": pid, "log": log, "notebook": NOTEBOOK.name}
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


_IMAGE_BYTES_JS = """async (img) => {
  const buf = await (await fetch(img.src)).arrayBuffer();
  const b = new Uint8Array(buf);
  let h = 2166136261 >>> 0;  // FNV-1a over the PNG bytes
  for (let i = 0; i < b.length; i++) { h ^= b[i]; h = Math.imul(h, 16777619) >>> 0; }
  return {n: b.length, hash: h, png: b[1] === 80 && b[2] === 78 && b[3] === 71};
}"""

_WATCH_JS = """(img) => {
  // Time stamps of key presses (capture phase) and of the image's src changes.
  window.__vae = {keys: [], srcs: []};
  document.addEventListener('keydown', () => window.__vae.keys.push(performance.now()), true);
  new MutationObserver(() => window.__vae.srcs.push(performance.now()))
      .observe(img, {attributes: true, attributeFilter: ['src']});
}"""


def test_latent_explorer_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    t_start = time.monotonic()
    url = f"{lab['base']}/lab/tree/{lab['notebook']}?token={lab['token']}"
    page_errors, console_errors, ignored, console_all = [], [], [], []

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))

            def on_console(msg):
                console_all.append(f"{msg.type}: {msg.text}")
                if msg.type != "error":
                    return
                (ignored if any(r.search(msg.text) for r in BENIGN_CONSOLE) else console_errors).append(
                    f"{msg.text} @ {msg.location.get('url', '')}")

            page.on("console", on_console)
            page.goto(url, wait_until="domcontentloaded")

            # Notebook open and its kernel (this venv's python) started and idle.
            page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=60_000)
            page.wait_for_selector(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']",
                                   timeout=60_000)

            # Should a "Select Kernel" dialog still come up, take the default (this venv's python3).
            dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
            if dialog.count():
                dialog.locator(".jp-mod-accept").click()
                dialog.wait_for(state="detached", timeout=10_000)

            _run_all_cells(page)

            _wait_all_cells_ran(page)
            slider = page.locator(".vae-latent-slider").first
            slider.wait_for(state="visible", timeout=30_000)
            image = page.locator("img.vae-decoded-image").first
            image.wait_for(state="visible", timeout=30_000)
            page.wait_for_selector(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']",
                                   timeout=30_000)

            # Every code cell ran (no "[*]" or empty prompt), and no cell shows an error.
            prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
            assert prompts and all(re.search(r"\[\d+\]", t) for t in prompts), prompts
            outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
            kernel_line = next((t for t in outputs if "kernel prefix:" in t), "")
            assert str(Path(sys.prefix)) in kernel_line, (
                f"the kernel is not this environment's python ({sys.prefix}): {kernel_line!r}")
            _assert_no_cell_errors(page)

            # The top slider carries the largest-KL dimension; the image is a PNG.
            label = slider.locator(".widget-label").inner_text()
            assert re.fullmatch(r"z\d+", label.strip()), label
            image.scroll_into_view_if_needed()
            first = image.evaluate(_IMAGE_BYTES_JS)
            assert first["png"] and first["n"] > 100, first

            # Keyboard route: focus the slider's handle and press ArrowRight.
            readout = slider.locator(".widget-readout")
            value0 = _number(readout.inner_text())
            image.evaluate(_WATCH_JS)
            handle = slider.locator(".noUi-handle")
            handle.focus()
            hashes = [first["hash"]]
            for i in range(KEY_PRESSES):
                n_src = page.evaluate("window.__vae.srcs.length")
                page.keyboard.press("ArrowRight")
                page.wait_for_function(f"window.__vae.srcs.length > {n_src}", timeout=10_000)
                now = image.evaluate(_IMAGE_BYTES_JS)
                assert now["png"], now
                hashes.append(now["hash"])
            value1 = _number(readout.inner_text())
            assert value1 > value0, (value0, value1)
            assert all(a != b for a, b in zip(hashes, hashes[1:])), f"image bytes did not change: {hashes}"

            stamps = page.evaluate("window.__vae")
            lat = _latencies(stamps["keys"], stamps["srcs"])
            _assert_no_cell_errors(page)

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.locator(".jp-CodeCell").last.scroll_into_view_if_needed()
            page.screenshot(path=str(SCREENSHOT))
        except Exception:
            _save_failure_state(page, lab, console_all)
            raise
        finally:
            browser.close()

    if os.environ.get("VAE_BROWSER_DEBUG"):
        print("\n".join(console_all))
    assert not page_errors, f"JavaScript errors on the page: {page_errors}"
    assert not console_errors, f"console errors: {console_errors}"
    print(f"\nbrowser test: slider {value0:.2f} -> {value1:.2f} in {KEY_PRESSES} key presses, "
          f"{len(set(hashes))} distinct images; key press -> new image in the browser: "
          f"median {sorted(lat)[len(lat) // 2]:.1f} ms, max {max(lat):.1f} ms; "
          f"ignored benign console messages: {len(ignored)}; total {time.monotonic() - t_start:.1f} s")


def _run_all_cells(page, attempts: int = 3) -> None:
    """Run > Run All Cells, and make sure the first code cell really started.

    Right after the notebook opens, Lab may still be (re)connecting the kernel's
    websocket; a run request in that window can be dropped without any message. So wait
    for the kernel to be idle and Lab's HTTP traffic to settle, click Run All Cells, and
    check the first code cell's prompt turns to [*] or [n]; if it does not within 20 s,
    click again (nothing ran, so nothing runs twice).
    """
    first_prompt = page.locator(".jp-CodeCell .jp-InputArea-prompt").first
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
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if re.search(r"\[(\*|\d+)\]", first_prompt.inner_text()):
                return
            time.sleep(0.2)
        print(f"\nRun All Cells attempt {attempt + 1}: no cell started; trying again")
    raise AssertionError(f"Run All Cells started no cell in {attempts} attempts")


def _wait_all_cells_ran(page, timeout: float = 120.0) -> None:
    """Wait until every code cell shows an execution count [n] (none [ ] or [*])."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
        if prompts and all(re.search(r"\[\d+\]", t) for t in prompts):
            return
        time.sleep(0.25)
    raise AssertionError(f"not every code cell ran within {timeout:.0f} s: prompts {prompts}")


def _number(text: str) -> float:
    """A slider readout as a float (ipywidgets prints negatives with a Unicode minus)."""
    return float(text.strip().replace("\u2212", "-"))


def _latencies(keys: list[float], srcs: list[float]) -> list[float]:
    """For each key press, ms until the first image src change after it."""
    out = []
    for k in keys:
        after = [s for s in srcs if s >= k]
        if after:
            out.append(after[0] - k)
    assert len(out) == len(keys), (keys, srcs)
    return out


def _assert_no_cell_errors(page) -> None:
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error'], "
                          ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
    assert errors.count() == 0, errors.all_inner_texts()
    stderr = page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
    bad = [t for t in stderr if "Error" in t or "Traceback" in t]
    assert not bad, f"cell output shows an error: {bad}"
    # A widget the frontend cannot show is reported as plain text, not as stderr.
    broken = [t for t in page.locator(".jp-OutputArea-output").all_inner_texts() if "Error displaying widget" in t]
    assert not broken, broken


def _save_failure_state(page, lab, console_all) -> None:
    """On failure: a screenshot and the cell outputs next to Lab's log (pytest's tmp_path)."""
    out = Path(lab["log"]).parent
    try:
        page.screenshot(path=str(out / "failure.png"))
        texts = page.locator(".jp-OutputArea-output").all_inner_texts()
        (out / "failure_outputs.txt").write_text("\n----\n".join(texts))
        (out / "failure_console.txt").write_text("\n".join(console_all))
        print(f"\nfailure state saved in {out} (failure.png, failure_outputs.txt, lab.log)")
    except Exception as exc:  # the page may be gone; the original error matters more
        print(f"\ncould not save the failure state: {exc}")
