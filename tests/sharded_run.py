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
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from vae_core.evaluate import encode, log_marginal_likelihood  # noqa: E402
from vae_core.models import ModelConfig, build_model  # noqa: E402
from vae_core.evaluate import decode_mean, reconstruct  # noqa: E402
from vae_core.parallel import replicate, splits  # noqa: E402
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
    # batches the devices do not divide (10, 5) beside ones they do, combined: one mesh for all
    odd = np.concatenate([
        np.asarray(reconstruct(result.model, x_test[:10])).ravel(),
        np.asarray(decode_mean(result.model, encode(result.model, x_test[:10]).mean)).ravel(),
        np.asarray(jax.numpy.concatenate([means, encode(result.model, x_test[:5]).mean])).ravel(),
        np.asarray(log_marginal_likelihood(result.model, x_test[:21], key, k=4, batch_size=2, progress=True))])

    # a training batch the devices do not divide: trained in full on every device, with a warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(SMALL, TrainConfig(epochs=1, batch_size=10, seed=3), x_train, progress=False)
    warned = any("not a multiple of the" in str(w.message) for w in caught)

    # the compiled epoch: is the batch split, are the gradients summed across devices?
    model = build_model(SMALL, jax.random.PRNGKey(0))
    steps = len(x_train) // CFG.batch_size
    tx = make_optimizer(CFG, steps)
    p0 = nnx.state(model)
    p0, o0, data = replicate((p0, tx.init(p0), jax.numpy.asarray(x_train)))
    run_epoch = make_epoch_fn(model, CFG, tx, len(x_train))
    hlo = run_epoch.lower(p0, o0, jax.numpy.int32(0), data, key).compile().as_text()
    n_split = len(jax.local_devices()) if splits(CFG.batch_size) else 1
    sharding = params[0].sharding
    np.savez(out, train_loss=np.asarray(result.history["train_loss"]),
             test_elbo=np.asarray(result.history["test_elbo"]),
             params=np.concatenate([np.ravel(np.asarray(p)) for p in params]),
             logpx=np.asarray(logpx), means=np.asarray(means), odd=odd,
             info=json.dumps({"devices": len(jax.local_devices()), "split": n_split,
                              "splits": {str(n): splits(n) for n in (64, 20, 10, 5)}, "warned_batch_10": warned,
                              "param_devices": len(sharding.device_set),
                              "param_spec": str(getattr(sharding, "spec", None)),
                              "all_reduce": "all-reduce" in hlo,
                              "per_device_batch": f"f32[{CFG.batch_size // n_split},784]" in hlo}))


if __name__ == "__main__":
    measure(sys.argv[1])
