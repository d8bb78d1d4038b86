"""Data parallelism (vae_core.parallel): a sharded run follows the one-device run.

The multi-device runs happen in subprocesses (tests/sharded_run.py) with
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` set before JAX starts, for N = 2
and 8 CPU devices; the one-device reference runs the same script in this process.
Tolerances, measured on this CPU: the largest differences seen were 6e-8 in a parameter
and 1.2e-4 nats in a test ELBO of about -580, i.e. the order of float32 sums; the tests
allow 1e-5 absolute on parameters and 1e-6 relative on nats.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from vae_core.parallel import local_mesh, replicate, shard_batch, splits

ROOT = Path(__file__).resolve().parent.parent


def test_a_batch_size_below_one_is_refused():
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        splits(0)


@pytest.mark.skipif(len(jax.local_devices()) > 1, reason="checks the one-device path; this machine has several")
def test_one_device_changes_nothing():
    x = jax.numpy.arange(12.0).reshape(4, 3)
    assert local_mesh() is None and not any(splits(n) for n in (1, 4, 64, 128))
    assert shard_batch(x) is x and replicate(x) is x
    assert jax.jit(shard_batch)(x).sharding.is_fully_replicated


def load(out: Path) -> dict:
    data = dict(np.load(out))
    data["info"] = json.loads(str(data["info"]))
    return data


def run(devices: int, out: Path) -> dict:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
           "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "sharded_run.py"), str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return load(out)


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    """The reference: the same script on one CPU device (in this process when that is what it has)."""
    out = tmp_path_factory.mktemp("sharded") / "one.npz"
    if jax.default_backend() != "cpu" or len(jax.local_devices()) > 1:
        return run(1, out)  # an accelerator or several devices here: the reference runs on one CPU device
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from sharded_run import measure
    finally:
        sys.path.remove(str(ROOT / "tests"))
    measure(str(out))
    return load(out)


@pytest.mark.slow
@pytest.mark.parametrize("devices", [2, 8])
def test_sharded_training_and_evaluation_match_one_device(devices, one_device, tmp_path):
    got = run(devices, tmp_path / f"{devices}.npz")
    info = got["info"]
    assert info["devices"] == devices and info["split"] == devices, info  # batch 64: split on 2 and 8
    assert info["splits"] == {str(n): n % devices == 0 for n in (64, 20, 10, 5)}, info
    assert info["warned_batch_10"] == (10 % devices != 0), "train warns when its batch is not split"
    # the parameters live, whole, on every device; the batch is split and the gradients summed
    assert info["param_devices"] == devices and info["param_spec"] == "P()", info
    assert info["all_reduce"] and info["per_device_batch"], info
    assert one_device["info"]["param_devices"] == 1 and not one_device["info"]["all_reduce"]
    assert not one_device["info"]["warned_batch_10"]
    np.testing.assert_allclose(got["train_loss"], one_device["train_loss"], rtol=1e-6)
    np.testing.assert_allclose(got["test_elbo"], one_device["test_elbo"], rtol=1e-6)
    np.testing.assert_allclose(got["params"], one_device["params"], atol=1e-5)
    np.testing.assert_allclose(got["logpx"], one_device["logpx"], rtol=1e-6)
    np.testing.assert_allclose(got["means"], one_device["means"], atol=1e-5)
    # batches of 10, 5 and 2 (not split over 8 devices) combined with split ones: same numbers
    np.testing.assert_allclose(got["odd"], one_device["odd"], rtol=1e-5, atol=1e-5)
