"""Training speed of the sprite conv beta-VAE: lax.scan epoch vs a jitted step in a Python loop.

    flock /tmp/vae_cpu.lock .venv/bin/python benchmarks/conv_speed.py [--n 3200]

Why it exists: XLA:CPU runs convolutions inside a loop body (``lax.scan``,
``while``) on a slow path (jax-ml/jax#12868), so ``vae_core.train.make_epoch_fn``
uses a Python loop over a jitted step for conv models on CPU. This measures both
loops for the notebook 05 net (``course.nb05_disentangle.sprite_model_config``, 32x32
sprites, batch 64, beta 4) and for the usual dSprites width (32, 32, 64, 64), with the
epoch function ``train`` uses (``make_epoch_fn``), its ``loop`` chosen by hand.

Each cell is the second epoch over N procedural sprites (the first epoch compiles and
is not counted), reported as images per second. Run it alone on the machine.
Writes benchmarks/results/conv_speed.txt (``--n 256``: a quick check that it runs).
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import jax.numpy as jnp
from flax import nnx

from _common import load, start  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from course import nb05_disentangle as dis
from vae_core import sprites
from vae_core.models import build_model
from vae_core.train import make_epoch_fn, make_optimizer


def images_per_second(channels, loop: str, x, epochs: int = 2) -> float:
    cfg = dataclasses.replace(dis.sprite_model_config(32), conv_channels=channels)
    tcfg = dis.sprite_train_config(4.0, 0, epochs)
    model = build_model(cfg, jax.random.PRNGKey(0), data_mean=jnp.mean(x, 0))
    tx = make_optimizer(tcfg, len(x) // tcfg.batch_size)
    params = jax.tree_util.tree_map(jnp.array, nnx.state(model))  # a copy: the epoch donates its inputs
    opt_state, step = tx.init(params), jnp.zeros((), jnp.int32)
    run_epoch = make_epoch_fn(model, tcfg, tx, len(x), loop=loop)
    for epoch in range(epochs):
        t0 = time.perf_counter()
        params, opt_state, step, metrics = run_epoch(params, opt_state, step, x, jax.random.PRNGKey(epoch))
        jax.block_until_ready(metrics)
        seconds = time.perf_counter() - t0
    n_images = (len(x) // tcfg.batch_size) * tcfg.batch_size
    return n_images / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3200, help="sprites per epoch")
    args = ap.parse_args()
    start("conv_speed")
    x = jnp.asarray(sprites.make_sprites(args.n, size=32, seed=0).images)
    print(f"{'conv channels':>18} {'lax.scan epoch':>16} {'Python loop':>14} {'ratio':>7}   (images/s, 2nd epoch of {args.n})")
    for channels in [dis.sprite_model_config(32).conv_channels, (32, 32, 64, 64)]:
        scan = images_per_second(channels, "scan", x)
        python = images_per_second(channels, "python", x)
        print(f"{str(channels):>18} {scan:16.0f} {python:14.0f} {python / scan:6.1f}x", flush=True)
    print(load())


if __name__ == "__main__":
    main()
