"""jax.random's draws, bit for bit, computed in one fused pass.

The engine's hot loops draw many random numbers: dynamic binarization one uniform per
pixel of every training minibatch (128 x 784 a step), log p(x) 5,000 normal codes per
test image. ``jax.random`` makes them with the Threefry-2x32 counter hash (Salmon et al.,
"Parallel random numbers: as easy as 1, 2, 3", SC 2011): every output word is the hash of
its own index under the key. On CPU, jax lowers that hash as a *rolled* loop over its
five key-injection blocks, which writes the whole array out to memory after each block;
on GPU and TPU it is unrolled. Here the same 20 rounds are written out unrolled, so XLA
fuses each draw into a single pass over the array: the same bits as ``jax.random`` (the
tests compare them, raw and typed keys, under jit and vmap), 7.6x faster for a whole
epoch's binarization on a 2-core CPU (``benchmarks/rng_speed.py``).

Only keys of jax's default kind take this path: threefry2x32 keys with jax's default
``jax_threefry_partitionable`` counters, float32 draws, fewer than 2**32 numbers. Any
other key or dtype (an 'rbg' key, float64 under x64, a batch of keys) is passed on to
``jax.random`` unchanged, so every function here returns exactly what its ``jax.random``
namesake would.
"""
from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

# Threefry-2x32's rotation constants (two sets of four, alternating) and key-schedule parity.
ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
KEY_PARITY = 0x1BD11BDA


def threefry2x32(k0: jax.Array, k1: jax.Array, x0: jax.Array, x1: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The Threefry-2x32 hash (20 rounds) of counter words x0, x1 [...] under key words k0, k1 [].

    All uint32; returns two uint32 arrays shaped like x0. Same result as jax's
    ``threefry_2x32``; written unrolled so that XLA emits one elementwise loop.
    """
    ks = (k0, k1, k0 ^ k1 ^ jnp.uint32(KEY_PARITY))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for block in range(5):                      # 5 blocks of 4 rounds, a key injection after each
        for r in ROTATIONS[block % 2]:
            x0 = x0 + x1
            x1 = ((x1 << jnp.uint32(r)) | (x1 >> jnp.uint32(32 - r))) ^ x0
        x0 = x0 + ks[(block + 1) % 3]
        x1 = x1 + ks[(block + 2) % 3] + jnp.uint32(block + 1)
    return x0, x1


def _key_words(key: jax.Array):
    """The key's two uint32 words if it is a single threefry key jax would hash this way, else None."""
    if not jax.config.jax_threefry_partitionable:
        return None
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != () or str(jax.random.key_impl(key)) != "threefry2x32":
            return None
        words = jax.random.key_data(key)
    else:  # a raw uint32[2] key (jax.random.PRNGKey), read with the default implementation
        if key.shape != (2,) or key.dtype != jnp.uint32 or jax.config.jax_default_prng_impl != "threefry2x32":
            return None
        words = key
    return words[0], words[1]


def _fast(key: jax.Array, shape, dtype) -> bool:
    return (_key_words(key) is not None and jnp.dtype(dtype) == jnp.float32
            and math.prod(shape) < 2**32)


def bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """uint32 random bits [*shape]; equal to ``jax.random.bits(key, shape)``."""
    shape = tuple(int(d) for d in shape)
    words = _key_words(key)
    if words is None or math.prod(shape) >= 2**32:
        return jax.random.bits(key, shape)
    counter = jax.lax.iota(jnp.uint32, math.prod(shape)).reshape(shape)  # each word's own index
    b0, b1 = threefry2x32(*words, jnp.zeros_like(counter), counter)
    return b0 ^ b1


def uniform(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32, minval=0.0, maxval=1.0) -> jax.Array:
    """Uniform draws in [minval, maxval) [*shape]; equal to ``jax.random.uniform``."""
    shape = tuple(int(d) for d in shape)
    if not _fast(key, shape, dtype):
        return jax.random.uniform(key, shape, dtype, minval, maxval)
    return _uniform_float32(key, shape, jnp.float32(minval), jnp.float32(maxval))


@partial(jax.jit, static_argnums=1)  # jitted as jax.random's is: XLA may fuse the scaling into one FMA
def _uniform_float32(key, shape, minval, maxval):
    # 23 random mantissa bits under the exponent of 1.0 give a float in [1, 2); minus 1: [0, 1)
    one_to_two = jax.lax.bitcast_convert_type((bits(key, shape) >> jnp.uint32(9)) | jnp.uint32(0x3F800000),
                                              jnp.float32)
    return jnp.maximum(minval, (one_to_two - jnp.float32(1.0)) * (maxval - minval) + minval)


def bernoulli(key: jax.Array, p, shape: tuple[int, ...] | None = None) -> jax.Array:
    """Booleans, True with probability p [*shape] (default p's shape); equal to ``jax.random.bernoulli``."""
    p = jnp.asarray(p)
    shape = p.shape if shape is None else tuple(int(d) for d in shape)
    if not jnp.issubdtype(p.dtype, jnp.floating) or not _fast(key, shape, p.dtype):
        return jax.random.bernoulli(key, p, shape)
    return _bernoulli_float32(key, p, shape)


@partial(jax.jit, static_argnums=2)
def _bernoulli_float32(key, p, shape):
    return uniform(key, shape, jnp.float32) < p


def normal(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """Standard normal draws [*shape]; equal to ``jax.random.normal`` (sqrt(2) erfinv(u), u ~ U(-1, 1))."""
    shape = tuple(int(d) for d in shape)
    if not _fast(key, shape, dtype):
        return jax.random.normal(key, shape, dtype)
    return _normal_float32(key, shape)


@partial(jax.jit, static_argnums=1)
def _normal_float32(key, shape):
    lowest = np.nextafter(np.float32(-1.0), np.float32(0.0))  # u > -1, so erfinv(u) is finite
    return np.float32(np.sqrt(2.0)) * jax.lax.erf_inv(uniform(key, shape, jnp.float32, lowest, 1.0))


__all__ = ["threefry2x32", "bits", "uniform", "bernoulli", "normal"]
