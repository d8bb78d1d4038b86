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

The machinery (Lab server, Run All, waiting, error checks) is ``scripts/lab_driver.py``,
shared with ``benchmarks/lab_run_all.py``. Needs Debian's chromium at /usr/bin/chromium
(scripts/install_chromium.sh, run by `make test`); skips with a message when it is
missing. Playwright never downloads a browser here.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = Path(__file__).resolve().parent / "browser" / "explorer.ipynb"
SCREENSHOT = ROOT / "figures" / "10_latent_explorer_jupyterlab.png"
KEY_PRESSES = 8

_spec = importlib.util.spec_from_file_location("lab_driver", ROOT / "scripts" / "lab_driver.py")
lab_driver = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lab_driver)
CHROMIUM = lab_driver.CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"{CHROMIUM} is missing: install Debian's chromium (bash scripts/install_chromium.sh, "
           "run by `make test` as root) to run the real-browser test")]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server (scripts/lab_driver.py) serving a temp copy of the explorer notebook."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    with lab_driver.jupyter_lab(tmp_path, root) as server:
        yield {**server, "notebook": NOTEBOOK.name}


def test_latent_explorer_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    t_start = time.monotonic()
    url = f"{lab['base']}/lab/tree/{lab['notebook']}?token={lab['token']}"
    page_errors, console_errors, ignored, console_all = [], [], [], []

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=lab_driver.CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))

            def on_console(msg):
                console_all.append(f"{msg.type}: {msg.text}")
                if msg.type != "error":
                    return
                (ignored if any(r.search(msg.text) for r in lab_driver.BENIGN_CONSOLE) else console_errors).append(
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

            lab_driver.run_all_cells(page)

            lab_driver.wait_all_cells_ran(page, lab)
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
            lab_driver.assert_no_cell_errors(page)

            # The top slider carries the largest-KL dimension; the image is a PNG.
            label = slider.locator(".widget-label").inner_text()
            assert re.fullmatch(r"z\d+", label.strip()), label
            image.scroll_into_view_if_needed()
            first = image.evaluate(lab_driver.IMAGE_BYTES_JS)
            assert first["png"] and first["n"] > 100, first

            # Keyboard route: focus the slider's handle and press ArrowRight.
            readout = slider.locator(".widget-readout")
            value0 = lab_driver.slider_number(readout.inner_text())
            image.evaluate(lab_driver.WATCH_JS)
            handle = slider.locator(".noUi-handle")
            handle.focus()
            hashes = [first["hash"]]
            for i in range(KEY_PRESSES):
                n_src = page.evaluate("window.__vae.srcs.length")
                page.keyboard.press("ArrowRight")
                page.wait_for_function(f"window.__vae.srcs.length > {n_src}", timeout=10_000)
                now = image.evaluate(lab_driver.IMAGE_BYTES_JS)
                assert now["png"], now
                hashes.append(now["hash"])
            value1 = lab_driver.slider_number(readout.inner_text())
            assert value1 > value0, (value0, value1)
            assert all(a != b for a, b in zip(hashes, hashes[1:])), f"image bytes did not change: {hashes}"

            stamps = page.evaluate("window.__vae")
            lat = lab_driver.latencies(stamps["keys"], stamps["srcs"])
            lab_driver.assert_no_cell_errors(page)

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.locator(".jp-CodeCell").last.scroll_into_view_if_needed()
            page.screenshot(path=str(SCREENSHOT))
        except Exception:
            lab_driver.save_failure_state(page, lab, console_all)
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
