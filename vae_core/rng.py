"""jax.random's draws, bit for bit, computed in one fused pass.

The engine's hot loops draw many random numbers: dynamic binarization one uniform per
pixel of every training minibatch (128 x 784 a step), log p(x) 5,000 normal codes per
test image. ``jax.random`` makes them with the Threefry-2x32 counter hash (Salmon et al.,
"Parallel random numbers: as easy as 1, 2, 3", SC 2011): every output word is the hash of
its own index under the key. On CPU, jax lowers that hash as a *rolled* loop over its
five key-injection blocks, which writes the whole array out to memory after each block;
on GPU and TPU it is unrolled. Here the same 20 rounds are written out unrolled, so XLA
fuses each draw into a single pass over the array: the same bits as ``jax.random`` (the
tests compare them, raw and typed keys, under jit and vmap), about 9x faster for a whole
epoch's binarization on a 2-core CPU (``benchmarks/rng_speed.py``).

Only keys of jax's default kind take this path: threefry2x32 keys with jax's default
``jax_threefry_partitionable`` counters, float32 draws (uint32 bits), fewer than 2**32
numbers, scalar bounds. Any other call (an 'rbg' key, float64 under x64, a batch of keys,
shapes jax would refuse) is passed on to ``jax.random`` unchanged, so every function here
returns, or raises, exactly what its ``jax.random`` namesake would.
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


def _key_words(key) -> tuple[jax.Array, jax.Array] | None:
    """The key's two uint32 words if jax.random would hash it exactly as :func:`threefry2x32` does, else None."""
    if not isinstance(key, jax.Array) or not jax.config.jax_threefry_partitionable:
        return None
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != () or str(jax.random.key_impl(key)) != "threefry2x32":
            return None
        words = jax.random.key_data(key)
    else:  # a raw uint32[2] key (jax.random.PRNGKey), read with the default implementation
        if (key.shape != (2,) or key.dtype != jnp.uint32 or jax.config.jax_default_prng_impl != "threefry2x32"
                or jax.config.jax_legacy_prng_key != "allow"):
            return None
        words = key
    return words[0], words[1]


def _shape(shape) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)


def _fast(key, shape: tuple[int, ...], dtype) -> bool:
    """True where the unrolled path gives jax.random's float32 numbers: a threefry key, float32, < 2**32 draws."""
    float_dtype = jax.dtypes.canonicalize_dtype(float if dtype is None else dtype)
    return _key_words(key) is not None and float_dtype == jnp.float32 and math.prod(shape) < 2**32


def _threefry_bits(words, shape: tuple[int, ...]) -> jax.Array:
    """uint32 [*shape]: the hash of each element's flat index (high word 0), both output words xor-ed, as jax does."""
    counter = jax.lax.iota(jnp.uint32, math.prod(shape)).reshape(shape)
    b0, b1 = threefry2x32(*words, jnp.zeros_like(counter), counter)
    return b0 ^ b1


def bits(key: jax.Array, shape=(), dtype=None) -> jax.Array:
    """Random bits [*shape], uint32 by default; equal to ``jax.random.bits(key, shape, dtype)``."""
    shape = _shape(shape)
    words = _key_words(key)
    uint_dtype = jax.dtypes.canonicalize_dtype(jnp.uint if dtype is None else dtype)
    if words is None or uint_dtype != jnp.uint32 or math.prod(shape) >= 2**32:
        return jax.random.bits(key, shape, dtype)
    return _threefry_bits(words, shape)


def uniform(key: jax.Array, shape=(), dtype=None, minval=0.0, maxval=1.0) -> jax.Array:
    """Uniform draws in [minval, maxval) [*shape]; equal to ``jax.random.uniform``."""
    shape = _shape(shape)
    if not _fast(key, shape, dtype) or np.ndim(minval) or np.ndim(maxval):
        return jax.random.uniform(key, shape, dtype, minval, maxval)
    return _uniform_float32(key, shape, jnp.float32(minval), jnp.float32(maxval))


@partial(jax.jit, static_argnums=1)  # jitted as jax.random's is: XLA may fuse the scaling into one FMA
def _uniform_float32(key, shape, minval, maxval):
    # 23 random mantissa bits under the exponent of 1.0 give a float in [1, 2); minus 1: [0, 1)
    mantissa = _threefry_bits(_key_words(key), shape) >> jnp.uint32(9)
    one_to_two = jax.lax.bitcast_convert_type(mantissa | jnp.uint32(0x3F800000), jnp.float32)
    return jnp.maximum(minval, (one_to_two - jnp.float32(1.0)) * (maxval - minval) + minval)


def bernoulli(key: jax.Array, p=np.float32(0.5), shape=None, mode: str = "low") -> jax.Array:
    """Booleans, True with probability p [*shape] (default p's shape); equal to ``jax.random.bernoulli``."""
    p_dtype = jnp.result_type(p)
    fast_shape = np.shape(p) if shape is None else _shape(shape)
    if (mode != "low" or not jnp.issubdtype(p_dtype, jnp.floating) or not _fast(key, fast_shape, p_dtype)
            or jnp.broadcast_shapes(fast_shape, np.shape(p)) != fast_shape):
        return jax.random.bernoulli(key, p, shape, mode)   # it also raises what jax raises
    return _bernoulli_float32(key, jnp.asarray(p, jnp.float32), fast_shape)


@partial(jax.jit, static_argnums=2)
def _bernoulli_float32(key, p, shape):
    return uniform(key, shape, jnp.float32) < p


def normal(key: jax.Array, shape=(), dtype=None) -> jax.Array:
    """Standard normal draws [*shape]; equal to ``jax.random.normal`` (sqrt(2) erfinv(u), u ~ U(-1, 1))."""
    shape = _shape(shape)
    if not _fast(key, shape, dtype):
        return jax.random.normal(key, shape, dtype)
    return _normal_float32(key, shape)


@partial(jax.jit, static_argnums=1)
def _normal_float32(key, shape):
    lowest = np.nextafter(np.float32(-1.0), np.float32(0.0))  # u > -1, so erfinv(u) is finite
    return np.float32(np.sqrt(2.0)) * jax.lax.erf_inv(uniform(key, shape, jnp.float32, lowest, 1.0))


__all__ = ["threefry2x32", "bits", "uniform", "bernoulli", "normal"]
