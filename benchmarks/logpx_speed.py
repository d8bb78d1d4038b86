"""Time of the importance-sampled log p(x) (k = 5,000) with two forms of the Bernoulli log-likelihood.

    python benchmarks/logpx_speed.py [--images 500]

Side by side in one process, on the shipped model 04_main_L20 (784-400-20) and the first
N test images binarized once (``fixed_test_set``), same key: the engine's form
``x*l - softplus(l)`` (one softplus per pixel) and the two-log-sigmoid form of
``optax.sigmoid_binary_cross_entropy`` it replaced (swapped in for the second run, jit
caches cleared between). Each is timed twice after compilation; the estimates must agree.
It also times the decoder's two matmuls alone (a jitted relu(z W1) W2 on 50,000 codes, with
the model's weights), the floor of this computation on the machine: 2 x (20*400 + 400*784)
= 0.64 MFLOP per decoder pass (multiply and add counted as two).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from _common import cpu_model, load, now  # noqa: E402

from vae_core import objectives  # noqa: E402
from vae_core.checkpoint import fixed_test_set, load_shipped  # noqa: E402
from vae_core.data import load_mnist  # noqa: E402
from vae_core.evaluate import log_marginal_likelihood  # noqa: E402


def two_log_sigmoids(logits, x):
    return -jnp.sum(optax.sigmoid_binary_cross_entropy(logits, x), axis=-1)


def timed(model, x, repeats=2):
    run = lambda: jax.block_until_ready(log_marginal_likelihood(model, x, jax.random.PRNGKey(5000), k=5000))  # noqa: E731
    start = time.perf_counter()
    est = run()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return est, first, min(times)


def matmul_rate(model) -> float:
    """GFLOP/s of the decoder's matmuls alone on 50,000 codes (best of 3 after compilation)."""
    from flax import nnx

    w = [l for l in jax.tree_util.tree_leaves(nnx.state(model.decoder)) if l.ndim == 2]
    (w1, w2) = w[:2]
    f = jax.jit(lambda z: jax.nn.relu(z @ w1) @ w2)
    z = jax.random.normal(jax.random.PRNGKey(0), (50_000, w1.shape[0]))
    jax.block_until_ready(f(z))
    best = min(_time(lambda: jax.block_until_ready(f(z))) for _ in range(3))
    return 50_000 * 2 * (w1.size + w2.size) / best / 1e9


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=500)
    n = ap.parse_args().images
    print(f"{now()} on {cpu_model()}; {load()}; jax {jax.__version__}")
    result = load_shipped("04_main_L20")
    x = fixed_test_set(load_mnist().x_test[:n], result.train_config)
    engine = objectives.bernoulli_log_likelihood
    rows = {}
    for name, form in (("x*l - softplus(l) (engine)", engine), ("two log-sigmoids (optax)", two_log_sigmoids)):
        objectives.bernoulli_log_likelihood = form
        jax.clear_caches()
        rows[name] = timed(result.model, x)
    objectives.bernoulli_log_likelihood = engine
    print(f"log p(x), k = 5,000, first {n} test images, shipped 04_main_L20:")
    for name, (est, first, best) in rows.items():
        print(f"  {name:28s} {best:6.1f} s (first call {first:.1f} s)  mean {float(est.mean()):.3f} nats")
    (a, _, ta), (b, _, tb) = rows.values()
    print(f"  speed-up {tb / ta:.2f}x; largest per-image difference {float(jnp.max(jnp.abs(a - b))):.2e} nats")
    rate = matmul_rate(result.model)
    flop = n * 5000 * 2 * 321_600
    print(f"  decoder matmuls alone: {rate:.0f} GFLOP/s, so the {n * 5000:,} decoder passes need at least "
          f"{flop / rate / 1e9:.1f} s here")
    print(f"  {load()}")


if __name__ == "__main__":
    main()
