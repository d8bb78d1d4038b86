"""Tests of vae_core.toy: the linear-Gaussian model's exact log p(x), posterior and ELBO against
brute-force numbers, and ``as_vae`` against the engine's own encoder and bounds."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from vae_core.models import scale_tril
from vae_core.objectives import elbo_terms, log_importance_weights
from vae_core.toy import LinearGaussian, gaussian_kl

D, L = 5, 3


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    model = LinearGaussian(rng.normal(size=(D, L)), rng.normal(size=D), 0.7)
    x = model.sample(rng, 6)
    return model, x


def _random_q(rng, n):
    """Random means [n, L] and a random SPD covariance [L, L]."""
    A = rng.normal(size=(L, L))
    return rng.normal(size=(n, L)), A @ A.T / L + 0.1 * np.eye(L)


def test_log_evidence_matches_scipy_multivariate_normal(toy):
    model, x = toy
    cov = model.W @ model.W.T + model.sigma**2 * np.eye(D)
    ref = stats.multivariate_normal(model.b, cov).logpdf(x)
    np.testing.assert_allclose(model.log_evidence(x), ref, rtol=1e-5, atol=1e-4)


def test_posterior_matches_gaussian_conditioning(toy):
    model, x = toy
    # joint of (z, x) is Gaussian: cov_zz = I, cov_zx = W^T, cov_xx = W W^T + sigma^2 I
    cov_xx = model.W @ model.W.T + model.sigma**2 * np.eye(D)
    gain = model.W.T @ np.linalg.inv(cov_xx)                       # [L, D]
    mean_ref = (x - model.b) @ gain.T
    cov_ref = np.eye(L) - gain @ model.W
    mean, cov = model.posterior(x)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(cov, cov_ref, rtol=1e-4, atol=1e-5)


def test_posterior_is_bayes_rule_at_random_points(toy):
    # log p(z|x) = log p(x|z) + log p(z) - log p(x), all from scipy
    model, x = toy
    rng = np.random.default_rng(1)
    mean, cov = model.posterior(x[:1])
    for z in rng.normal(size=(4, L)):
        lik = stats.multivariate_normal(model.W @ z + model.b, model.sigma**2 * np.eye(D)).logpdf(x[0])
        bayes = lik + stats.multivariate_normal(np.zeros(L), np.eye(L)).logpdf(z) - float(model.log_evidence(x[:1])[0])
        ref = stats.multivariate_normal(np.asarray(mean[0]), np.asarray(cov)).logpdf(z)
        assert bayes == pytest.approx(ref, abs=1e-3)


def test_elbo_plus_kl_to_posterior_is_log_evidence_for_random_q(toy):
    model, x = toy
    rng = np.random.default_rng(2)
    logp = np.asarray(model.log_evidence(x))
    for _ in range(5):
        q_mean, q_cov = _random_q(rng, len(x))
        elbo = np.asarray(model.elbo(x, q_mean, q_cov))
        kl = np.asarray(model.kl_to_posterior(x, q_mean, q_cov))
        assert np.all(kl > 0) and np.all(elbo < logp)
        np.testing.assert_allclose(elbo + kl, logp, rtol=1e-5, atol=1e-3)
    mean, cov = model.posterior(x)
    np.testing.assert_allclose(model.elbo(x, mean, cov), logp, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(model.kl_to_posterior(x, mean, cov), 0.0, atol=1e-4)


def test_closed_form_elbo_matches_monte_carlo(toy):
    # E_q[log p(x|z) + log p(z) - log q(z)] from samples, with scipy's densities
    model, x = toy
    rng = np.random.default_rng(3)
    p_mean, p_cov = (np.asarray(a, np.float64) for a in model.posterior(x[:1]))
    p_cov = 0.5 * (p_cov + p_cov.T)                              # exactly symmetric (float32 round-off)
    q_mean, q_cov = p_mean + 0.3 * rng.normal(size=(1, L)), 1.5 * p_cov + 0.05 * np.eye(L)  # near, not at, p(z|x)
    z = rng.multivariate_normal(q_mean[0], q_cov, size=20_000)
    lik = stats.multivariate_normal(np.zeros(D), model.sigma**2 * np.eye(D)).logpdf(x[0] - z @ model.W.T - model.b)
    terms = lik + stats.multivariate_normal(np.zeros(L), np.eye(L)).logpdf(z) \
        - stats.multivariate_normal(q_mean[0], q_cov).logpdf(z)
    se = terms.std(ddof=1) / np.sqrt(len(terms))
    assert abs(terms.mean() - float(model.elbo(x[:1], q_mean, q_cov)[0])) < 4.5 * se
    assert se < 0.05


def test_gaussian_kl_against_monte_carlo():
    rng = np.random.default_rng(4)
    (m1,), c1 = _random_q(rng, 1)
    (m2,), c2 = _random_q(rng, 1)
    z = rng.multivariate_normal(m1, c1, size=50_000)
    terms = stats.multivariate_normal(m1, c1).logpdf(z) - stats.multivariate_normal(m2, c2).logpdf(z)
    se = terms.std(ddof=1) / np.sqrt(len(terms))
    assert abs(terms.mean() - float(gaussian_kl(m1, c1, m2, c2)[0])) < 4.5 * se
    assert float(gaussian_kl(m1, c1, m1, c1)[0]) == pytest.approx(0.0, abs=1e-5)


def test_as_vae_full_encoder_outputs_the_exact_posterior(toy):
    model, x = toy
    vae = model.as_vae("full")
    xj = jnp.asarray(x, jnp.float32)
    post = vae.encode(xj)
    mean, cov = model.posterior(x)
    np.testing.assert_allclose(post.mean, mean, rtol=1e-4, atol=1e-4)
    Lq = scale_tril(post)
    np.testing.assert_allclose(Lq @ jnp.swapaxes(Lq, -1, -2), np.broadcast_to(cov, (len(x), L, L)), atol=1e-5)
    # the decoder is the model's mean W z + b
    z = jnp.asarray(np.random.default_rng(5).normal(size=(4, L)), jnp.float32)
    np.testing.assert_allclose(vae.decoder_output(z), z @ model.W.T + model.b, rtol=1e-5, atol=1e-5)
    # with the exact posterior as q every importance weight is p(x): log w = log p(x) for every draw
    logw = log_importance_weights(vae, xj, jax.random.PRNGKey(0), 16)
    np.testing.assert_allclose(logw, np.broadcast_to(model.log_evidence(x), logw.shape), atol=2e-3)


@pytest.mark.parametrize("posterior", ["full", "diagonal"])
def test_as_vae_expected_elbo_terms_match_the_exact_elbo(toy, posterior):
    model, x = toy
    vae = model.as_vae(posterior)
    xj = jnp.asarray(x, jnp.float32)
    mean, cov = model.posterior(x)
    q_cov = cov if posterior == "full" else jnp.diag(jnp.diag(cov))
    exact = np.asarray(model.elbo(x, mean, q_cov))
    if posterior == "full":
        np.testing.assert_allclose(exact, model.log_evidence(x), atol=1e-3)
    else:  # a diagonal q misses the posterior's correlations: a strictly lower bound
        assert np.all(exact < np.asarray(model.log_evidence(x)) - 1e-3)
    n = 20_000
    keys = jax.random.split(jax.random.PRNGKey(1), n)
    draws = np.asarray(jax.vmap(lambda k: elbo_terms(vae, xj, k)["elbo"])(keys), np.float64)   # [n, batch]
    se = draws.std(0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(draws.mean(0) - exact) < 4.5 * se + 1e-4), (draws.mean(0), exact, se)
    assert np.all(se < 0.05)
    kl = np.asarray(elbo_terms(vae, xj, keys[0])["kl"])
    np.testing.assert_allclose(kl, gaussian_kl(mean, q_cov, jnp.zeros(L), jnp.eye(L)), rtol=1e-4, atol=1e-4)
