"""The course installed the way Colab (or any fresh machine without our lock file) installs it.

A new virtual environment, the package installed from a copy of this repository with
``uv pip install <clone>`` (a pip-compatible installer, with no requirements.lock: whatever
versions pyproject.toml's ranges allow today), plus the two packages a Colab runtime already has
(ipykernel, nbclient). Then, in that environment: ``import vae_core`` (with its shipped
models as package data) and notebook 00 executed in smoke mode. It needs the package index
and skips, saying so, when it cannot reach it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vae_core.files import can_connect

ROOT = Path(__file__).resolve().parent.parent
RUN_NOTEBOOK = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
print("cells run:", sum(c.cell_type == "code" for c in nb.cells))
"""


@pytest.mark.slow
def test_a_fresh_unpinned_install_imports_and_runs_notebook_00(tmp_path):
    if can_connect("pypi.org", 443) is not None:
        pytest.skip("PyPI is not reachable: a fresh install needs the package index")
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed here (make env installs it into .venv)")
    clone = tmp_path / "clone"
    shutil.copytree(ROOT, clone, ignore=shutil.ignore_patterns(".venv", "_build", ".git", "*.egg-info",
                                                              "__pycache__", ".pytest_cache"))
    (clone / "requirements.lock").unlink()  # like Colab: only pyproject.toml's ranges
    venv = tmp_path / "venv"
    py = venv / "bin" / "python"

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update({"VAE_SMOKE": "1", "PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}"})

    def sh(*cmd):  # outside the repository, so nothing is imported from the working tree
        done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=900, env=env,
                              cwd=tmp_path)
        assert done.returncode == 0, f"{' '.join(map(str, cmd))}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    sh(uv, "venv", "-q", "--python", sys.executable, venv)
    sh(uv, "pip", "install", "-q", "--python", py, clone, "ipykernel", "nbclient")
    where = sh(py, "-c", "import vae_core, pathlib; from vae_core.shipped import SHIPPED_DIR; "
                         "print(vae_core.__file__); print(len(list(SHIPPED_DIR.glob('*.msgpack'))))").split()
    assert str(venv) in where[0], f"vae_core imported from {where[0]}, not the new environment"
    assert int(where[1]) >= 30, "the shipped models are installed with the package"
    notebook = tmp_path / "run" / "00_setup_and_tour.ipynb"
    notebook.parent.mkdir()
    shutil.copy(ROOT / "notebooks" / notebook.name, notebook)
    out = sh(py, "-c", RUN_NOTEBOOK, notebook, notebook.parent)
    assert "cells run:" in out
