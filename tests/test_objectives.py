"""KL terms, likelihoods and bounds, checked against exact answers."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_core import objectives as obj
from vae_core.models import VAE, ModelConfig, Posterior, init_params
from vae_core.toy import LinearGaussian


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    model = LinearGaussian(rng.normal(size=(6, 3)), rng.normal(size=6), 0.8)
    x = jnp.asarray(model.sample(rng, 8), jnp.float32)
    return model, x


def test_analytic_kl_matches_monte_carlo_diagonal():
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    post = Posterior(jax.random.normal(k1, (5, 4)), jax.random.normal(k2, (5, 4)) * 0.7)
    est, se = obj.monte_carlo_kl(k3, post, 20000)
    exact = obj.kl_divergence(post)
    assert np.all(np.abs(est - exact) < 4 * se), (est, exact, se)
    assert np.allclose(jnp.sum(obj.kl_per_dim(post.mean, post.logvar), -1), exact)


def test_analytic_kl_matches_monte_carlo_full_covariance():
    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(1), 4)
    post = Posterior(jax.random.normal(k1, (3, 4)), jax.random.normal(k2, (3, 4)) * 0.5,
                     jax.random.normal(k3, (3, 6)) * 0.5)
    est, se = obj.monte_carlo_kl(k4, post, 20000)
    assert np.all(np.abs(est - obj.kl_divergence(post)) < 4 * se)


def test_full_covariance_density_matches_scipy():
    from vae_core.models import scale_tril

    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(2), 4)
    post = Posterior(jax.random.normal(k1, (2, 3)), jax.random.normal(k2, (2, 3)) * 0.3,
                     jax.random.normal(k3, (2, 3)) * 0.4)
    z = jax.random.normal(k4, (5, 2, 3))
    L = scale_tril(post)
    for b in range(2):
        ref = jax.scipy.stats.multivariate_normal.logpdf(z[:, b], post.mean[b], L[b] @ L[b].T)
        assert np.allclose(obj.posterior_log_density(z, post)[:, b], ref, atol=1e-4)


def test_elbo_is_below_log_evidence_and_tight_at_true_posterior(toy):
    model, x = toy
    logp = model.log_evidence(x)
    post_mean, post_cov = model.posterior(x)
    assert np.allclose(model.elbo(x, post_mean, post_cov), logp, atol=1e-4)
    worse = model.elbo(x, post_mean + 0.5, post_cov * 1.5)
    assert np.all(worse < logp)
    # ELBO + KL(q || posterior) = log p(x) for any q
    assert np.allclose(worse + model.kl_to_posterior(x, post_mean + 0.5, post_cov * 1.5), logp, atol=1e-4)


def test_engine_elbo_matches_closed_form_on_exact_model(toy):
    model, x = toy
    cfg, params = model.as_vae("full")
    vae = VAE(cfg)
    keys = jax.random.split(jax.random.PRNGKey(3), 4000)
    elbos = jax.vmap(lambda k: obj.elbo_terms(vae, params, x, k)["elbo"])(keys)
    mean, se = elbos.mean(0), elbos.std(0) / np.sqrt(len(keys))
    assert np.all(np.abs(mean - model.log_evidence(x)) < 4 * se + 1e-4)
    # with the exact posterior every importance weight equals p(x): L_1 = log p(x)
    assert np.allclose(obj.iwae_bound(vae, params, x, keys[0], 1), model.log_evidence(x), atol=1e-4)


def test_iwae_bound_rises_towards_log_evidence_with_k(toy):
    model, x = toy
    cfg, params = model.as_vae("diagonal")  # diagonal q cannot match the full posterior
    vae = VAE(cfg)
    params = jax.tree_util.tree_map(lambda a: a, params)
    params["params"]["encoder"]["posterior_head"]["bias"] = (
        params["params"]["encoder"]["posterior_head"]["bias"].at[:3].add(0.4))  # shift q's mean
    logp = model.log_evidence(x)
    keys = jax.random.split(jax.random.PRNGKey(4), 200)
    bounds = [float(jnp.mean(jax.vmap(lambda key: obj.iwae_bound(vae, params, x, key, k))(keys)))
              for k in (1, 5, 50, 500)]
    assert all(a < b for a, b in zip(bounds, bounds[1:])), bounds
    assert bounds[-1] <= float(jnp.mean(logp)) + 1e-3
    assert float(jnp.mean(logp)) - bounds[-1] < 0.1 * (float(jnp.mean(logp)) - bounds[0])


def test_reparameterized_gradient_is_unbiased(toy):
    """Mean of one-sample pathwise gradients of the ELBO = gradient of the exact ELBO."""
    model, x = toy
    cfg, params = model.as_vae("diagonal")
    vae = VAE(cfg)
    L = cfg.latent_dim

    def exact(head_bias):
        p = {"params": {**params["params"], "encoder": {"posterior_head": {
            "kernel": params["params"]["encoder"]["posterior_head"]["kernel"], "bias": head_bias}}}}
        post = vae.apply(p, x, method=VAE.encode)
        return jnp.mean(_diag_elbo(model, x, post))

    def one_sample(head_bias, key):
        p = {"params": {**params["params"], "encoder": {"posterior_head": {
            "kernel": params["params"]["encoder"]["posterior_head"]["kernel"], "bias": head_bias}}}}
        return jnp.mean(obj.elbo_terms(vae, p, x, key)["elbo"])

    bias = params["params"]["encoder"]["posterior_head"]["bias"] + 0.3
    g_exact = jax.grad(exact)(bias)
    keys = jax.random.split(jax.random.PRNGKey(5), 4000)
    g = jax.vmap(jax.grad(one_sample), in_axes=(None, 0))(bias, keys)
    mean, se = g.mean(0), g.std(0) / np.sqrt(len(keys))
    assert np.all(np.abs(mean - g_exact) < 4 * se + 1e-4), (mean, g_exact, se)
    assert g_exact.shape == (2 * L,)


def _diag_elbo(model, x, post):
    return jax.vmap(lambda xi, m, lv: model.elbo(xi[None], m[None], jnp.diag(jnp.exp(lv)))[0])(x, post.mean, post.logvar)


def test_score_function_variance_exceeds_pathwise_as_in_closed_form():
    """f(x) = (x - k)^2, x ~ N(mu, 1): pathwise variance 4, score function d^4 + 14 d^2 + 15."""
    mu, k = 1.0, -3.0
    d = mu - k
    eps = jax.random.normal(jax.random.PRNGKey(6), (400_000,))
    x = mu + eps
    pathwise = 2 * (x - k)                      # d/dmu f(mu + eps)
    score = (x - k) ** 2 * (x - mu)             # f(x) d/dmu log N(x; mu, 1)
    assert abs(float(pathwise.mean()) - 2 * d) < 4 * float(pathwise.std()) / np.sqrt(len(eps))
    assert abs(float(score.mean()) - 2 * d) < 4 * float(score.std()) / np.sqrt(len(eps))
    assert abs(float(pathwise.var()) - 4.0) < 0.05
    assert abs(float(score.var()) / (d**4 + 14 * d**2 + 15) - 1) < 0.05
    assert float(score.var()) > 100 * float(pathwise.var())


def test_losses_are_finite_at_extreme_values():
    x = jnp.array([[0.0, 1.0, 1.0, 0.0]])
    logits = jnp.array([[-1e4, 1e4, 1e4, -1e4]])  # confident and right
    assert np.allclose(obj.bernoulli_log_likelihood(logits, x), 0.0)
    ll = obj.bernoulli_log_likelihood(-logits, x)  # confident and wrong: -1e4 nats per pixel
    assert np.isfinite(ll).all() and np.allclose(ll, -4e4)
    g = jax.grad(lambda l: obj.bernoulli_log_likelihood(l, x).sum())(logits)
    assert np.isfinite(g).all()
    for lv in (1e4, -1e4):
        logvar = jnp.full((1, 3), lv)
        kl = obj.kl_per_dim(jnp.zeros((1, 3)), logvar)
        assert np.isfinite(kl).all() and (kl > 0).all()
        assert np.isfinite(jax.grad(lambda v: obj.kl_per_dim(jnp.zeros((1, 3)), v).sum())(logvar)).all()
        assert np.isfinite(obj.gaussian_log_density(jnp.zeros(3), jnp.zeros(3), jnp.full(3, lv)))


def test_elbo_terms_on_a_plain_autoencoder_has_no_kl():
    cfg = ModelConfig(latent_dim=3, hidden=(16,), deterministic=True)
    model, params = init_params(cfg, jax.random.PRNGKey(0))
    x = (jax.random.uniform(jax.random.PRNGKey(1), (4, 784)) > 0.5).astype(jnp.float32)
    t1 = obj.elbo_terms(model, params, x, jax.random.PRNGKey(2))
    t2 = obj.elbo_terms(model, params, x, jax.random.PRNGKey(3))
    assert np.all(t1["kl"] == 0) and np.allclose(t1["rec"], t2["rec"])  # deterministic code


def test_gaussian_likelihood_is_scaled_squared_error():
    x, m = jnp.array([[0.2, 0.9]]), jnp.array([[0.0, 1.0]])
    ll = obj.gaussian_log_likelihood(m, x, jnp.log(0.5))
    expected = -0.5 * (0.04 + 0.01) / 0.25 - 2 * np.log(0.5) - np.log(2 * np.pi)
    assert np.allclose(ll, expected)


def test_warmup_and_capacity():
    assert float(obj.linear_warmup(0, 100, 2.0)) == 0.0
    assert float(obj.linear_warmup(50, 100, 2.0)) == 1.0
    assert float(obj.linear_warmup(500, 100, 2.0)) == 2.0
    assert float(obj.linear_warmup(0, 0, 2.0)) == 2.0
    loss = obj.capacity_objective(jnp.array([-80.0]), jnp.array([10.0]), 25.0, 100.0)
    assert np.allclose(loss, 80 + 100 * 15)
