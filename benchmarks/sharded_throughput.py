"""Training images/s on one device and split across 2 and 8 devices, side by side in one run.

    python benchmarks/sharded_throughput.py [--devices 1,2,8] [--epochs 3]

Each device count runs in its own process with
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (fixed when JAX starts), one after
the other, training notebook 04's 784-400-20 VAE (batch 128, dynamic binarization) on the
60,000 MNIST training images with the jitted epoch ``vae_core.train`` uses (the batch split
by ``vae_core.parallel`` when N > 1). One warm-up epoch (compilation) is excluded; the median
of the timed epochs is reported. On a CPU the N "devices" share the same cores, so this
shows that the sharded path runs and what it costs, not a speed-up; on a machine with
several GPUs or TPU cores the same command measures the real split.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def child(epochs: int) -> dict:
    import jax
    from flax import nnx

    from vae_core.data import load_mnist
    from vae_core.models import ModelConfig, build_model
    from vae_core.parallel import replicate, splits
    from vae_core.train import TrainConfig, make_epoch_fn, make_optimizer

    x = jax.numpy.asarray(load_mnist().x_train)
    cfg = TrainConfig(batch_size=128)
    n = (len(x) // cfg.batch_size) * cfg.batch_size
    model = build_model(ModelConfig(latent_dim=20, hidden=(400,)), jax.random.PRNGKey(0))
    tx = make_optimizer(cfg, len(x) // cfg.batch_size)
    params = nnx.state(model)
    params, opt_state, x = replicate((params, tx.init(params), x))
    run_epoch = make_epoch_fn(model, cfg, tx, len(x))
    step, times = jax.numpy.int32(0), []
    for i in range(epochs + 1):
        start = time.perf_counter()
        params, opt_state, step, m = run_epoch(params, opt_state, step, x, jax.random.PRNGKey(i))
        jax.block_until_ready(m)
        times.append(time.perf_counter() - start)
    return {"devices": len(jax.local_devices()), "split": len(jax.local_devices()) if splits(cfg.batch_size) else 1,
            "images_per_s": n / statistics.median(times[1:]), "first_epoch_s": times[0],
            "epoch_s": times[1:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", default="1,2,8")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.epochs)))
        return
    from _common import cpu_model, load, now

    print(f"{now()} on {cpu_model()}; load before: {load()}")
    print(f"{'devices':>8} {'split':>6} {'images/s':>10} {'first epoch (s)':>16}  timed epochs (s)")
    for n in [int(d) for d in args.devices.split(",")]:
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"}
        out = subprocess.run([sys.executable, __file__, "--child", "--epochs", str(args.epochs)], env=env,
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"{r['devices']:>8} {r['split']:>6} {r['images_per_s']:>10,.0f} {r['first_epoch_s']:>16.1f}  "
              f"{[round(t, 2) for t in r['epoch_s']]}", flush=True)
    print(f"load after: {load()}")


if __name__ == "__main__":
    main()
