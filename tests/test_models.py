"""Model shapes and configuration checks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_core.models import VAE, ModelConfig, init_params, sample_posterior, scale_tril


@pytest.mark.parametrize("cfg, side", [
    (ModelConfig(latent_dim=20, hidden=(400,)), 28),
    (ModelConfig(latent_dim=50, hidden=(200, 200), activation="tanh"), 28),
    (ModelConfig(latent_dim=10, hidden=(64,), architecture="conv", image_shape=(64, 64)), 64),
    (ModelConfig(latent_dim=10, hidden=(64,), architecture="conv", image_shape=(32, 32)), 32),
    (ModelConfig(latent_dim=3, hidden=(32,), posterior="full"), 28),
])
def test_forward_shapes(cfg, side):
    model, params = init_params(cfg, jax.random.PRNGKey(0))
    x = jnp.zeros((5, side * side))
    out, z, post = model.apply(params, x, jax.random.PRNGKey(1))
    assert out.shape == (5, side * side) and z.shape == (5, cfg.latent_dim)
    assert post.mean.shape == post.logvar.shape == (5, cfg.latent_dim)
    if cfg.posterior == "full":
        assert post.offdiag.shape == (5, cfg.latent_dim * (cfg.latent_dim - 1) // 2)
    assert model.apply(params, z, method=VAE.decode).shape == (5, side * side)


def test_output_bias_starts_at_data_mean_logit():
    cfg = ModelConfig(latent_dim=2, hidden=(8,))
    mean = np.full(784, 0.25, np.float32)
    _, params = init_params(cfg, jax.random.PRNGKey(0), data_mean=mean)
    assert np.allclose(params["params"]["decoder"]["output"]["bias"], np.log(0.25 / 0.75), atol=1e-5)


def test_full_covariance_samples_have_the_right_covariance():
    cfg = ModelConfig(latent_dim=3, hidden=(), posterior="full", image_shape=(1, 4))
    model, params = init_params(cfg, jax.random.PRNGKey(0))
    post = model.apply(params, jnp.ones((1, 4)) * 0.5, method=VAE.encode)
    z = sample_posterior(jax.random.PRNGKey(1), post, 100_000)[:, 0]
    L = scale_tril(post)[0]
    assert np.allclose(np.cov(z.T), L @ L.T, atol=0.03)
    assert np.allclose(z.mean(0), post.mean[0], atol=0.03)


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
