"""Execute notebooks headless, in place, keeping their outputs (used by `make notebooks`).

    python scripts/run_notebooks.py notebooks/*.ipynb

The mode comes from VAE_SMOKE (the Makefile sets VAE_SMOKE=0: the full course).
Each notebook runs with notebooks/ as its working directory, in this environment's
python3 kernel, with no cell time limit; the wall time of each is printed.
"""
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def run(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=None, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(nb, path)
    return time.perf_counter() - start


if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]]
    if not paths:
        sys.exit("usage: run_notebooks.py NOTEBOOK.ipynb ...")
    for p in paths:
        print(f"{p}: running ...", flush=True)
        print(f"{p}: done in {run(p):.0f} s", flush=True)
