"""Train a shipped model from scratch, resumably, then measure it and write its file.

    python scripts/train_shipped.py NAME [--max-minutes M]   # train (continues where it stopped)
    python scripts/train_shipped.py NAME --finish            # metrics on the stored weights + card
    python scripts/train_shipped.py --list

NAME is a key of ``vae_core.shipped.SPECS``. Training state (parameters, Adam moments,
history) is saved every minute to ``--state-dir`` (default ``~/.cache/vae_course/shipped_state``),
so a run stopped half-way continues from there on the next call, on CPU or GPU. Each
chunk's device, epochs and wall time are logged beside the state and end up in the card.
``--finish`` needs every epoch done; it measures the test ELBO (test set binarized once
with ``TEST_BINARIZATION_SEED``) and log p(x) with k = 5,000 importance samples on all
10,000 test images, and writes ``vae_core/shipped_models/NAME.msgpack`` and its card.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from vae_core import shipped  # noqa: E402
from vae_core.config import device_name  # noqa: E402
from vae_core.checkpoint import (fixed_test_set, load_shipped, load_training_state, ship_model,  # noqa: E402
                                 train_resumable)
from vae_core.data import load_mnist  # noqa: E402
from vae_core.evaluate import log_marginal_likelihood  # noqa: E402
from vae_core.files import atomic_write  # noqa: E402
from vae_core.models import build_model  # noqa: E402
from vae_core.train import TrainResult  # noqa: E402

from flax import nnx  # noqa: E402


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def train_chunk(spec, state_dir: Path, max_minutes: float | None) -> bool:
    mnist = load_mnist()
    state_path = state_dir / f"{spec.name}.state"
    log_path = state_dir / f"{spec.name}.chunks.json"
    chunks = json.loads(log_path.read_text()) if log_path.exists() else []
    state = load_training_state(state_path, spec.model_config, spec.train_config) if state_path.exists() else None
    done_before = state.epochs_done if state else 0
    logged = chunks[-1]["epochs"][1] if chunks else 0
    if done_before > logged:  # a chunk that was killed after saving state but before logging itself
        chunks.append({"device": "not recorded (a chunk stopped before logging its device)",
                       "epochs": [logged + 1, done_before], "date": now(), "wall_seconds": None,
                       "epoch_seconds": round(float(np.sum(state.history["seconds"][logged:done_before])), 1)})
    start = time.perf_counter()
    result, finished = train_resumable(state_path, spec.model_config, spec.train_config, mnist.x_train,
                                       mnist.x_test, save_every_s=60,
                                       max_seconds=None if max_minutes is None else 60 * max_minutes,
                                       desc=spec.name)
    done = len(result.history["train_loss"])
    chunks.append({"device": device_name(), "epochs": [done_before + 1, done], "date": now(),
                   "wall_seconds": round(time.perf_counter() - start, 1),
                   "epoch_seconds": round(float(np.sum(result.history["seconds"][done_before:])), 1)})
    atomic_write(log_path, json.dumps(chunks, indent=1).encode())
    h = result.history
    print(f"{spec.name}: {done}/{spec.train_config.epochs} epochs; last test ELBO "
          f"{h['test_elbo'][-1]:.2f} nats (first {spec.train_config.eval_images} test images); "
          f"this chunk {chunks[-1]['wall_seconds']:.0f} s on {chunks[-1]['device']}", flush=True)
    return finished


def finish(spec, state_dir: Path) -> dict:
    state = load_training_state(state_dir / f"{spec.name}.state", spec.model_config, spec.train_config)
    if state.epochs_done < spec.train_config.epochs:
        sys.exit(f"{spec.name}: only {state.epochs_done} of {spec.train_config.epochs} epochs are done; "
                 "train more first")
    chunks = json.loads((state_dir / f"{spec.name}.chunks.json").read_text())
    model = nnx.merge(nnx.graphdef(build_model(spec.model_config, 0)), state.params)
    mnist = load_mnist()
    result = TrainResult(model, state.history, spec.model_config, spec.train_config)
    card = ship_model(spec.name, result, mnist.x_train, mnist.x_test, {
        "purpose": spec.purpose, "notebook": spec.notebook, "command": shipped.rebuild_command(spec.name),
        "device": " + ".join(sorted({c["device"] for c in chunks})), "chunks": chunks,
        "train_minutes": round(sum(c["epoch_seconds"] for c in chunks) / 60, 1),
        "mnist_sha256": shipped.mnist_checksum(), "paper_nll": spec.paper_nll})
    stored = load_shipped(spec.name).model          # log p(x) of the weights as stored
    x = fixed_test_set(mnist.x_test, spec.train_config)
    t0 = time.perf_counter()
    logpx = np.asarray(log_marginal_likelihood(stored, x, jax.random.PRNGKey(shipped.LOGPX_SEED), k=5000,
                                               progress=True))
    card.update({"test_logpx": round(float(logpx.mean()), 3),
                 "test_logpx_stderr": round(float(logpx.std(ddof=1) / np.sqrt(len(logpx))), 3),
                 "logpx_k": 5000, "logpx_images": int(len(logpx)), "logpx_seed": shipped.LOGPX_SEED,
                 "eval_device": device_name(), "eval_seconds": round(time.perf_counter() - t0, 1),
                 "finished": now(), "argv": shlex.join(sys.argv)})
    shipped.write_card(card)
    print(json.dumps({k: v for k, v in card.items() if k != "chunks"}, indent=1))
    return card


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?")
    p.add_argument("--list", action="store_true")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after the epoch that ends past this")
    p.add_argument("--finish", action="store_true")
    p.add_argument("--state-dir", type=Path, default=Path.home() / ".cache" / "vae_course" / "shipped_state")
    args = p.parse_args()
    if args.list or not args.name:
        for spec in shipped.SPECS.values():
            print(f"{spec.name:24s} notebook {spec.notebook}: {spec.purpose}")
        return 0
    spec = shipped.SPECS[args.name]
    args.state_dir.mkdir(parents=True, exist_ok=True)
    if args.finish:
        finish(spec, args.state_dir)
        return 0
    return 0 if train_chunk(spec, args.state_dir, args.max_minutes) else 3


if __name__ == "__main__":
    sys.exit(main())  # 0: done; 3: stopped at --max-minutes, run again to continue
