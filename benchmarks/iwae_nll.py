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

State lives in benchmarks/results/iwae_state/<run>/: a vae_core checkpoint
(save_checkpoint) of parameters, configs and history; the optimiser state; and the
log p(x) of each evaluated block of test images.
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

import flax.serialization  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from vae_core.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from vae_core.data import binarize, load_mnist  # noqa: E402
from vae_core.evaluate import evaluate, log_likelihood  # noqa: E402
from vae_core.models import ModelConfig, init_params  # noqa: E402
from vae_core.train import TrainConfig, TrainResult, make_epoch_fn, make_optimizer  # noqa: E402

STATE = Path(os.environ.get("VAE_BENCH_STATE", _common.RESULTS / "iwae_state"))
TEST_SEED = 2015          # the test set is binarized once with this seed
EVAL_SEED = 5000          # key of the importance samples
K_EVAL, K_CHUNK, BLOCK = 5000, 500, 500   # log p(x) in blocks of 500 test images
PAPER = {("elbo", 1): 86.76, ("iwae", 5): 85.54, ("iwae", 50): 84.78, ("elbo", 5): 86.47,
         ("elbo", 50): 86.35}

MODEL = ModelConfig(latent_dim=50, hidden=(200, 200), activation="tanh")


def run_name(objective: str, k: int, batch: int, epochs: int) -> str:
    return f"{objective}_k{k}_b{batch}_e{epochs}"


def configs(args) -> tuple[ModelConfig, TrainConfig]:
    k = args.k if args.objective == "iwae" else 1
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch, learning_rate=1e-3, lr_decay=1e-4,
                      objective=args.objective, iwae_k=k, adam_b1=0.99, adam_b2=0.999, adam_eps=1e-4,
                      seed=args.seed)
    return MODEL, cfg


def state_dir(args) -> Path:
    _, cfg = configs(args)
    return STATE / run_name(cfg.objective, cfg.iwae_k, cfg.batch_size, cfg.epochs)


def test_set(mnist):
    return binarize(jax.random.PRNGKey(TEST_SEED), jnp.asarray(mnist.x_test))


# ------------------------------------------------------------------------------ training
def train_chunk(args, mnist, deadline: float) -> dict:
    """Train until the planned epochs are done or the deadline passes; checkpoint each epoch
    whose end is more than 30 s after the last save, and at the end."""
    model_cfg, cfg = configs(args)
    d = state_dir(args)
    d.mkdir(parents=True, exist_ok=True)
    ckpt, opt_file = d / "model.msgpack", d / "opt_state.msgpack"
    x_train = jnp.asarray(mnist.x_train)
    x_test = test_set(mnist)
    key = jax.random.PRNGKey(cfg.seed)
    k_init, k_test, k_train = jax.random.split(key, 3)
    model, params = init_params(model_cfg, k_init, data_mean=jnp.mean(x_train, 0))
    steps_per_epoch = len(x_train) // cfg.batch_size
    tx = make_optimizer(cfg, steps_per_epoch * cfg.epochs)
    opt_state = tx.init(params)
    history = {"epoch": [], "test_elbo": [], "train_loss": [], "seconds": [], "load1": []}
    if ckpt.exists():
        res = load_checkpoint(ckpt, model_config=model_cfg, train_config=cfg)
        params, history = res.params, res.history
        opt_state = flax.serialization.from_bytes(opt_state, opt_file.read_bytes())
    done = len(history["epoch"])
    step = jnp.asarray(done * steps_per_epoch, jnp.int32)
    if done >= cfg.epochs:
        print(f"[{d.name}] training already complete: {done} epochs")
        return history
    run_epoch = make_epoch_fn(model, cfg, tx, len(x_train))
    print(f"[{d.name}] resuming at epoch {done + 1} of {cfg.epochs}; {_common.load()}")
    last_save = time.perf_counter()
    t_chunk = time.perf_counter()
    epochs_here = 0

    def save():
        save_checkpoint(ckpt, TrainResult(model, params, history, model_cfg, cfg))
        tmp = opt_file.with_suffix(".tmp")
        tmp.write_bytes(flax.serialization.to_bytes(jax.device_get(opt_state)))
        os.replace(tmp, opt_file)

    last_epoch = 0.0
    while done < cfg.epochs and time.perf_counter() + last_epoch < deadline:
        t0 = time.perf_counter()
        params, opt_state, step, m = run_epoch(params, opt_state, step, x_train,
                                               jax.random.fold_in(k_train, done))
        loss = float(np.mean(jax.device_get(m["loss"])))
        sec = time.perf_counter() - t0
        done += 1
        epochs_here += 1
        ev = evaluate(model, params, x_test, jax.random.fold_in(k_test, done), check=False)
        history["epoch"].append(done)
        history["train_loss"].append(loss)
        history["test_elbo"].append(float(ev["elbo"]))
        history["seconds"].append(sec)
        history["load1"].append(os.getloadavg()[0])
        last_epoch = time.perf_counter() - t0
        if not np.isfinite(loss):
            raise FloatingPointError(f"loss became {loss} in epoch {done}")
        if done % 10 == 0 or done == cfg.epochs:
            print(f"  epoch {done:4d}  train loss {loss:8.3f}  test ELBO {history['test_elbo'][-1]:8.3f}"
                  f"  {sec:5.2f} s  load {history['load1'][-1]:.2f}")
        if time.perf_counter() - last_save > 30 or done == cfg.epochs:
            save()
            last_save = time.perf_counter()
    save()
    wall = time.perf_counter() - t_chunk
    print(f"[{d.name}] chunk: {epochs_here} epochs in {wall:.1f} s "
          f"({epochs_here * steps_per_epoch * cfg.batch_size / max(wall, 1e-9):.0f} images/s incl. compile "
          f"and per-epoch test ELBO); now {done}/{cfg.epochs}; {_common.load()}")
    return history


# ------------------------------------------------------------------------------ evaluation
def eval_chunk(args, mnist, deadline: float) -> bool:
    """Evaluate log p(x) (k=5000) block by block until done or past the deadline.
    Returns True when the whole test set is done."""
    model_cfg, cfg = configs(args)
    d = state_dir(args)
    ckpt = d / "model.msgpack"
    res = load_checkpoint(ckpt, model_config=model_cfg, train_config=cfg)
    n_epochs = len(res.history["epoch"])
    x = test_set(mnist)
    n_blocks = -(-len(x) // BLOCK)
    key = jax.random.PRNGKey(EVAL_SEED)
    out_dir = d / f"logpx_after_{n_epochs}_epochs"
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
        lp = log_likelihood(res.model, res.params, x[b * BLOCK:(b + 1) * BLOCK], jax.random.fold_in(key, b),
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
        res = load_checkpoint(ckpt)
        h, cfg = res.history, res.train_config
        n = len(h["epoch"])
        train_s = float(np.sum(h["seconds"]))
        print(f"\nrun {d.name}: objective={cfg.objective} k={cfg.iwae_k} batch={cfg.batch_size} "
              f"lr 1e-3 -> cosine -> 1e-4 over {cfg.epochs} planned epochs; Adam b1={cfg.adam_b1} "
              f"b2={cfg.adam_b2} eps={cfg.adam_eps}")
        print(f"  trained {n} epochs, {train_s / 60:.1f} min of epoch time (sum of per-epoch wall time; "
              f"median load average during training {np.median(h['load1']):.2f}, max {np.max(h['load1']):.2f})")
        if n:
            print(f"  test ELBO (one sample, fixed binarization) after epoch {n}: {h['test_elbo'][-1]:.2f} nats")
        for out_dir in sorted(d.glob("logpx_after_*_epochs")):
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
            complete = len(h["epoch"]) >= configs(args)[1].epochs
        if args.mode in ("eval", "all"):
            _, cfg = configs(args)
            h = load_checkpoint(state_dir(args) / "model.msgpack").history
            if args.mode == "eval" or len(h["epoch"]) >= cfg.epochs:
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
