"""vae_core.rng: the same bits as jax.random, for every key kind it takes, and a clean hand-off for the others."""
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_core import rng

KEYS = {"raw PRNGKey(0)": lambda: jax.random.PRNGKey(0), "raw PRNGKey(2**31 + 7)": lambda: jax.random.PRNGKey(2**31 + 7),
        "typed key(42)": lambda: jax.random.key(42)}


def equal(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def test_threefry2x32_matches_the_published_test_vectors():
    # Random123's known-answer tests for threefry2x32 with 20 rounds (kat_vectors)
    cases = [((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
             ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
             ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0))]
    for (k0, k1), (x0, x1), expected in cases:
        out = rng.threefry2x32(*(jnp.asarray([v], jnp.uint32) for v in (k0, k1, x0, x1)))
        assert tuple(int(o[0]) for o in out) == expected


@pytest.mark.parametrize("name", KEYS)
@pytest.mark.parametrize("shape", [(7,), (128, 784), (3, 5, 20)])
def test_bits_uniform_normal_equal_jax_random(name, shape):
    key = KEYS[name]()
    assert equal(rng.bits(key, shape), jax.random.bits(key, shape))
    assert equal(rng.uniform(key, shape), jax.random.uniform(key, shape))
    assert equal(rng.uniform(key, shape, minval=-2.0, maxval=3.0), jax.random.uniform(key, shape, minval=-2.0, maxval=3.0))
    assert equal(rng.normal(key, shape), jax.random.normal(key, shape))


@pytest.mark.parametrize("name", KEYS)
def test_bernoulli_equals_jax_random_for_grey_images_and_scalar_p(name):
    key = KEYS[name]()
    p = jax.random.uniform(jax.random.PRNGKey(9), (64, 784))
    assert equal(rng.bernoulli(key, p), jax.random.bernoulli(key, p))
    assert equal(rng.bernoulli(key, 0.1, (64, 784)), jax.random.bernoulli(key, 0.1, (64, 784)))
    assert equal(rng.bernoulli(key, jnp.float32(0.5), (10,)), jax.random.bernoulli(key, jnp.float32(0.5), (10,)))


def test_equal_under_jit_and_vmap_over_keys():
    keys = jax.random.split(jax.random.PRNGKey(3), 4)
    p = jnp.full((4, 50), 0.3)
    ours = jax.jit(jax.vmap(rng.bernoulli))(keys, p)
    theirs = jax.vmap(jax.random.bernoulli)(keys, p)
    assert equal(ours, theirs)
    assert equal(jax.jit(lambda k: rng.normal(k, (5, 20)))(keys[0]), jax.random.normal(keys[0], (5, 20)))
    typed = jax.random.split(jax.random.key(1), 3)
    assert equal(jax.vmap(lambda k: rng.normal(k, (8,)))(typed), jax.vmap(lambda k: jax.random.normal(k, (8,)))(typed))


def test_other_key_kinds_and_dtypes_go_to_jax_random():
    rbg = jax.random.key(5, impl="rbg")
    assert equal(rng.normal(rbg, (4, 3)), jax.random.normal(rbg, (4, 3)))
    assert equal(rng.bernoulli(rbg, jnp.full((6,), 0.5)), jax.random.bernoulli(rbg, jnp.full((6,), 0.5)))
    key = jax.random.PRNGKey(0)
    assert equal(rng.normal(key, (3,), jnp.bfloat16), jax.random.normal(key, (3,), jnp.bfloat16))
    assert equal(rng.uniform(key, (3,), jnp.float16), jax.random.uniform(key, (3,), jnp.float16))
    batch = jax.random.split(key, 2)                              # a [2, 2] batch of raw keys, outside vmap
    with pytest.raises(Exception) as theirs:
        jax.random.normal(batch, (3,))
    with pytest.raises(type(theirs.value)):
        rng.normal(batch, (3,))


def test_draws_have_the_right_distribution():
    key = jax.random.PRNGKey(11)
    x = np.asarray(rng.bernoulli(key, jnp.full((200_000,), 0.3)))
    assert abs(x.mean() - 0.3) < 0.005                            # s.e. 0.001
    z = np.asarray(rng.normal(key, (200_000,)))
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
    u = np.asarray(rng.uniform(key, (200_000,)))
    assert u.min() >= 0.0 and u.max() < 1.0


def uses_jax_random(f, *args) -> bool:
    """Whether f's traced program calls jax.random's own generator (rather than the unrolled hash)."""
    text = str(jax.make_jaxpr(f)(*args))
    return "random_bits" in text or "threefry2x32" in text


def test_the_unrolled_path_runs_for_default_keys_and_only_for_them():
    raw, typed, rbg = jax.random.PRNGKey(0), jax.random.key(0), jax.random.key(0, impl="rbg")
    p = jnp.full((8, 4), 0.5)
    for key in (raw, typed):
        assert not uses_jax_random(lambda k: rng.bernoulli(k, p), key)
        assert not uses_jax_random(lambda k: rng.normal(k, (3, 2)), key)
        assert not uses_jax_random(lambda k: rng.bits(k, (5,)), key)
    assert uses_jax_random(lambda k: rng.bernoulli(k, p), rbg)
    assert uses_jax_random(lambda k: rng.normal(k, (3,), jnp.float16), raw)
    assert uses_jax_random(lambda k: rng.uniform(k, (3,), minval=jnp.zeros(3)), raw)   # array bounds: jax's
    with jax.threefry_partitionable(False):     # jax's other counter layout: hand over, same numbers as jax
        assert uses_jax_random(lambda k: rng.bernoulli(k, p), raw)
        assert equal(rng.normal(raw, (6, 3)), jax.random.normal(raw, (6, 3)))
    with jax.default_prng_impl("philox4x32"):   # a raw uint32[2] key that another default implementation reads
        other = jax.random.PRNGKey(0)
        assert other.shape == (2,) and uses_jax_random(lambda k: rng.normal(k, (3,)), other)
        assert equal(rng.normal(other, (3,)), jax.random.normal(other, (3,)))


def test_calls_jax_refuses_are_refused_the_same_way():
    key = jax.random.PRNGKey(0)
    p = jnp.full((3, 4), 0.5)
    for shape in [(4,), (1, 4), (2, 4)]:        # shape must hold p's broadcast shape
        with pytest.raises(ValueError):
            jax.random.bernoulli(key, p, shape)
        with pytest.raises(ValueError):
            rng.bernoulli(key, p, shape)
    assert equal(rng.bernoulli(key, 0.3, (2, 3, 4)), jax.random.bernoulli(key, 0.3, (2, 3, 4)))
    assert equal(rng.bernoulli(key, jnp.full((4,), 0.3), (3, 4)), jax.random.bernoulli(key, jnp.full((4,), 0.3), (3, 4)))
    assert equal(rng.normal(key, 5), jax.random.normal(key, 5))          # an int shape, as jax allows
    assert equal(rng.uniform(key), jax.random.uniform(key))              # shape (): one number


def test_x64_mode_keeps_jax_random_dtypes_and_numbers():
    code = textwrap.dedent("""
        import jax, numpy as np
        jax.config.update("jax_enable_x64", True)
        from vae_core import rng
        key = jax.random.PRNGKey(4)
        pairs = [(rng.bits(key, (9,)), jax.random.bits(key, (9,))),
                 (rng.normal(key, (9,)), jax.random.normal(key, (9,))),
                 (rng.normal(key, (9,), np.float32), jax.random.normal(key, (9,), np.float32)),
                 (rng.bernoulli(key, np.full(9, 0.4, np.float32)), jax.random.bernoulli(key, np.full(9, 0.4, np.float32)))]
        assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in pairs), [(a.dtype, b.dtype) for a, b in pairs]
        print("x64 ok", pairs[0][0].dtype, pairs[1][0].dtype)
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "x64 ok uint64 float64" in out.stdout
