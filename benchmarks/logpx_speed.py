"""Time of the importance-sampled log p(x) (k = 5,000): the engine against its previous form.

    python benchmarks/logpx_speed.py [--images 500] [--all]

Side by side in one process, on the shipped model 04_main_L20 (784-400-20) and the first
N test images binarized once (``fixed_test_set``), same key:

* engine: ``vae_core.evaluate`` as it is — on a CPU the decoder run on ``DECODER_ROWS``
  (5,000) codes at a time and ``objectives.softplus`` (max(l, 0) + log1p(e^-|l|));
* before (the engine of 2026-11-28): all batch_size x k_chunk = 50,000 codes of a chunk
  decoded at once (``decoder_rows=None``) and ``jax.nn.softplus`` (swapped in, jit caches
  cleared between). The engine always runs first.

Each is timed twice after compilation; the estimates must agree (the same draws). It also
times the decoder's two matmuls alone on 5,000 codes with the model's weights, the floor of
this computation on the machine: 2 x (20*400 + 400*784) = 0.64 MFLOP per decoder pass
(multiply and add counted as two). --all then times the engine on all 10,000 test images,
the number issue 22 asks for (goal: at most 2 minutes).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

import jax  # noqa: E402

from vae_core import evaluate, objectives  # noqa: E402
from vae_core.checkpoint import fixed_test_set, load_shipped  # noqa: E402
from vae_core.data import load_mnist  # noqa: E402
from vae_core.evaluate import log_marginal_likelihood  # noqa: E402

FLOP_PER_PASS = 2 * (20 * 400 + 400 * 784)


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def timed(model, x, decoder_rows, repeats=2):
    """(estimate, first call's seconds with compilation, best of `repeats` later calls)."""
    run = lambda: jax.block_until_ready(log_marginal_likelihood(  # noqa: E731
        model, x, jax.random.PRNGKey(5000), k=5000, decoder_rows=decoder_rows))
    start = time.perf_counter()
    estimate = run()
    first = time.perf_counter() - start
    return estimate, first, min(_time(run) for _ in range(repeats))


def matmul_rate(model, codes: int = 5_000) -> float:
    """GFLOP/s of the decoder's matmuls alone on `codes` codes (best of 5 after compilation)."""
    from flax import nnx

    w = [leaf for leaf in jax.tree_util.tree_leaves(nnx.state(model.decoder)) if leaf.ndim == 2]
    (w1, w2) = w[:2]
    f = jax.jit(lambda z: jax.nn.relu(z @ w1) @ w2)
    z = jax.random.normal(jax.random.PRNGKey(0), (codes, w1.shape[0]))
    jax.block_until_ready(f(z))
    best = min(_time(lambda: jax.block_until_ready(f(z))) for _ in range(5))
    return codes * FLOP_PER_PASS / best / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--all", action="store_true", help="also time the engine on all 10,000 test images")
    args = ap.parse_args()
    _common.start("logpx_speed")
    n = args.images
    result = load_shipped("04_main_L20")
    x_all = fixed_test_set(load_mnist().x_test, result.train_config)
    x = x_all[:n]
    rows = {}
    engine_softplus = objectives.softplus
    for name, softplus, decoder_rows in (("engine (5,000 codes, cheap softplus)", engine_softplus, "auto"),
                                         ("before (50,000 codes, jax.nn.softplus)", jax.nn.softplus, None)):
        objectives.softplus = softplus   # read when the function is traced: clear the jit caches
        jax.clear_caches()
        rows[name] = timed(result.model, x, decoder_rows)
    objectives.softplus = engine_softplus
    jax.clear_caches()
    print(f"log p(x), k = 5,000, first {n} test images, shipped 04_main_L20, same key:")
    for name, (est, first, best) in rows.items():
        print(f"  {name:40s} {best:6.2f} s (first call {first:.2f} s)  mean {float(est.mean()):.4f} nats")
    (a, _, ta), (b, _, tb) = rows.values()
    print(f"  speed-up {tb / ta:.2f}x; largest per-image difference {float(abs(a - b).max()):.2e} nats")
    rate = matmul_rate(result.model)
    floor = n * 5000 * FLOP_PER_PASS / rate / 1e9
    print(f"  decoder matmuls alone (5,000 codes): {rate:.0f} GFLOP/s, so the {n * 5000:,} decoder passes "
          f"need at least {floor:.2f} s here: the decoder's matmuls are {floor / ta:.2f} of the engine's time")
    print(f"  {_common.load()}")
    if args.all:
        start = time.perf_counter()
        est = jax.block_until_ready(log_marginal_likelihood(result.model, x_all, jax.random.PRNGKey(5000), k=5000))
        seconds = time.perf_counter() - start
        print(f"all {len(x_all):,} test images, k = 5,000 (engine, compilation included): {seconds:.1f} s "
              f"({seconds / 60:.2f} min); mean {float(est.mean()):.3f} nats; goal <= 2 min: "
              f"{'met' if seconds <= 120 else 'not met'}")
        print(f"  {_common.load()}")


if __name__ == "__main__":
    main()
