"""Benchmark 1: training throughput (images/s), vae_core versus a PyTorch reference.

Model: 784-400-20 Bernoulli VAE (ReLU), batch 128, Adam 1e-3, dynamic binarization of
every minibatch, 60,000 MNIST training images (468 steps = 59,904 images per epoch).

- vae_core: the jitted epoch that vae_core.train.train runs (one lax.scan over
  device-resident data, vae_core.train.make_epoch_fn, called here one epoch at a time so
  that the two frameworks can alternate); the first call (compilation + one epoch) is
  reported separately and excluded.
- PyTorch: the same network (PyTorch's own VAE example: fc1, fc21/fc22 heads, fc3, fc4),
  the same loss (summed BCE with logits + analytic KL, mean over the batch) and
  optimiser, eager mode, torch.set_num_threads(2), binarization per batch with
  torch.bernoulli, a fresh permutation each epoch. One warm-up epoch excluded.

Epochs of the two alternate (JAX, torch, JAX, torch, ...) so that both see the same
machine conditions; the result is the median over repeats, and the ratio of medians.

  python benchmarks/throughput.py --repeats 5
  python benchmarks/throughput.py --quick --no-torch   # a check that it runs: 1 repeat, 6,016 images
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from flax import nnx  # noqa: E402

from vae_core.data import load_mnist  # noqa: E402
from vae_core.models import ModelConfig, build_model  # noqa: E402
from vae_core.train import TrainConfig, make_epoch_fn, make_optimizer  # noqa: E402

BATCH = 128


QUICK_IMAGES = 6016  # --quick: 47 steps of 128


def jax_epoch_runner(x_train, binarize: bool = True):
    """one_epoch() trains the 784-400-20 VAE for one more epoch and returns its seconds.
    binarize=False skips the dynamic binarization (to measure what it costs)."""
    model_cfg = ModelConfig(latent_dim=20, hidden=(400,), activation="relu")
    cfg = TrainConfig(epochs=1, batch_size=BATCH, learning_rate=1e-3, binarize=binarize)
    data = jnp.asarray(x_train)
    model = build_model(model_cfg, jax.random.PRNGKey(0))
    steps = len(x_train) // BATCH
    tx = make_optimizer(cfg, steps)
    params = jax.tree_util.tree_map(jnp.array, nnx.state(model))  # a copy: the epoch donates its inputs
    run_epoch = make_epoch_fn(model, cfg, tx, len(x_train))
    state = {"params": params, "opt": tx.init(params), "step": jnp.zeros((), jnp.int32), "i": 0, "loss": None}

    def one_epoch():
        key = jax.random.fold_in(jax.random.PRNGKey(1), state["i"])
        t0 = time.perf_counter()
        p, o, s, m = run_epoch(state["params"], state["opt"], state["step"], data, key)
        jax.block_until_ready((p, o, m))
        dt = time.perf_counter() - t0
        state.update(params=p, opt=o, step=s, i=state["i"] + 1, loss=float(np.mean(m["loss"])))
        return dt

    return one_epoch, steps * BATCH, state


def torch_epoch_runner(x_train, threads: int):
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)

    class VAE(nn.Module):  # PyTorch's examples/vae, with logits out
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(784, 400)
            self.fc21 = nn.Linear(400, 20)
            self.fc22 = nn.Linear(400, 20)
            self.fc3 = nn.Linear(20, 400)
            self.fc4 = nn.Linear(400, 784)

        def forward(self, x):
            h = F.relu(self.fc1(x))
            mu, logvar = self.fc21(h), self.fc22(h)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            return self.fc4(F.relu(self.fc3(z))), mu, logvar

    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = torch.from_numpy(np.asarray(x_train, np.float32))
    n = len(data)
    steps = n // BATCH
    state = {"loss": None}

    def one_epoch():
        t0 = time.perf_counter()
        order = torch.randperm(n)
        total = torch.zeros(())
        for s in range(steps):
            x = torch.bernoulli(data[order[s * BATCH:(s + 1) * BATCH]])
            logits, mu, logvar = model(x)
            rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
            kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            loss = (rec + kl) / BATCH
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        dt = time.perf_counter() - t0
        state["loss"] = float(total) / steps
        return dt

    return one_epoch, steps * BATCH, state, torch.__version__, torch.get_num_threads()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5, help="timed epochs of each framework")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--no-torch", action="store_true", help="time vae_core alone (no PyTorch reference)")
    p.add_argument("--quick", action="store_true",
                   help=f"a check that the script runs: 1 repeat on {QUICK_IMAGES} images (results: throughput_quick)")
    args = p.parse_args()
    repeats = 1 if args.quick else args.repeats
    _common.start("throughput_quick" if args.quick else "throughput")
    x_train = load_mnist().x_train
    if args.quick:
        x_train = x_train[:QUICK_IMAGES]

    jax_epoch, n_img, jstate = jax_epoch_runner(x_train)
    torch_epoch = None
    if not args.no_torch:
        torch_epoch, n_img_t, tstate, torch_version, threads = torch_epoch_runner(x_train, args.threads)
        assert n_img == n_img_t
        print(f"torch {torch_version}, torch threads {threads}; {n_img} images per epoch, batch {BATCH}")
    else:
        print(f"PyTorch reference skipped (--no-torch); {n_img} images per epoch, batch {BATCH}")

    l0 = os.getloadavg()[0]
    compile_s = jax_epoch()
    warm = f"; torch warm-up epoch {torch_epoch():.2f} s" if torch_epoch else ""
    print(f"jax: first epoch incl. compilation {compile_s:.2f} s{warm}")
    jt, tt = [], []
    for r in range(repeats):
        jt.append(jax_epoch())
        line = f"  repeat {r + 1}: vae_core {jt[-1]:.3f} s ({n_img / jt[-1]:8.0f} img/s)   "
        if torch_epoch:
            tt.append(torch_epoch())
            line += f"torch {tt[-1]:.3f} s ({n_img / tt[-1]:8.0f} img/s)   ratio {tt[-1] / jt[-1]:.2f}   "
        print(line + f"load {os.getloadavg()[0]:.2f}")
    l1 = os.getloadavg()[0]
    jm = statistics.median(jt)
    torch_loss = f", torch {tstate['loss']:.2f}" if torch_epoch else ""
    print(f"final train loss after {jstate['i']} epochs: vae_core {jstate['loss']:.2f}{torch_loss} "
          "(nats per image; both learn)")
    print("RESULT")
    print(f"  vae_core (JAX, jitted lax.scan epoch): median {n_img / jm:.0f} images/s "
          f"(best {n_img / min(jt):.0f}) over {repeats} epochs")
    if torch_epoch:
        tm = statistics.median(tt)
        pair = statistics.median(t / j for j, t in zip(jt, tt))
        print(f"  PyTorch {torch_version} eager, {threads} threads: median {n_img / tm:.0f} images/s "
              f"(best {n_img / min(tt):.0f})")
        print(f"  ratio vae_core / PyTorch: {tm / jm:.2f} (ratio of medians); median of per-pair ratios {pair:.2f}; "
              f"best vs best {min(tt) / min(jt):.2f}")
        print(f"  goal >= 2.0: {'MET' if tm / jm >= 2.0 else 'NOT MET'}")
    print(f"  load average (1 min) at start {l0:.2f}, at end {l1:.2f}")
    print(_common.load())


if __name__ == "__main__":
    main()
