"""Data parallelism over the local devices, with JAX's own sharding (no hand-written collectives).

With more than one local device (a Colab TPU has 8, a multi-GPU box several, and a CPU can
pretend to with ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` set before JAX
starts), training and evaluation split every minibatch across a 1-D device mesh whose one
axis is named ``"data"``; parameters, optimizer state and the training images are
replicated on every device. Inside a jitted function :func:`shard_batch` only *annotates*
the batch (``with_sharding_constraint``); XLA's partitioner then runs each device's slice
and inserts the all-reduce that sums the gradients. Random numbers do not change with the
split (JAX's partitionable threefry, the default since JAX 0.5), so a sharded run follows
the one-device run up to the order of floating-point sums.

The mesh uses the largest number of local devices that divides the batch: batch 128 on 8
devices splits 8 ways, the IWAE protocol's batch 20 on 8 devices 5 ways. With one device
(or a batch that no larger count divides) everything is exactly as without this module.

More than one host (a TPU pod slice): call ``jax.distributed.initialize()`` first on every
host. The mesh here is built from ``jax.local_devices()``, so each host would then train
its own replica; the one change a multi-host run needs is to build the mesh from
``jax.devices()`` (all hosts) and feed each host its own slice of the data
(``jax.make_array_from_process_local_data``). The course does not do that: its data and
models fit one host.
"""
from __future__ import annotations

from functools import lru_cache

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

__all__ = ["AXIS", "split_count", "batch_mesh", "shard_batch", "replicate"]

AXIS = "data"


def split_count(batch_size: int, n_devices: int | None = None) -> int:
    """How many local devices a batch of ``batch_size`` is split over: the largest divisor."""
    n = len(jax.local_devices()) if n_devices is None else n_devices
    return max(d for d in range(1, n + 1) if batch_size % d == 0)


@lru_cache(maxsize=None)
def _mesh(n: int) -> Mesh:
    return Mesh(jax.local_devices()[:n], (AXIS,))


def batch_mesh(batch_size: int) -> Mesh | None:
    """The 1-D mesh a batch of ``batch_size`` is split over; None when it stays on one device."""
    n = split_count(batch_size)
    return _mesh(n) if n > 1 else None


def shard_batch(x: jax.Array, axis: int = 0) -> jax.Array:
    """Annotate x's ``axis`` as split across the batch mesh (inside jit); x itself on one device.

    x: [..., batch, ...] with the batch at ``axis``. Returns x (same values, same shape).
    """
    mesh = batch_mesh(x.shape[axis])
    if mesh is None:
        return x
    spec = [None] * x.ndim
    spec[axis] = AXIS
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, P(*spec)))


def replicate(tree, batch_size: int):
    """Put every array of ``tree`` on each device of the batch mesh (unchanged with one device)."""
    mesh = batch_mesh(batch_size)
    if mesh is None:
        return tree
    return jax.device_put(tree, NamedSharding(mesh, P()))
