"""scripts/accelerator_report.py (`make accelerator-report`): its CPU dry run, end to end, and its parts.

The dry run is the same program as the accelerator run with every step shrunk (a few unit
tests, notebook 00 under nbval and executed, one epoch of 6,016 images, log p(x) with
k = 50 on 200 images): it runs here on the CPU and must write a complete report.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("accelerator_report", ROOT / "scripts" / "accelerator_report.py")
report_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report_script)


@pytest.mark.slow
def test_the_dry_run_writes_a_complete_report(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "accelerator_report.py"), "--dry-run",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "accelerator_report.json").read_text())
    assert report["dry_run"] and report["device"] and report["devices"] >= 1
    steps = {s["step"].split()[0]: s for s in report["steps"]}
    assert set(steps) == {"units", "nbval", "series", "speed"} and all(s["exit"] == 0 for s in steps.values())
    assert "passed" in steps["units"]["summary"] and "passed" in steps["nbval"]["summary"]
    (nb,) = report["series"]
    assert nb["notebook"].startswith("00_") and nb["error"] is None and nb["seconds"] > 0
    assert len(nb["checks"]) >= 3 and all(c["same_as_committed"] for c in nb["checks"]), nb["checks"]
    speed = report["speed"]
    assert speed["train_images_per_s"] > 100 and speed["logpx_seconds"] > 0
    assert -200 < speed["logpx_mean_nats"] < -50  # the shipped 784-400-20 VAE on 200 test digits
    text = (tmp_path / "accelerator_report.md").read_text()
    assert "images/s" in text and "log p(x), k = 50 on 200 test images" in text


def test_missing_or_old_packages_are_named(monkeypatch, capsys):
    monkeypatch.setattr(report_script, "NEEDS", {"pytest": "999.0", "no-such-package-here": "1.0"})
    found, problems = report_script.versions()
    assert "pytest" in found
    assert any("pytest" in p and "older than 999.0" in p for p in problems)
    assert any("no-such-package-here is not installed" in p for p in problems)
    monkeypatch.setattr(sys, "argv", ["accelerator_report.py", "--dry-run"])
    assert report_script.main() == 2
    assert "cannot run here" in capsys.readouterr().err


def test_checked_cells_are_found_with_their_text():
    nb = nbformat.v4.new_notebook()
    checked = nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(1)")
    checked.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    result = nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\n2")
    result.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=2)]
    nb.cells = [nbformat.v4.new_code_cell("print(0)"), checked, result]
    assert report_script.checked_cells(nb) == [(1, "1\n"), (2, "2")]
