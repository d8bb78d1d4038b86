"""Train the tests' small VAE on toy images with however many devices JAX sees; write what to compare.

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/sharded_run.py OUT.npz

Run by tests/test_parallel.py in a fresh process per device count (the count is fixed when
JAX starts; the one-device reference runs inside the test process). Writes the loss trajectory, the final parameters, log p(x) and the posterior
means of the test images, and how the work was split: the devices the parameters live on,
their partition spec, and whether the compiled epoch sums gradients across devices
(an all-reduce) on per-device slices of the batch.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from vae_core.evaluate import encode, log_marginal_likelihood  # noqa: E402
from vae_core.models import ModelConfig, build_model  # noqa: E402
from vae_core.parallel import replicate, split_count  # noqa: E402
from vae_core.train import TrainConfig, make_epoch_fn, make_optimizer, train  # noqa: E402

SMALL = ModelConfig(latent_dim=4, hidden=(32,))
CFG = TrainConfig(epochs=2, batch_size=64, seed=3)


def measure(out: str) -> None:
    """Train, evaluate and compile on the devices this process has; write the results to out (.npz)."""
    rng = np.random.default_rng(0)
    base = np.zeros((2, 784), np.float32)
    base[0, :392], base[1, 392:] = 0.9, 0.9
    x = (base[rng.integers(0, 2, 512)] * rng.uniform(0.6, 1.0, (512, 1))).astype(np.float32)
    x_train, x_test = x[:448], (x[448:] > 0.5).astype(np.float32)

    result = train(SMALL, CFG, x_train, x_test, progress=False)
    params = jax.tree_util.tree_leaves(nnx.state(result.model))
    key = jax.random.PRNGKey(7)
    logpx = log_marginal_likelihood(result.model, x_test, key, k=40, k_chunk=20, batch_size=32)
    means = encode(result.model, x_test, batch_size=32).mean

    # the compiled epoch: is the batch split, are the gradients summed across devices?
    model = build_model(SMALL, jax.random.PRNGKey(0))
    steps = len(x_train) // CFG.batch_size
    tx = make_optimizer(CFG, steps)
    p0 = nnx.state(model)
    p0, o0, data = replicate((p0, tx.init(p0), jax.numpy.asarray(x_train)), CFG.batch_size)
    run_epoch = make_epoch_fn(model, CFG, tx, len(x_train))
    hlo = run_epoch.lower(p0, o0, jax.numpy.int32(0), data, key).compile().as_text()
    n_split = split_count(CFG.batch_size)
    sharding = params[0].sharding
    np.savez(out, train_loss=np.asarray(result.history["train_loss"]),
             test_elbo=np.asarray(result.history["test_elbo"]),
             params=np.concatenate([np.ravel(np.asarray(p)) for p in params]),
             logpx=np.asarray(logpx), means=np.asarray(means),
             info=json.dumps({"devices": len(jax.local_devices()), "split": n_split,
                              "param_devices": len(sharding.device_set),
                              "param_spec": str(getattr(sharding, "spec", None)),
                              "all_reduce": "all-reduce" in hlo,
                              "per_device_batch": f"f32[{CFG.batch_size // n_split},784]" in hlo}))


if __name__ == "__main__":
    measure(sys.argv[1])
