"""The engine's random draws (vae_core.rng) against jax.random's: same bits, how much faster.

    flock /tmp/vae_cpu.lock .venv/bin/python benchmarks/rng_speed.py [--repeats 5]

Three draws the engine makes, each jitted both ways and timed alternating (best of
--repeats after a compiling call), outputs compared bit for bit:
  * one epoch's dynamic binarization at once: Bernoulli(x) for all 60,000 x 784 MNIST pixels;
  * the same inside a training epoch's loop: one lax.scan over 468 shuffled minibatches
    of 128, each gathered and binarized (its sum kept, so no draw is dropped); the gather
    alone is timed too;
  * the normal codes of a training step's reparameterized sample (128 x 20) in the same loop;
  * the normal codes of one log p(x) chunk: 100 test images x 500 importance samples x 20
    latents (``log_marginal_likelihood``'s default chunk).
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from _common import load, start  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from vae_core import rng
from vae_core.data import load_mnist

STEPS, BATCH = 468, 128


def best_time(f, *args, repeats: int) -> float:
    jax.block_until_ready(f(*args))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def epoch_of_minibatches(draw):
    """A jitted epoch: gather each shuffled minibatch of 128 and reduce draw(key, batch) to its sum -> [STEPS]."""
    @jax.jit
    def epoch(key, x):
        order = jax.random.permutation(key, len(x))[: STEPS * BATCH].reshape(STEPS, BATCH)

        def step(carry, inputs):
            k, idx = inputs
            return carry, jnp.sum(draw(k, x[idx]).astype(jnp.float32))

        return jax.lax.scan(step, jnp.float32(0), (jax.random.split(key, STEPS), order))[1]

    return epoch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    start("rng_speed")
    x = jnp.asarray(load_mnist().x_train)
    key = jax.random.PRNGKey(0)
    cases = [
        (f"Bernoulli, one epoch's {x.shape[0]:,} x {x.shape[1]} pixels at once", (key, x),
         jax.jit(jax.random.bernoulli), jax.jit(rng.bernoulli)),
        (f"Bernoulli, {STEPS} minibatches of {BATCH} in one lax.scan (with the gather)", (key, x),
         epoch_of_minibatches(jax.random.bernoulli), epoch_of_minibatches(rng.bernoulli)),
        (f"normal codes of {STEPS} training minibatches, 128 x 20 each, in one lax.scan", (key, x),
         epoch_of_minibatches(lambda k, b: jax.random.normal(k, (len(b), 20))),
         epoch_of_minibatches(lambda k, b: rng.normal(k, (len(b), 20)))),
        ("normal codes, 500 x 100 x 20 (one log p(x) chunk)", (key,),
         jax.jit(lambda k: jax.random.normal(k, (500, 100, 20))), jax.jit(lambda k: rng.normal(k, (500, 100, 20)))),
    ]
    gather = best_time(epoch_of_minibatches(lambda k, b: b), key, x, repeats=args.repeats)
    print(f"{'draw':<72} {'jax.random':>11} {'vae_core.rng':>13} {'speed-up':>9}  same output")
    for label, inputs, theirs, ours in cases:
        same = bool(np.array_equal(np.asarray(theirs(*inputs)), np.asarray(ours(*inputs))))
        t_theirs, t_ours = [], []
        for _ in range(args.repeats):  # alternate, so both see the same machine
            t_theirs.append(best_time(theirs, *inputs, repeats=1))
            t_ours.append(best_time(ours, *inputs, repeats=1))
        a, b = min(t_theirs), min(t_ours)
        print(f"{label:<72} {a:10.4f}s {b:12.4f}s {a / b:8.1f}x  {same}", flush=True)
    print(f"(the gather of the {STEPS} minibatches alone, in the same loop: {gather:.4f} s)")
    print(load())


if __name__ == "__main__":
    main()
