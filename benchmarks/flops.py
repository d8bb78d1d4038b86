"""Benchmark 2: achieved FLOP rate of a training epoch versus the measured matmul rate.

FLOP count (matmuls only, counted analytically): for each Dense layer of in x out, a
forward pass costs 2*in*out FLOP per image and the backward pass 4*in*out (gradient
with respect to the weights and to the layer's input). The 784-400-20 Bernoulli VAE of
vae_core has four Dense layers: 784x400, 400x40 (the fused mean/log-variance head),
20x400, 400x784, so 6 * 651,200 = 3,907,200 FLOP per training image. (The first layer's
input gradient is never needed; without it the count is 3,280,000 FLOP per image: the
script prints the fraction for both counts.) Element-wise work (activations, sampling,
the loss, Adam) is not counted.

Reference rate: jnp.dot of two float32 2048x2048 matrices, jitted, best of several
calls (2 * 2048^3 FLOP each). Epochs and matmul timings alternate in one run so that
both see the same machine conditions.

The honest ceiling of a batch-128 step is its **matmul-only skeleton** (issue 22): the same
epoch (one ``lax.scan`` over the same 468 gathered minibatches) whose step does only the
eleven matmuls of the real step, with the same shapes — forward 784x400, 400x40, 20x400,
400x784 and the backward products for every weight and hidden input — and nothing else:
no activation, sampling, loss, RNG or optimizer. What it keeps besides the matmuls: the
minibatch gather from the device-resident data, as in the real step, and one add per
parameter (each step's weight gradients summed into the loop's carry). That add is the
least that keeps XLA from dropping work: with each step's gradients merely replacing the
last ones, the first of every two unrolled steps is dead code, and the "skeleton" ran at
1.5x the 2048^2 matmul rate. Each round times the real epoch, the
real epoch without dynamic binarization (what the Bernoulli draws cost) and the skeleton,
alternating; the goal is skeleton time / real time >= 0.9.

Two floors are timed in the same rounds: the skeleton whose gradients go through
optax.adam (the course's optimizer) instead of the sum, and that plus the dynamic
binarization of every minibatch (vae_core.data.binarize). Any step that trains this VAE
the course's way does at least this much; skeleton / floor bounds what the goal's
ratio can reach without changing the optimizer or the data protocol.

  python benchmarks/flops.py --repeats 5
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
import optax  # noqa: E402

from vae_core.data import binarize as binarize_images, load_mnist  # noqa: E402
from throughput import jax_epoch_runner  # noqa: E402

LAYERS = [(784, 400), (400, 40), (20, 400), (400, 784)]
N = 2048


def flops_per_image() -> tuple[int, int]:
    full = sum(6 * i * o for i, o in LAYERS)
    no_input_grad = full - 2 * LAYERS[0][0] * LAYERS[0][1]
    return full, no_input_grad


def matmul_timer():
    ka, kb = jax.random.split(jax.random.PRNGKey(0))
    a = jax.random.normal(ka, (N, N), jnp.float32)
    b = jax.random.normal(kb, (N, N), jnp.float32)
    f = jax.jit(jnp.dot)
    f(a, b).block_until_ready()

    def best_of(n):
        best = float("inf")
        for _ in range(n):
            t0 = time.perf_counter()
            f(a, b).block_until_ready()
            best = min(best, time.perf_counter() - t0)
        return 2 * N**3 / best

    return best_of


def skeleton_epoch_runner(x_train, batch: int = 128, *, adam: bool = False, binarize: bool = False):
    """one_epoch() runs the matmul-only skeleton of a training epoch and returns its seconds.

    adam=True: each step's gradients update the weights through optax.adam (the course's
    optimizer) instead of being summed; binarize=True: each minibatch is binarized first
    (vae_core.data.binarize, as the real step does). These two are no less than any
    Bernoulli VAE trained the course's way must do besides its matmuls: a floor under the real step.
    """
    data = jnp.asarray(x_train)     # passed to the jitted epoch as an argument, as in the real one
    steps = len(x_train) // batch
    keys = jax.random.split(jax.random.PRNGKey(0), len(LAYERS))
    weights = [0.01 * jax.random.normal(k, shape) for k, shape in zip(keys, LAYERS)]
    latent = LAYERS[2][0]

    tx = optax.adam(1e-3)

    def step(carry, inputs):
        w, data, acc = carry
        idx, key = inputs
        x = data[idx]                                              # [batch, 784]
        if binarize:
            x = binarize_images(key, x)
        h1 = x @ w[0]                                              # forward
        head = h1 @ w[1]
        z = head[:, :latent]
        h2 = z @ w[2]
        out = h2 @ w[3]
        d_out = out                                                # stands in for dloss/dlogits
        d_h2 = d_out @ w[3].T                                      # backward
        d_z = d_h2 @ w[2].T
        d_head = jnp.concatenate([d_z, d_z], axis=1)
        grads = [x.T @ (d_head @ w[1].T), h1.T @ d_head, z.T @ d_h2, h2.T @ d_out]
        if adam:  # acc is the optimizer state; the weights change every step
            updates, acc = tx.update(grads, acc, w)
            return (optax.apply_updates(w, updates), data, acc), None
        return (w, data, [a + g for a, g in zip(acc, grads)]), None

    @jax.jit
    def epoch(w, data, acc, key):
        k_perm, k_steps = jax.random.split(key)
        order = jax.random.permutation(k_perm, len(x_train))[: steps * batch].reshape(steps, batch)
        (w, _, acc), _ = jax.lax.scan(step, (w, data, acc), (order, jax.random.split(k_steps, steps)), unroll=2)
        return w, acc

    state = {"i": 0}

    def one_epoch():
        acc = tx.init(weights) if adam else [jnp.zeros_like(w) for w in weights]
        key = jax.random.fold_in(jax.random.PRNGKey(1), state["i"])
        t0 = time.perf_counter()
        jax.block_until_ready(epoch(weights, data, acc, key))
        state["i"] += 1
        return time.perf_counter() - t0

    return one_epoch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5, help="rounds of (one epoch, a few matmuls)")
    p.add_argument("--matmuls", type=int, default=8, help="2048^2 products per round (best is kept)")
    args = p.parse_args()
    _common.start("flops")
    full, tight = flops_per_image()
    print(f"FLOP per training image (matmuls, forward 2*in*out + backward 4*in*out per Dense layer "
          f"{LAYERS}): {full:,} (= {full / 1e6:.3f} MFLOP); without the first layer's unneeded "
          f"input gradient: {tight:,}")
    x_train = load_mnist().x_train
    epoch, n_img, _ = jax_epoch_runner(x_train)
    plain_epoch, _, _ = jax_epoch_runner(x_train, binarize=False)
    skeleton = skeleton_epoch_runner(x_train)
    floor_adam = skeleton_epoch_runner(x_train, adam=True)
    floor_adam_bin = skeleton_epoch_runner(x_train, adam=True, binarize=True)
    peak = matmul_timer()
    l0 = os.getloadavg()[0]
    compile_s = epoch()
    plain_epoch(), skeleton(), floor_adam(), floor_adam_bin()
    print(f"first epoch incl. compilation {compile_s:.2f} s; {n_img} images per epoch, batch 128")
    rates, peaks, times, plain, skel, f_adam, f_bin = [], [], [], [], [], [], []
    for r in range(args.repeats):
        times.append(epoch())
        rates.append(n_img * full / times[-1])
        plain.append(plain_epoch())
        skel.append(skeleton())
        f_adam.append(floor_adam())
        f_bin.append(floor_adam_bin())
        peaks.append(peak(args.matmuls))
        print(f"  round {r + 1}: epoch {times[-1]:.3f} s = {n_img / times[-1]:8.0f} img/s = {rates[-1] / 1e9:6.1f} "
              f"GFLOP/s; without binarization {plain[-1]:.3f} s; matmul-only skeleton {skel[-1]:.3f} s "
              f"(skeleton / step {skel[-1] / times[-1]:.3f}); skeleton + Adam {f_adam[-1]:.3f} s, + binarization "
              f"{f_bin[-1]:.3f} s; 2048^2 matmul best {peaks[-1] / 1e9:6.1f} GFLOP/s; load {os.getloadavg()[0]:.2f}")
    l1 = os.getloadavg()[0]
    pk = max(peaks)
    med, best = statistics.median(rates), max(rates)
    t_step, t_plain, t_skel = statistics.median(times), statistics.median(plain), statistics.median(skel)
    t_adam, t_bin = statistics.median(f_adam), statistics.median(f_bin)
    print("SKELETON")
    print(f"  median epoch: real step {t_step:.3f} s, without binarization {t_plain:.3f} s, matmul-only "
          f"skeleton {t_skel:.3f} s; skeleton / step {t_skel / t_step:.3f} (goal >= 0.9: "
          f"{'MET' if t_skel / t_step >= 0.9 else 'NOT MET'}); per round "
          f"{', '.join(f'{s / t:.3f}' for s, t in zip(skel, times))}")
    print(f"  of the real epoch: the skeleton (matmuls, gather, one add per parameter) {t_skel / t_step:.0%}, dynamic binarization "
          f"{(t_step - t_plain) / t_step:.0%}, everything else (activations, sampling, loss, Adam) "
          f"{(t_plain - t_skel) / t_step:.0%}")
    print(f"  floors (the skeleton plus what every step of this training must also do): skeleton + Adam "
          f"{t_adam:.3f} s, skeleton / that {t_skel / t_adam:.3f}; skeleton + Adam + dynamic binarization "
          f"{t_bin:.3f} s, skeleton / that {t_skel / t_bin:.3f}; that floor / real step {t_bin / t_step:.3f}")
    print("RESULT")
    print(f"  matmul rate (float32 2048x2048 jnp.dot, best of {args.repeats * args.matmuls}): {pk / 1e9:.1f} GFLOP/s")
    print(f"  training epoch: median {med / 1e9:.1f} GFLOP/s ({med / full:.0f} img/s), best {best / 1e9:.1f} GFLOP/s")
    print(f"  fraction of the matmul rate: median epoch {med / pk:.3f}, best epoch {best / pk:.3f} "
          f"(counting {full / 1e6:.3f} MFLOP/image); with {tight / 1e6:.3f} MFLOP/image: "
          f"median {med * tight / full / pk:.3f}, best {best * tight / full / pk:.3f}")
    print(f"  goal >= 0.75: {'MET' if best / pk >= 0.75 else 'NOT MET'} (best epoch, full count)")
    print(f"  load average (1 min) at start {l0:.2f}, at end {l1:.2f}")
    print(_common.load())


if __name__ == "__main__":
    main()
