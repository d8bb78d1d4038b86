"""Model shapes, initialisation, configuration checks and parameters <-> arrays."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vae_core.models import (ModelConfig, Posterior, build_model, model_from_arrays, n_offdiag, params_to_arrays,
                             sample_posterior, scale_tril)


@pytest.mark.parametrize("cfg, side", [
    (ModelConfig(latent_dim=20, hidden=(400,)), 28),
    (ModelConfig(latent_dim=50, hidden=(200, 200), activation="tanh"), 28),
    (ModelConfig(latent_dim=10, hidden=(64,), architecture="conv", image_shape=(64, 64)), 64),
    (ModelConfig(latent_dim=10, hidden=(64,), architecture="conv", image_shape=(32, 32)), 32),
    (ModelConfig(latent_dim=3, hidden=(32,), posterior="full"), 28),
])
def test_forward_shapes(cfg, side):
    model = build_model(cfg, jax.random.PRNGKey(0))
    x = jnp.zeros((5, side * side))
    out, z, post = model(x, jax.random.PRNGKey(1))
    assert out.shape == (5, side * side) and z.shape == (5, cfg.latent_dim)
    assert post.mean.shape == post.log_diag.shape == (5, cfg.latent_dim)
    if cfg.posterior == "full":
        assert post.offdiag.shape == (5, cfg.latent_dim * (cfg.latent_dim - 1) // 2)
    else:
        assert post.offdiag is None
    assert model.decoder_output(z).shape == (5, side * side)
    assert model.encode(x).mean.shape == (5, cfg.latent_dim)


def test_same_seed_same_parameters_and_int_or_key_seeds_agree():
    cfg = ModelConfig(latent_dim=2, hidden=(8,))
    a = params_to_arrays(build_model(cfg, 0))
    b = params_to_arrays(build_model(cfg, jax.random.PRNGKey(0)))
    c = params_to_arrays(build_model(cfg, 1))
    assert sorted(a) == sorted(b) == sorted(c)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["encoder/hidden/0/kernel"], c["encoder/hidden/0/kernel"])


def test_output_bias_starts_at_data_mean_logit():
    cfg = ModelConfig(latent_dim=2, hidden=(8,))
    mean = np.full(784, 0.25, np.float32)
    mean[:10] = 0.5
    bias = params_to_arrays(build_model(cfg, 0, data_mean=mean))["decoder/output/bias"]
    assert np.allclose(bias[10:], np.log(0.25 / 0.75), atol=1e-5) and np.allclose(bias[:10], 0.0, atol=1e-5)
    # a conv decoder has one output channel: one bias, the mean of the logits
    conv = ModelConfig(latent_dim=2, hidden=(8,), architecture="conv", image_shape=(32, 32),
                       conv_channels=(2, 2, 2, 2))
    cbias = params_to_arrays(build_model(conv, 0, data_mean=np.full(1024, 0.25, np.float32)))["decoder/output/bias"]
    assert cbias.shape == (1,) and np.allclose(cbias, np.log(0.25 / 0.75), atol=1e-5)
    # a Gaussian decoder keeps its default bias
    g = ModelConfig(latent_dim=2, hidden=(8,), likelihood="gaussian")
    assert np.allclose(params_to_arrays(build_model(g, 0, data_mean=mean))["decoder/output/bias"], 0.0)


def test_observation_noise_fixed_or_learned():
    fixed = build_model(ModelConfig(latent_dim=2, hidden=(8,), likelihood="gaussian", obs_std=0.5), 0)
    assert np.allclose(fixed.obs_log_std(), np.log(0.5)) and fixed.obs_log_std().shape == (784,)
    assert "log_std" not in params_to_arrays(fixed)
    learned = build_model(ModelConfig(latent_dim=2, hidden=(8,), likelihood="gaussian", obs_std=None), 0)
    assert params_to_arrays(learned)["log_std"].shape == (784,)
    assert np.allclose(learned.obs_log_std(), 0.0)


def test_plain_autoencoder_codes_are_the_encoder_means():
    model = build_model(ModelConfig(latent_dim=3, hidden=(16,), deterministic=True), 0)
    x = jnp.full((4, 784), 0.5)
    _, z1, post = model(x, jax.random.PRNGKey(1))
    _, z2, _ = model(x, jax.random.PRNGKey(2))
    assert np.array_equal(z1, post.mean) and np.array_equal(z1, z2)


def test_full_covariance_samples_have_the_right_covariance():
    cfg = ModelConfig(latent_dim=3, hidden=(), posterior="full", image_shape=(1, 4))
    model = build_model(cfg, jax.random.PRNGKey(0))
    post = model.encode(jnp.ones((1, 4)) * 0.5)
    z = sample_posterior(jax.random.PRNGKey(1), post, 100_000)[:, 0]
    L = scale_tril(post)[0]
    assert np.allclose(np.cov(z.T), L @ L.T, atol=0.03)
    assert np.allclose(z.mean(0), post.mean[0], atol=0.03)


def test_scale_tril_places_the_offdiagonal_entries_row_by_row():
    assert [n_offdiag(d) for d in (1, 2, 3, 4)] == [0, 1, 3, 6]
    post = Posterior(jnp.zeros((1, 3)), jnp.log(jnp.array([[1.0, 4.0, 9.0]])), jnp.array([[0.5, -1.0, 2.0]]))
    expected = np.array([[1.0, 0.0, 0.0], [0.5, 2.0, 0.0], [-1.0, 2.0, 3.0]])
    assert np.allclose(scale_tril(post)[0], expected, atol=1e-6)


def test_diagonal_samples_have_the_posterior_variance():
    cfg = ModelConfig(latent_dim=3, hidden=(8,), image_shape=(1, 4))
    post = build_model(cfg, 0).encode(jnp.full((2, 4), 0.5))
    assert sample_posterior(jax.random.PRNGKey(0), post).shape == (2, 3)
    z = sample_posterior(jax.random.PRNGKey(1), post, 100_000)
    assert z.shape == (100_000, 2, 3)
    assert np.allclose(z.var(0), np.exp(post.log_diag), rtol=0.03)
    assert np.allclose(scale_tril(post)[0], np.diag(np.exp(0.5 * post.log_diag[0])), atol=1e-6)


@pytest.mark.parametrize("cfg", [
    ModelConfig(latent_dim=3, hidden=(16, 8), posterior="full"),
    ModelConfig(latent_dim=2, hidden=(8,), likelihood="gaussian", obs_std=None),
    ModelConfig(latent_dim=2, hidden=(8,), architecture="conv", image_shape=(32, 32), conv_channels=(2, 2, 2, 2)),
])
def test_params_to_arrays_round_trip(cfg):
    model = build_model(cfg, 3)
    arrays = params_to_arrays(model)
    assert all(isinstance(a, np.ndarray) for a in arrays.values())
    assert sum(a.size for a in arrays.values()) == sum(
        a.size for a in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param)))
    back = model_from_arrays(cfg, arrays)
    again = params_to_arrays(back)
    assert sorted(again) == sorted(arrays) and all(np.array_equal(again[k], arrays[k]) for k in arrays)
    x = jnp.full((2, cfg.input_dim), 0.5)
    assert np.array_equal(back(x, jax.random.PRNGKey(0))[0], model(x, jax.random.PRNGKey(0))[0])


def test_model_from_arrays_names_the_mismatch():
    cfg = ModelConfig(latent_dim=2, hidden=(8,))
    arrays = params_to_arrays(build_model(cfg, 0))
    short = {k: v for k, v in arrays.items() if k != "decoder/output/bias"}
    with pytest.raises(ValueError, match="missing parameters.*decoder/output/bias"):
        model_from_arrays(cfg, short)
    with pytest.raises(ValueError, match="unexpected.*log_std"):
        model_from_arrays(cfg, {**arrays, "log_std": np.zeros(784, np.float32)})
    with pytest.raises(ValueError, match=r"encoder/hidden/0/kernel has shape \(784, 9\)"):
        model_from_arrays(cfg, {**arrays, "encoder/hidden/0/kernel": np.zeros((784, 9), np.float32)})


@pytest.mark.parametrize("kwargs, match", [
    ({"latent_dim": 0}, "latent_dim"), ({"activation": "gelu"}, "activation"),
    ({"likelihood": "poisson"}, "likelihood"), ({"architecture": "conv"}, "divisible by 16"),
    ({"obs_std": -1.0}, "obs_std"), ({"posterior": "flow"}, "posterior"),
])
def test_bad_config_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kwargs)


def test_config_roundtrip():
    cfg = ModelConfig(latent_dim=7, hidden=[30, 20])
    assert cfg.hidden == (30, 20) and ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.input_dim == 784
    assert ModelConfig(image_shape=[32, 32], architecture="conv").input_dim == 1024
