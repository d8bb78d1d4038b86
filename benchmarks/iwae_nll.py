"""Benchmark 4: test log-likelihood (k = 5000) under the IWAE paper's protocol.

Burda, Grosse & Salakhutdinov (2015), one stochastic layer: 784-200-200-50 tanh encoder,
mirrored decoder, Bernoulli output bias = logit(training mean), Adam b1=0.99, b2=0.999,
eps=1e-4, dynamic binarization, learning rate 1e-3 decaying to 1e-4. The paper trains
3280 epochs at batch 20 and reports NLL 86.76 nats (VAE, k=1) and 84.78 (IWAE, k=50).
On a 2-core CPU we train fewer epochs at batch 100 (cosine decay 1e-3 -> 1e-4 over the
planned epochs) and say how far we got.

Training and evaluation resume from disk, so they can run in chunks of a few minutes
(e.g. each inside ``flock /tmp/vae_cpu.lock``):

  python benchmarks/iwae_nll.py train --objective elbo --epochs 500 --minutes 5
  python benchmarks/iwae_nll.py eval  --objective elbo --minutes 5
  python benchmarks/iwae_nll.py report

``all`` does both for one run with one wall budget (what ``run_all.py`` calls):

  python benchmarks/iwae_nll.py all --objective elbo --epochs 40 --minutes 20

State lives in benchmarks/results/iwae_state/<run>/ (``$VAE_BENCH_STATE`` overrides it):
the resumable training state (``vae_core.checkpoint.save_training_state``: parameters,
Adam moments, history), the 1-minute load average at the end of each epoch, a vae_core
checkpoint of the latest model (``save_checkpoint``), and the log p(x) of each evaluated
block of test images. Training is ``vae_core.train.train`` itself, resumed from the
state and stopped by its per-epoch callback when the next epoch would pass the deadline.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (also puts the repository root on sys.path)

import jax  # noqa: E402
import numpy as np  # noqa: E402

from vae_core.checkpoint import (CheckpointError, load_checkpoint, load_training_state,  # noqa: E402
                                 save_checkpoint, save_training_state)
from vae_core.data import load_mnist  # noqa: E402
from vae_core.evaluate import log_marginal_likelihood  # noqa: E402
from vae_core.files import atomic_write  # noqa: E402
from vae_core.models import ModelConfig  # noqa: E402
from vae_core.shipped import LOGPX_SEED, TEST_BINARIZATION_SEED  # noqa: E402
from vae_core.train import EpochEnd, TrainConfig, TrainResult, train  # noqa: E402

STATE = Path(os.environ.get("VAE_BENCH_STATE", _common.RESULTS / "iwae_state"))
TEST_SEED = TEST_BINARIZATION_SEED   # the test set is binarized once with this seed (2015)
EVAL_SEED = LOGPX_SEED               # key of the importance samples (5000)
K_EVAL, K_CHUNK, BLOCK = 5000, 500, 500   # log p(x) in blocks of 500 test images
SAVE_EVERY_S = 30.0
PAPER = {("elbo", 1): 86.76, ("iwae", 5): 85.54, ("iwae", 50): 84.78, ("elbo", 5): 86.47,
         ("elbo", 50): 86.35}

MODEL = ModelConfig(latent_dim=50, hidden=(200, 200), activation="tanh")


def run_name(objective: str, k: int, batch: int, epochs: int) -> str:
    return f"{objective}_k{k}_b{batch}_e{epochs}"


def configs(args) -> tuple[ModelConfig, TrainConfig]:
    k = args.k if args.objective == "iwae" else 1
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch, learning_rate=1e-3, final_learning_rate=1e-4,
                      objective=args.objective, iwae_k=k, adam_b1=0.99, adam_b2=0.999, adam_eps=1e-4,
                      seed=args.seed)
    return MODEL, cfg


def state_dir(args) -> Path:
    _, cfg = configs(args)
    return STATE / run_name(cfg.objective, cfg.iwae_k, cfg.batch_size, cfg.epochs)


def epochs_done(history: dict) -> int:
    return len(history["train_loss"])


# ------------------------------------------------------------------------------ training
def train_chunk(args, mnist, deadline: float) -> dict:
    """Train until the planned epochs are done or the next epoch would pass the deadline;
    save the training state and a model checkpoint at the end of each epoch that ends more
    than 30 s after the last save, and when the chunk ends. Returns the history so far."""
    model_cfg, cfg = configs(args)
    d = state_dir(args)
    d.mkdir(parents=True, exist_ok=True)
    state_file, ckpt, load_file = d / "training.state", d / "model.msgpack", d / "load1.json"
    resume = load_training_state(state_file, model_cfg, cfg) if state_file.exists() else None
    loads = json.loads(load_file.read_text()) if load_file.exists() else []
    done = resume.epochs_done if resume else 0
    if done >= cfg.epochs:
        print(f"[{d.name}] training already complete: {done} epochs")
        return resume.history
    steps_per_epoch = len(mnist.x_train) // cfg.batch_size
    print(f"[{d.name}] resuming at epoch {done + 1} of {cfg.epochs}; {_common.load()}")
    t_chunk = last_save = time.perf_counter()

    def save(end: EpochEnd) -> None:
        save_training_state(state_file, end.state(), model_cfg, cfg)
        save_checkpoint(ckpt, TrainResult(end.model(), end.history, model_cfg, cfg))
        atomic_write(load_file, json.dumps(loads[:end.epoch]).encode())

    def on_epoch(end: EpochEnd) -> bool:
        nonlocal last_save
        h = end.history
        loads[:] = loads[:end.epoch - 1] + [float("nan")] * (end.epoch - 1 - len(loads)) + [os.getloadavg()[0]]
        if not np.isfinite(h["train_loss"][-1]):
            raise FloatingPointError(f"loss became {h['train_loss'][-1]} in epoch {end.epoch}")
        if end.epoch % 10 == 0 or end.epoch == cfg.epochs:
            print(f"  epoch {end.epoch:4d}  train loss {h['train_loss'][-1]:8.3f}  test ELBO {h['test_elbo'][-1]:8.3f}"
                  f"  {h['seconds'][-1]:5.2f} s  load {loads[-1]:.2f}")
        now = time.perf_counter()
        stop = now + h["seconds"][-1] >= deadline  # the next epoch would overrun
        if stop or end.epoch == cfg.epochs or now - last_save > SAVE_EVERY_S:
            save(end)
            last_save = time.perf_counter()
        return stop

    result = train(model_cfg, cfg, mnist.x_train, _common.binarized_test_set(mnist.x_test), resume=resume,
                   callback=on_epoch, progress=False, desc=d.name)
    now_done = epochs_done(result.history)
    wall = time.perf_counter() - t_chunk
    epochs_here = now_done - done
    print(f"[{d.name}] chunk: {epochs_here} epochs in {wall:.1f} s "
          f"({epochs_here * steps_per_epoch * cfg.batch_size / max(wall, 1e-9):.0f} images/s incl. compile "
          f"and per-epoch test ELBO); now {now_done}/{cfg.epochs}; {_common.load()}")
    return result.history


# ------------------------------------------------------------------------------ evaluation
def eval_chunk(args, mnist, deadline: float) -> bool:
    """Evaluate log p(x) (k=5000) block by block until done or past the deadline.
    Returns True when the whole test set is done."""
    model_cfg, cfg = configs(args)
    d = state_dir(args)
    ckpt = d / "model.msgpack"
    res = load_checkpoint(ckpt, model_config=model_cfg, train_config=cfg)
    n_epochs = epochs_done(res.history)
    x = _common.binarized_test_set(mnist.x_test)[:args.eval_images]
    n_blocks = -(-len(x) // BLOCK)
    key = jax.random.PRNGKey(EVAL_SEED)
    part = f"_first{len(x)}" if len(x) < len(mnist.x_test) else ""  # a check on fewer images keeps apart
    out_dir = d / f"logpx_after_{n_epochs}_epochs{part}"
    out_dir.mkdir(exist_ok=True)
    did, last = 0, 0.0
    for b in range(n_blocks):
        f = out_dir / f"block{b:03d}.npy"
        if f.exists():
            continue
        if did and time.perf_counter() + 1.1 * last > deadline:  # the next block would overrun
            print(f"[{d.name}] deadline reached; log p(x) blocks done: "
                  f"{len(list(out_dir.glob('block*.npy')))}/{n_blocks}")
            return False
        t0, l0 = time.perf_counter(), os.getloadavg()[0]
        lp = log_marginal_likelihood(res.model, x[b * BLOCK:(b + 1) * BLOCK], jax.random.fold_in(key, b),
                                     k=K_EVAL, k_chunk=K_CHUNK, batch_size=100)
        lp = np.asarray(jax.device_get(lp))
        sec = time.perf_counter() - t0
        did, last = did + 1, sec
        np.save(f.with_suffix(".tmp.npy"), lp)
        os.replace(f.with_suffix(".tmp.npy"), f)
        (out_dir / f"block{b:03d}.json").write_text(json.dumps(
            {"seconds": sec, "load1_start": l0, "load1_end": os.getloadavg()[0], "date": _common.now()}))
        print(f"  log p(x) block {b + 1}/{n_blocks}: mean {lp.mean():.3f} nats, {sec:.1f} s, "
              f"load {l0:.2f} -> {os.getloadavg()[0]:.2f}")
    return True


def report(_=None) -> None:
    print("IWAE-paper protocol, one stochastic layer, 784-200-200-50 tanh, test set binarized once "
          f"(seed {TEST_SEED}), log p(x) with k={K_EVAL} importance samples (chunks of {K_CHUNK}).")
    for d in sorted(STATE.glob("*")):
        ckpt = d / "model.msgpack"
        if not ckpt.exists():
            continue
        try:
            res = load_checkpoint(ckpt)
        except CheckpointError as err:  # e.g. a run of the Flax Linen version: start it afresh
            print(f"\nrun {d.name}: cannot be read: {err}")
            continue
        h, cfg = res.history, res.train_config
        n = epochs_done(h)
        train_s = float(np.sum(h["seconds"]))
        load_file = d / "load1.json"
        load1 = json.loads(load_file.read_text())[:n] if load_file.exists() else []
        print(f"\nrun {d.name}: objective={cfg.objective} k={cfg.iwae_k} batch={cfg.batch_size} "
              f"lr 1e-3 -> cosine -> {cfg.final_learning_rate:g} over {cfg.epochs} planned epochs; "
              f"Adam b1={cfg.adam_b1} b2={cfg.adam_b2} eps={cfg.adam_eps}")
        load_text = (f"median load average during training {np.nanmedian(load1):.2f}, max {np.nanmax(load1):.2f}"
                     if np.isfinite(load1).any() else "load average not recorded")
        print(f"  trained {n} epochs, {train_s / 60:.1f} min of epoch time (sum of per-epoch wall time "
              f"incl. the test ELBO; {load_text})")
        if n:
            print(f"  test ELBO (one sample, fixed binarization) after epoch {n}: {h['test_elbo'][-1]:.2f} nats")
        for out_dir in sorted(d.glob("logpx_after_*_epochs*")):
            blocks = sorted(out_dir.glob("block*.npy"))
            blocks = [b for b in blocks if not b.name.endswith(".tmp.npy")]
            if not blocks:
                continue
            lp = np.concatenate([np.load(b) for b in blocks])
            meta = [json.loads((out_dir / (b.stem + ".json")).read_text()) for b in blocks]
            secs = sum(m["seconds"] for m in meta)
            loads = [m["load1_start"] for m in meta] + [m["load1_end"] for m in meta]
            paper = PAPER.get((cfg.objective, cfg.iwae_k))
            tag = "COMPLETE" if len(lp) == 10000 else f"PARTIAL ({len(lp)} of 10000 test images)"
            print(f"  {out_dir.name}: NLL = {-lp.mean():.2f} +- {lp.std(ddof=1) / np.sqrt(len(lp)):.2f} "
                  f"nats (mean over {len(lp)} images, +- one standard error) [{tag}]")
            print(f"    evaluation time {secs:.0f} s ({secs / len(lp) * 1000:.1f} s per 1000 images), "
                  f"load average during it {min(loads):.2f}..{max(loads):.2f}, dates "
                  f"{meta[0]['date']} .. {meta[-1]['date']}")
            if paper is not None:
                print(f"    paper (Burda et al. 2015, Table 1, {cfg.objective.upper()} k={cfg.iwae_k}, "
                      f"3280 epochs at batch 20): {paper} nats; gap {-lp.mean() - paper:+.2f} nats")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["train", "eval", "all", "report"])
    p.add_argument("--objective", choices=["elbo", "iwae"], default="elbo")
    p.add_argument("--k", type=int, default=5, help="IWAE samples (objective iwae)")
    p.add_argument("--epochs", type=int, default=500, help="planned epochs (length of the lr decay)")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minutes", type=float, default=5.0, help="wall budget of this invocation")
    p.add_argument("--eval-images", type=int, default=10000,
                   help="evaluate log p(x) on the first N test images only (a quick check; the report says PARTIAL)")
    args = p.parse_args()
    _common.start("iwae_nll_summary" if args.mode == "report" else "iwae_nll_log",
                  append=args.mode != "report")
    deadline = time.perf_counter() + 60 * args.minutes
    complete = True
    if args.mode != "report":
        mnist = load_mnist()
        if args.mode in ("train", "all"):
            h = train_chunk(args, mnist, deadline if args.mode == "train" else
                            time.perf_counter() + 60 * args.minutes * 0.6)
            complete = epochs_done(h) >= configs(args)[1].epochs
        if args.mode in ("eval", "all"):
            _, cfg = configs(args)
            h = load_checkpoint(state_dir(args) / "model.msgpack").history
            if args.mode == "eval" or epochs_done(h) >= cfg.epochs:
                complete = eval_chunk(args, mnist, deadline)
            else:
                complete = False
                print("training not finished within the budget; rerun to resume before evaluating")
    if args.mode in ("all", "report"):
        report()
    print(_common.load())
    return 0 if complete else 3


if __name__ == "__main__":
    sys.exit(main())  # 0: this mode's work is complete; 3: budget spent, run again to resume
