"""Build the shipped models of notebooks: run each in full mode with VAE_SHIP set, so every
``train_or_load`` call writes its model to ``vae_core/shipped_models/`` with a card.

    python scripts/ship_models.py 01 04          # ship from the model cache (trains what is missing)
    python scripts/ship_models.py 04 --from-scratch
    python scripts/models_table.py               # then refresh MODELS.md

Without --from-scratch a model comes from the user's model cache when it is there (the
card then says its device was not recorded, unless the cached file recorded it).
--from-scratch trains every model in its own cache folder (~/.cache/vae_course/ship_build):
run it again after a stop and the models finished so far load from there, the rest train
(delete that folder for a second rebuild from scratch). The notebooks' outputs are not
changed (they run on a copy), but the figures they save in figures/ are rewritten.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
BUILD_CACHE = Path.home() / ".cache" / "vae_course" / "ship_build"


def notebook_for(prefix: str) -> Path:
    found = sorted((ROOT / "notebooks").glob(f"{prefix}*.ipynb"))
    if len(found) != 1:
        sys.exit(f"{prefix!r} names {len(found)} notebooks; give a prefix such as 04")
    return found[0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("notebooks", nargs="+", help="notebook numbers, e.g. 01 04")
    p.add_argument("--from-scratch", action="store_true", help="train every model again (resumable by model)")
    args = p.parse_args()
    for prefix in args.notebooks:
        path = notebook_for(prefix)
        os.environ.update({"VAE_SMOKE": "0", "VAE_SHIP": path.stem})
        if args.from_scratch:
            os.environ["VAE_CACHE_DIR"] = str(BUILD_CACHE)
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        print(f"{path.name}: running in full mode, shipping its models ...", flush=True)
        NotebookClient(nb, timeout=None, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        print(f"{path.name}: done in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
