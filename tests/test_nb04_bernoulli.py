"""Notebook 04's analysis helpers: KL ordering, inverse-CDF grid, corruption, caches, tables."""
from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from scipy.stats import norm

from vae_core import analysis
from vae_core.analysis import (ModelTracker, flip_noise, format_table, log_likelihood_cached, mask_patches,
                               mean_abs_error, normal_grid, order_by_kl, prior_samples, reconstruct)
from vae_core.evaluate import decode, encode, log_likelihood
from vae_core.models import ModelConfig, init_params
from vae_core.train import TrainConfig


@pytest.fixture(scope="module")
def small():
    return init_params(ModelConfig(latent_dim=3, hidden=(16,)), jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def binary_images():
    rng = np.random.default_rng(0)
    return (rng.random((6, 784)) < 0.3).astype(np.float32)


def test_order_by_kl_largest_first_and_stable():
    assert order_by_kl([0.1, 3.0, 0.0, 3.0, 1.5]).tolist() == [1, 3, 4, 0, 2]
    with pytest.raises(ValueError, match="1-d"):
        order_by_kl(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        order_by_kl([1.0, np.nan])


def test_normal_grid_uses_inverse_cdf_and_plot_orientation():
    codes, values = normal_grid(5, 0.05, 0.95)
    assert codes.shape == (25, 2) and values.shape == (5,)
    np.testing.assert_allclose(values, norm.ppf(np.linspace(0.05, 0.95, 5)), rtol=1e-6)
    np.testing.assert_allclose(values[2], 0.0, atol=1e-6)  # median in the middle
    np.testing.assert_allclose(values[0], -1.6448536, rtol=1e-5)
    # top-left: smallest z1, largest z2; bottom-right: largest z1, smallest z2
    np.testing.assert_allclose(codes[0], [values[0], values[-1]], rtol=1e-6)
    np.testing.assert_allclose(codes[-1], [values[-1], values[0]], rtol=1e-6)
    # along a row only z1 changes
    assert np.all(codes[:5, 1] == codes[0, 1]) and np.all(np.diff(codes[:5, 0]) > 0)
    with pytest.raises(ValueError):
        normal_grid(1)
    with pytest.raises(ValueError):
        normal_grid(4, 0.0, 0.9)


def test_prior_samples_are_decoded_means_and_binary_draws(small):
    model, params = small
    means, draws = prior_samples(model, params, jax.random.PRNGKey(1), 7)
    assert means.shape == draws.shape == (7, 784)
    assert np.all((means > 0) & (means < 1))
    assert set(np.unique(draws)) <= {0.0, 1.0}
    again, _ = prior_samples(model, params, jax.random.PRNGKey(1), 7)
    np.testing.assert_array_equal(means, again)
    other, _ = prior_samples(model, params, jax.random.PRNGKey(2), 7)
    assert not np.allclose(means, other)


def test_reconstruct_decodes_posterior_mean(small, binary_images):
    model, params = small
    rec = reconstruct(model, params, binary_images)
    expect = decode(model, params, encode(model, params, binary_images).mean)
    np.testing.assert_allclose(rec, np.asarray(expect), rtol=1e-6)


def test_flip_noise_flips_about_p_of_pixels(binary_images):
    noisy = flip_noise(jax.random.PRNGKey(0), np.tile(binary_images, (20, 1)), 0.1)
    frac = np.mean(noisy != np.tile(binary_images, (20, 1)))
    assert 0.09 < frac < 0.11
    assert set(np.unique(noisy)) <= {0.0, 1.0}
    np.testing.assert_array_equal(flip_noise(jax.random.PRNGKey(0), binary_images, 0.0), binary_images)
    np.testing.assert_array_equal(flip_noise(jax.random.PRNGKey(0), binary_images, 1.0), 1 - binary_images)
    with pytest.raises(ValueError):
        flip_noise(jax.random.PRNGKey(0), binary_images, 1.5)


def test_mask_patches_blanks_one_square_inside_margin():
    x = np.ones((50, 784), np.float32)
    masked, mask = mask_patches(jax.random.PRNGKey(3), x, 8, margin=4)
    assert masked.shape == mask.shape == (50, 784)
    assert np.all(mask.sum(1) == 64)
    np.testing.assert_array_equal(masked, 1 - mask)
    m = mask.reshape(50, 28, 28)
    assert np.all(m[:, :4] == 0) and np.all(m[:, -4:] == 0) and np.all(m[:, :, :4] == 0) and np.all(m[:, :, -4:] == 0)
    rows = m.any(2).argmax(1)
    assert len(np.unique(rows)) > 1  # places differ between images
    with pytest.raises(ValueError, match="does not fit"):
        mask_patches(jax.random.PRNGKey(0), x, 25)


def test_mean_abs_error():
    a = np.zeros((2, 4))
    b = np.array([[1, 0, 0, 0], [1, 1, 1, 1]])
    np.testing.assert_allclose(mean_abs_error(a, b), [0.25, 1.0])
    with pytest.raises(ValueError, match="shapes"):
        mean_abs_error(a, b[:, :3])
    mask = np.array([[1, 1, 0, 0], [0, 0, 0, 0]])
    got = mean_abs_error(a, b, mask)
    assert got[0] == 0.5 and np.isnan(got[1])
    with pytest.raises(ValueError, match="mask"):
        mean_abs_error(a, b, mask[:, :3])


def test_log_likelihood_cached_matches_and_reuses(small, binary_images, tmp_path, monkeypatch):
    model, params = small
    key = jax.random.PRNGKey(5)
    ll = log_likelihood_cached(model, params, binary_images, key, k=20, k_chunk=10, directory=tmp_path)
    direct = np.asarray(log_likelihood(model, params, binary_images, key, k=20, k_chunk=10))
    np.testing.assert_allclose(ll, direct, rtol=1e-6)
    files = list((tmp_path / "loglik").glob("*.npy"))
    assert len(files) == 1
    # a second call reads the file instead of computing
    monkeypatch.setattr(analysis, "log_likelihood", lambda *a, **k: pytest.fail("recomputed"))
    np.testing.assert_array_equal(log_likelihood_cached(model, params, binary_images, key, k=20, k_chunk=10,
                                                        directory=tmp_path), ll)
    monkeypatch.undo()
    # a different k or other parameters make a new entry
    log_likelihood_cached(model, params, binary_images, key, k=10, directory=tmp_path)
    params2 = jax.tree_util.tree_map(lambda a: a + 0.01, params)
    log_likelihood_cached(model, params2, binary_images, key, k=10, directory=tmp_path)
    assert len(list((tmp_path / "loglik").glob("*.npy"))) == 3


def test_model_tracker_counts_and_logs_cold_then_cached(tmp_path, monkeypatch):
    monkeypatch.delenv("VAE_SMOKE", raising=False)
    rng = np.random.default_rng(0)
    x = rng.random((64, 784), dtype=np.float32)
    mcfg, tcfg = ModelConfig(latent_dim=2, hidden=(8,)), TrainConfig(epochs=1, batch_size=32)
    log = tmp_path / "times.json"
    t1 = ModelTracker("nb", directory=tmp_path / "models", log_path=log)
    r1 = t1.get("tiny", mcfg, tcfg, x, progress=False)
    s1 = t1.finish(now=t1.start + 12.0)
    assert (s1["kind"], s1["trained"], s1["loaded"]) == ("cold", 1, 0)
    assert s1["log"] == {"cold": 12.0}
    t2 = ModelTracker("nb", directory=tmp_path / "models", log_path=log)
    r2 = t2.get("tiny", mcfg, tcfg, x, progress=False)
    s2 = t2.finish(now=t2.start + 3.0)
    assert (s2["kind"], s2["trained"], s2["loaded"]) == ("cached", 0, 1)
    assert s2["log"] == {"cold": 12.0, "cached": 3.0}
    assert json.loads(log.read_text()) == {"nb:full": {"cold": 12.0, "cached": 3.0}}
    np.testing.assert_array_equal(r1.params["params"]["decoder"]["output"]["bias"],
                                  r2.params["params"]["decoder"]["output"]["bias"])
    # a run that both trains and loads is 'partial' and not logged
    t3 = ModelTracker("nb", directory=tmp_path / "models", log_path=log)
    t3.get("tiny", mcfg, tcfg, x, progress=False)
    t3.get("tiny2", mcfg, TrainConfig(epochs=1, batch_size=16), x, progress=False)
    s3 = t3.finish(now=t3.start + 99.0)
    assert s3["kind"] == "partial" and s3["log"] == {"cold": 12.0, "cached": 3.0}


def test_format_table_aligns_columns():
    rows = [{"L": 2, "elbo": -140.123}, {"L": 50, "elbo": -99.5}]
    text = format_table(rows, [("L", "latent", "d"), ("elbo", "ELBO", ".1f")])
    lines = text.splitlines()
    assert lines[0] == "latent    ELBO"
    assert lines[2] == "     2  -140.1"
    assert lines[3] == "    50   -99.5"
    assert len({len(line) for line in lines}) == 1
    text = format_table([{"run": "a", "x": 1.0}, {"run": "bbb", "x": 10.0}], [("run", "run", ""), ("x", "x", ".1f")])
    assert text.splitlines()[2:] == ["a     1.0", "bbb  10.0"]
