"""Data parallelism over the local devices, with JAX's own sharding (no hand-written collectives).

With more than one local device (a multi-GPU box, a TPU v2-8/v3-8 runtime with 8 cores,
or a CPU that pretends with ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` set
before JAX starts), training and evaluation split every minibatch across one 1-D mesh over
**all** local devices, whose axis is named ``"data"``; parameters, optimizer state and the
training images are replicated on every device. Inside a jitted function
:func:`shard_batch` only *annotates* the batch (``with_sharding_constraint``); XLA's
partitioner then runs each device's slice and inserts the all-reduce that sums the
gradients. Random numbers do not change with the split (JAX's partitionable threefry, the
default since JAX 0.5), so a sharded run follows the one-device run up to the order of
floating-point sums.

Every array lives on that one mesh (or, with one device, where JAX puts it), so results of
different calls can always be combined. A batch whose size the device count does not
divide is not split: each device computes all of it (same numbers, no speed-up), and
:func:`vae_core.train.train` warns when that happens to its minibatches. With one device
everything is exactly as without this module.

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

__all__ = ["AXIS", "local_mesh", "splits", "shard_batch", "replicate"]

AXIS = "data"


@lru_cache(maxsize=None)
def _mesh(n: int) -> Mesh:
    return Mesh(jax.local_devices()[:n], (AXIS,))


def local_mesh() -> Mesh | None:
    """The 1-D mesh over all local devices; None when there is only one."""
    n = len(jax.local_devices())
    return _mesh(n) if n > 1 else None


def splits(batch_size: int) -> bool:
    """Whether a batch of ``batch_size`` is split across the local devices (several, dividing it)."""
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    mesh = local_mesh()
    return mesh is not None and batch_size % mesh.size == 0


def shard_batch(x: jax.Array, axis: int = 0) -> jax.Array:
    """Annotate x's ``axis`` as split across the local mesh (inside jit); unchanged when it is not split.

    x: [..., batch, ...] with the batch at ``axis``. Returns x (same values, same shape).
    """
    if not splits(x.shape[axis]):
        return x
    spec = [None] * x.ndim
    spec[axis] = AXIS
    return jax.lax.with_sharding_constraint(x, NamedSharding(local_mesh(), P(*spec)))


def replicate(tree):
    """Put every array of ``tree`` on each local device (unchanged with one device)."""
    mesh = local_mesh()
    if mesh is None:
        return tree
    return jax.device_put(tree, NamedSharding(mesh, P()))
