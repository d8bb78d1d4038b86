"""Notebook 04 in JupyterLab: from Run All Cells to a latent slider that answers.

What is timed, in headless Chromium driving a real JupyterLab (``scripts/lab_driver.py``,
the browser test's machinery) on a copy of notebooks/ with an EMPTY model cache (as on
a fresh clone; the shipped models load from the repository):

1. the notebook opens and its kernel starts (not timed: Lab and the kernel are idle);
2. the clock starts at the click on Run > Run All Cells;
3. "all cells ran": every code cell shows an execution count. The kernel runs cells one
   at a time and a slider's messages queue behind the cells still to run, so no slider
   answers before this moment;
4. "slider answers": the first latent slider of the explorer (section 12's
   ``LatentSliders``) gets focus and one ArrowRight; the clock stops when its decoded
   image has new bytes (the full path browser -> kernel -> browser).

Full mode by default (the course as a teacher runs it); ``--smoke`` sets VAE_SMOKE=1.
Figures the notebook saves into figures/ are put back byte for byte afterwards (new ones
removed). A run in which Lab lost the Run All request (so cells ran twice) reports no time.

    flock /tmp/vae_cpu.lock env VAE_DATA_DIR=/path/to/data \\
        .venv/bin/python benchmarks/lab_run_all.py [--notebook 04] [--smoke]

Prints the report and writes it to benchmarks/results/lab_run_all.txt.
"""
from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (benchmarks/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("lab_driver", ROOT / "scripts" / "lab_driver.py")
lab_driver = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lab_driver)


def explorer_parts(page):
    """The first latent slider of the page and the decoded image of the same explorer."""
    slider = page.locator(".vae-latent-slider").first
    slider.wait_for(state="attached", timeout=30_000)
    box = slider.locator("xpath=ancestor::div[.//img[contains(@class, 'vae-decoded-image')]][1]")
    return slider, box.locator("img.vae-decoded-image").first


def run(notebook: Path, smoke: bool, timeout: float) -> dict:
    from playwright.sync_api import sync_playwright

    workdir = Path(tempfile.mkdtemp(prefix="vae_lab_run_all_"))
    root = workdir / "notebooks"
    shutil.copytree(ROOT / "notebooks", root)
    figures = {p: p.read_bytes() for p in (ROOT / "figures").glob("*.png")}
    env = {"VAE_SMOKE": "1" if smoke else "0", "PYTHONUNBUFFERED": "1"}
    try:
        with lab_driver.jupyter_lab(workdir, root, env) as lab, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=lab_driver.CHROMIUM, headless=True,
                                        args=lab_driver.CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            try:
                page.goto(f"{lab['base']}/lab/tree/{notebook.name}?token={lab['token']}",
                          wait_until="domcontentloaded")
                page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=60_000)
                page.wait_for_selector(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']",
                                       timeout=60_000)
                t0 = lab_driver.run_all_cells(page)  # the moment of the click that started the run
                reruns = lab_driver.wait_all_cells_ran(page, lab, timeout=timeout)
                t_cells = time.monotonic() - t0
                if reruns:
                    raise RuntimeError("Lab lost the Run All request and the cells were run again: "
                                       "no clean measurement; run the benchmark again")
                lab_driver.assert_no_cell_errors(page)
                slider, image = explorer_parts(page)
                image.scroll_into_view_if_needed()
                image.evaluate(lab_driver.WATCH_JS)
                before = image.evaluate(lab_driver.IMAGE_BYTES_JS)
                slider.locator(".noUi-handle").focus()
                page.keyboard.press("ArrowRight")
                page.wait_for_function("window.__vae.srcs.length > 0", timeout=30_000)
                t_slider = time.monotonic() - t0
                after = image.evaluate(lab_driver.IMAGE_BYTES_JS)
                assert after["png"] and after["hash"] != before["hash"], (before, after)
                outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
            except Exception:
                lab_driver.save_failure_state(page, lab, [])
                raise
            finally:
                browser.close()
    finally:
        for path in (ROOT / "figures").glob("*.png"):  # the repository's figures as they were
            if path not in figures:
                path.unlink()
            elif path.read_bytes() != figures[path]:
                path.write_bytes(figures[path])
        shutil.rmtree(workdir, ignore_errors=True)
    own = next((t.strip() for t in outputs if t.startswith("this run (")), "?")
    return {"cells": t_cells, "slider": t_slider, "own": own}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--notebook", default="04", help="notebook number (its explorer: a LatentSliders)")
    ap.add_argument("--smoke", action="store_true", help="VAE_SMOKE=1 (default: the full course)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds allowed for Run All")
    args = ap.parse_args(argv)
    found = sorted((ROOT / "notebooks").glob(f"{args.notebook}_*.ipynb"))
    if len(found) != 1:
        sys.exit(f"--notebook {args.notebook!r} names {len(found)} notebooks")
    _common.start("lab_run_all")
    print(f"notebook:  {found[0].name}, {'smoke' if args.smoke else 'full'} mode, empty model cache, "
          f"JupyterLab + headless Chromium")
    result = run(found[0], args.smoke, args.timeout)
    print(f"Run All Cells -> every cell ran:          {result['cells']:6.1f} s")
    print(f"Run All Cells -> the first slider answers: {result['slider']:6.1f} s "
          f"(one ArrowRight, new image bytes in the browser)")
    print(f"the notebook's own last line: {result['own']}")
    print(_common.load())


if __name__ == "__main__":
    main()
