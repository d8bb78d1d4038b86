"""KL terms, likelihoods and bounds, checked against exact answers."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_core import objectives as obj
from flax import nnx

from vae_core.models import ModelConfig, Posterior, build_model, model_from_arrays, params_to_arrays, sample_posterior
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
    assert np.allclose(jnp.sum(obj.kl_per_dim(post.mean, post.log_diag), -1), exact)


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
    vae = model.as_vae("full")
    keys = jax.random.split(jax.random.PRNGKey(3), 4000)
    elbos = jax.vmap(lambda k: obj.elbo_terms(vae, x, k)["elbo"])(keys)
    mean, se = elbos.mean(0), elbos.std(0) / np.sqrt(len(keys))
    assert np.all(np.abs(mean - model.log_evidence(x)) < 4 * se + 1e-4)
    # with the exact posterior every importance weight equals p(x): L_1 = log p(x)
    with jax.default_matmul_precision("float32"):  # an identity to 1e-4: no TF32 matmuls on a GPU
        assert np.allclose(obj.iwae_bound(vae, x, keys[0], 1), model.log_evidence(x), atol=1e-4)


def test_iwae_bound_rises_towards_log_evidence_with_k(toy):
    model, x = toy
    vae = model.as_vae("diagonal")  # diagonal q cannot match the full posterior
    arrays = params_to_arrays(vae)
    shift = np.zeros_like(arrays["encoder/head/linear/bias"])
    shift[:3] = 0.4
    arrays["encoder/head/linear/bias"] = arrays["encoder/head/linear/bias"] + shift  # shift q's mean
    vae = model_from_arrays(vae.cfg, arrays)
    logp = model.log_evidence(x)
    keys = jax.random.split(jax.random.PRNGKey(4), 200)
    bounds = [float(jnp.mean(jax.vmap(lambda key: obj.iwae_bound(vae, x, key, k))(keys)))
              for k in (1, 5, 50, 500)]
    assert all(a < b for a, b in zip(bounds, bounds[1:])), bounds
    assert bounds[-1] <= float(jnp.mean(logp)) + 1e-3
    assert float(jnp.mean(logp)) - bounds[-1] < 0.1 * (float(jnp.mean(logp)) - bounds[0])


def test_reparameterized_gradient_is_unbiased(toy):
    """Mean of one-sample pathwise gradients of the ELBO = gradient of the exact ELBO."""
    model, x = toy
    vae = model.as_vae("diagonal")
    L = vae.cfg.latent_dim
    graphdef, state = nnx.split(vae)
    pure = nnx.to_pure_dict(state)

    def with_head_bias(bias):  # the model whose encoder head has this bias
        head = {"linear": {"kernel": pure["encoder"]["head"]["linear"]["kernel"], "bias": bias}}
        return nnx.merge(graphdef, {**pure, "encoder": {"head": head}})

    def exact(head_bias):
        post = with_head_bias(head_bias).encode(x)
        return jnp.mean(_diag_elbo(model, x, post))

    def one_sample(head_bias, key):
        return jnp.mean(obj.elbo_terms(with_head_bias(head_bias), x, key)["elbo"])

    bias = pure["encoder"]["head"]["linear"]["bias"] + 0.3
    g_exact = jax.grad(exact)(bias)
    keys = jax.random.split(jax.random.PRNGKey(5), 4000)
    g = jax.vmap(jax.grad(one_sample), in_axes=(None, 0))(bias, keys)
    mean, se = g.mean(0), g.std(0) / np.sqrt(len(keys))
    assert np.all(np.abs(mean - g_exact) < 4 * se + 1e-4), (mean, g_exact, se)
    assert g_exact.shape == (2 * L,)


def _diag_elbo(model, x, post):
    one = lambda xi, m, lv: model.elbo(xi[None], m[None], jnp.diag(jnp.exp(lv)))[0]  # noqa: E731
    return jax.vmap(one)(x, post.mean, post.log_diag)


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
    model = build_model(cfg, jax.random.PRNGKey(0))
    x = (jax.random.uniform(jax.random.PRNGKey(1), (4, 784)) > 0.5).astype(jnp.float32)
    t1 = obj.elbo_terms(model, x, jax.random.PRNGKey(2))
    t2 = obj.elbo_terms(model, x, jax.random.PRNGKey(3))
    assert np.all(t1["kl"] == 0) and np.allclose(t1["rec"], t2["rec"])  # deterministic code
    assert np.all(t1["kl_per_dim"] == 0) and t1["kl_per_dim"].shape == (4, 3)


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


# --------------------------------------------------------------------------- the engine's entry points
SMALL = ModelConfig(latent_dim=3, hidden=(16,))


@pytest.fixture(scope="module")
def small():
    """A small Bernoulli VAE and a batch of 6 binary images."""
    model = build_model(SMALL, 0)
    x = (jax.random.uniform(jax.random.PRNGKey(1), (6, 784)) > 0.5).astype(jnp.float32)
    return model, x


def test_elbo_terms_parts_and_beta(small):
    model, x = small
    key = jax.random.PRNGKey(2)
    t = obj.elbo_terms(model, x, key)
    assert t["elbo"].shape == t["rec"].shape == t["kl"].shape == (6,) and t["kl_per_dim"].shape == (6, 3)
    assert np.allclose(t["elbo"], t["rec"] - t["kl"])
    assert np.allclose(t["kl"], t["kl_per_dim"].sum(-1), atol=1e-5)
    post = model.encode(x)
    assert np.allclose(t["kl"], obj.kl_divergence(post), atol=1e-5)
    out, _, _ = model(x, key)  # the same draw as elbo_terms with the same key
    assert np.allclose(t["rec"], obj.bernoulli_log_likelihood(out, x))
    t4 = obj.elbo_terms(model, x, key, beta=4.0)
    assert np.allclose(t4["elbo"], t["rec"] - 4.0 * t["kl"], atol=1e-4)
    # a full-covariance posterior spreads its KL evenly over the latents
    full = build_model(ModelConfig(latent_dim=3, hidden=(16,), posterior="full"), 0)
    tf = obj.elbo_terms(full, x, key)
    assert np.allclose(tf["kl"], obj.kl_divergence(full.encode(x)), atol=1e-5)
    assert np.allclose(tf["kl_per_dim"], tf["kl"][:, None] / 3)



def test_elbo_terms_with_a_target_scores_the_decoder_on_it(small):
    """A denoising VAE: encoder on x, decoder likelihood of the target; the KL is x's."""
    model, x = small
    key = jax.random.PRNGKey(2)
    clean = 1.0 - x
    t, plain = obj.elbo_terms(model, x, key, target=clean), obj.elbo_terms(model, x, key)
    out, _, _ = model(x, key)
    assert np.allclose(t["rec"], obj.bernoulli_log_likelihood(out, clean))
    assert np.allclose(t["kl"], plain["kl"]) and not np.allclose(t["rec"], plain["rec"])
    assert np.allclose(obj.elbo_terms(model, x, key, target=x)["elbo"], plain["elbo"])
    spec = obj.LossSpec(objective="elbo")
    loss, aux = obj.training_loss(model, x, key, jnp.asarray(0), spec, target=clean)
    assert np.isclose(float(loss), -float(jnp.mean(t["elbo"])), atol=1e-4)
    with pytest.raises(ValueError, match="needs objective 'elbo' or 'capacity'"):
        obj.training_loss(model, x, key, jnp.asarray(0), obj.LossSpec(objective="iwae", iwae_k=2), target=clean)

def test_observation_log_likelihood_follows_the_decoder():
    x = jnp.full((2, 784), 0.5)
    out = jnp.linspace(-2, 2, 2 * 784).reshape(2, 784)
    bern = build_model(SMALL, 0)
    assert np.allclose(obj.observation_log_likelihood(bern, out, x), obj.bernoulli_log_likelihood(out, x))
    gcfg = ModelConfig(latent_dim=3, hidden=(16,), likelihood="gaussian", obs_std=None)
    arrays = params_to_arrays(build_model(gcfg, 0))
    arrays["log_std"] = np.linspace(-1, 1, 784).astype(np.float32)
    gauss = model_from_arrays(gcfg, arrays)
    got = obj.observation_log_likelihood(gauss, out, x)
    assert np.allclose(got, obj.gaussian_log_likelihood(out, x, arrays["log_std"]), atol=1e-3)
    fixed = build_model(ModelConfig(latent_dim=3, hidden=(16,), likelihood="gaussian", obs_std=0.2), 0)
    assert np.allclose(obj.observation_log_likelihood(fixed, out, x),
                       obj.gaussian_log_likelihood(out, x, jnp.log(0.2)), atol=1e-3)
    # leading sample axes broadcast: [k, batch, D] -> [k, batch]
    assert obj.observation_log_likelihood(bern, jnp.stack([out, out, out]), x).shape == (3, 2)


def test_log_joint_is_decoder_likelihood_plus_prior(small):
    model, x = small
    z = jax.random.normal(jax.random.PRNGKey(3), (5, 6, 3))  # [k, batch, L]
    with jax.default_matmul_precision("float32"):  # compared to 1e-4: no TF32 matmuls on a GPU
        dec = obj.decoder_log_likelihood(model, x, z)
        # the same as decoding one slice of codes at a time
        one_slice = obj.bernoulli_log_likelihood(model.decoder_output(z[2]), x)
        joint = obj.log_joint(model, x, z)
    assert dec.shape == (5, 6)
    assert np.allclose(dec[2], one_slice, atol=1e-4)
    prior = -0.5 * jnp.sum(z**2, -1) - 0.5 * 3 * np.log(2 * np.pi)
    assert np.allclose(obj.standard_normal_log_density(z), prior, atol=1e-5)
    assert np.allclose(joint, dec + prior, atol=1e-4)


def test_log_importance_weights_with_or_without_a_given_posterior(small):
    model, x = small
    key = jax.random.PRNGKey(4)
    logw = obj.log_importance_weights(model, x, key, 7)
    assert logw.shape == (7, 6)
    given = obj.log_importance_weights(model, x, key, 7, post=model.encode(x))
    assert np.allclose(logw, given)
    # log w = log p(x, z) - log q(z|x) with z drawn from q with the same key
    post = model.encode(x)
    z = sample_posterior(key, post, 7)
    by_hand = obj.log_joint(model, x, z) - obj.posterior_log_density(z, post)
    assert np.allclose(logw, by_hand, atol=1e-4)
    assert np.allclose(obj.iwae_bound(model, x, key, 7), jax.nn.logsumexp(logw, 0) - np.log(7), atol=1e-4)



def test_log_importance_weights_decoded_in_parts_are_the_same_numbers(small):
    model, x = small                                   # 6 images
    key = jax.random.PRNGKey(8)
    whole = obj.log_importance_weights(model, x, key, 10)
    for rows in (6, 12, 30, 59, 1000):                 # parts of 1, 2, 5, 9 (last one padded) draws; all
        parts = obj.log_importance_weights(model, x, key, 10, rows=rows)
        assert parts.shape == (10, 6)
        np.testing.assert_allclose(parts, whole, atol=1e-4)
    np.testing.assert_allclose(obj.log_importance_weights(model, x, key, 10, rows=1), whole, atol=1e-4)


def test_softplus_matches_jax_and_its_gradient_is_the_sigmoid():
    l = jnp.concatenate([jnp.array([-1e4, -80.0, -1e-6, 0.0, 1e-6, 80.0, 1e4]),
                         10.0 * jax.random.normal(jax.random.PRNGKey(0), (1000,))])
    np.testing.assert_allclose(obj.softplus(l), jax.nn.softplus(l), rtol=1e-6, atol=1e-7)
    assert bool(jnp.all(jnp.isfinite(obj.softplus(l))))
    np.testing.assert_allclose(jax.vmap(jax.grad(obj.softplus))(l), jax.nn.sigmoid(l), atol=1e-6)
    assert float(jax.grad(obj.softplus)(0.0)) == 0.5      # all-zero logits still train
    second = jax.vmap(jax.hessian(obj.softplus))(l[7:])   # sigmoid'(l), for grad-of-grad users
    np.testing.assert_allclose(second, jax.nn.sigmoid(l[7:]) * jax.nn.sigmoid(-l[7:]), atol=1e-6)
    for dtype in (jnp.float16, jnp.bfloat16):              # stays in the input's dtype
        half = l[7:50].astype(dtype)
        assert obj.softplus(half).dtype == dtype and jax.grad(lambda v: obj.softplus(v).sum())(half).dtype == dtype
        np.testing.assert_allclose(obj.softplus(half).astype(jnp.float32),
                                   jax.nn.softplus(half).astype(jnp.float32), rtol=1e-2, atol=1e-2)


def _grads(model, fn):
    """Gradient of fn(model) with respect to every parameter, as {path: array}."""
    graphdef, params = nnx.split(model)
    g = jax.grad(lambda p: fn(nnx.merge(graphdef, p)))(params)
    return {k: np.asarray(v) for k, v in jax.tree_util.tree_leaves_with_path(nnx.to_pure_dict(g))}


def test_training_loss_elbo_with_warmup_matches_elbo_terms(small):
    model, x = small
    key, step = jax.random.PRNGKey(5), jnp.asarray(4)
    spec = obj.LossSpec(objective="elbo", beta=2.0, warmup_steps=10)
    loss, aux = obj.training_loss(model, x, key, step, spec)
    t = obj.elbo_terms(model, x, key)
    weight = 2.0 * 4 / 10
    assert np.isclose(float(aux["kl_weight"]), weight)
    assert np.isclose(float(loss), float(jnp.mean(-(t["rec"] - weight * t["kl"]))), rtol=1e-6)
    assert np.allclose(aux["rec"], t["rec"]) and np.allclose(aux["kl"], t["kl"])
    assert np.isclose(float(obj.training_loss(model, x, key, jnp.asarray(50), spec)[1]["kl_weight"]), 2.0)
    plain, aux0 = obj.training_loss(model, x, key, jnp.asarray(0), obj.LossSpec())  # beta 1, no warm-up
    assert np.isclose(float(plain), float(-jnp.mean(t["elbo"])), rtol=1e-6) and float(aux0["kl_weight"]) == 1.0


def test_training_loss_iwae_matches_iwae_bound(small):
    model, x = small
    key, step = jax.random.PRNGKey(6), jnp.asarray(3)
    spec = obj.LossSpec(objective="iwae", iwae_k=5)
    loss, aux = obj.training_loss(model, x, key, step, spec)
    k_iw, k_elbo = jax.random.split(key)  # the loss draws the bound and the recorded terms with these
    assert np.isclose(float(loss), float(-jnp.mean(obj.iwae_bound(model, x, k_iw, 5))), rtol=1e-6)
    t = obj.elbo_terms(model, x, k_elbo)
    assert np.allclose(aux["rec"], t["rec"]) and np.allclose(aux["kl"], t["kl"])
    assert np.isnan(float(aux["kl_weight"]))
    # rec and kl are only recorded: the gradient is the bound's alone
    g = _grads(model, lambda m: obj.training_loss(m, x, key, step, spec)[0])
    ref = _grads(model, lambda m: -jnp.mean(obj.iwae_bound(m, x, k_iw, 5)))
    assert all(np.allclose(g[k], ref[k], atol=1e-5) for k in ref)


def test_training_loss_capacity_matches_capacity_objective(small):
    model, x = small
    key, step = jax.random.PRNGKey(7), jnp.asarray(40)
    spec = obj.LossSpec(objective="capacity", capacity_max=25.0, capacity_steps=100, gamma=100.0)
    loss, aux = obj.training_loss(model, x, key, step, spec)
    t = obj.elbo_terms(model, x, key)
    c = 25.0 * 40 / 100
    assert np.isclose(float(loss), float(jnp.mean(obj.capacity_objective(t["rec"], t["kl"], c, 100.0))), rtol=1e-6)
    assert np.isclose(float(aux["kl_weight"]), float(100.0 * jnp.mean(jnp.sign(t["kl"] - c))))
    # the capacity stops rising at capacity_max
    late, _ = obj.training_loss(model, x, key, jnp.asarray(10_000), spec)
    assert np.isclose(float(late), float(jnp.mean(obj.capacity_objective(t["rec"], t["kl"], 25.0, 100.0))),
                      rtol=1e-6)


def test_bernoulli_log_likelihood_equals_the_log_sigmoid_form():
    """x*l - softplus(l) (one softplus per pixel) is optax's two-log-sigmoid cross-entropy.

    Per-image sums of about 2,600 nats here; the largest difference measured was 2.4e-4 nats
    (float32 rounding of the two forms), the test allows 1e-3.
    """
    import optax

    logits = 8.0 * jax.random.normal(jax.random.PRNGKey(0), (64, 784))
    x = (jax.random.uniform(jax.random.PRNGKey(1), (64, 784)) < 0.3).astype(jnp.float32)
    reference = -jnp.sum(optax.sigmoid_binary_cross_entropy(logits, x), axis=-1)
    assert float(jnp.max(jnp.abs(obj.bernoulli_log_likelihood(logits, x) - reference))) < 1e-3
    grads = [jax.grad(lambda l, f=f: f(l).sum())(logits) for f in
             (lambda l: obj.bernoulli_log_likelihood(l, x), lambda l: -optax.sigmoid_binary_cross_entropy(l, x))]
    np.testing.assert_allclose(grads[0], grads[1], atol=1e-5)


# --------------------------------------------------------------------------- beta-TCVAE: the KL decomposition
N_DATA = 60_000  # the dataset size N of the MWS estimate (MNIST's training set)


def _diag_posterior(key, batch, dims, scale=1.0):
    k1, k2 = jax.random.split(key)
    return Posterior(scale * jax.random.normal(k1, (batch, dims)), 0.5 * jax.random.normal(k2, (batch, dims)))


def test_tc_decomposition_adds_up_to_the_one_sample_kl():
    k_post, k_z = jax.random.split(jax.random.PRNGKey(10))
    post = _diag_posterior(k_post, 256, 4)
    z = sample_posterior(k_z, post, 1)[0]
    t = obj.tc_decomposition(z, post, N_DATA)
    assert set(t) == {"mi", "tc", "dim_kl"} and all(v.shape == (256,) for v in t.values())
    one_sample = obj.posterior_log_density(z, post) - obj.standard_normal_log_density(z)
    total = t["mi"] + t["tc"] + t["dim_kl"]
    # per example, exactly (float32 rounding of terms of size ~L log(NM) = 66 nats)
    np.testing.assert_allclose(total, one_sample, atol=2e-4)
    # the batch mean estimates the mean analytic KL: within 4 standard errors of the draw
    diff = np.asarray(one_sample - obj.kl_divergence(post), np.float64)
    assert abs(diff.mean()) < 4 * diff.std(ddof=1) / np.sqrt(len(diff))


def test_dataset_size_shifts_the_mws_terms_by_constants():
    """MWS subtracts log(N M): N moves mi by +log N, tc by +(L-1) log N, dim_kl by -L log N."""
    k_post, k_z = jax.random.split(jax.random.PRNGKey(11))
    post = _diag_posterior(k_post, 64, 5)
    z = sample_posterior(k_z, post, 1)[0]
    a, b = obj.tc_decomposition(z, post, N_DATA), obj.tc_decomposition(z, post, 1)
    log_n = np.log(N_DATA)
    np.testing.assert_allclose(a["mi"] - b["mi"], log_n, atol=1e-4)
    np.testing.assert_allclose(a["tc"] - b["tc"], 4 * log_n, atol=1e-4)
    np.testing.assert_allclose(a["dim_kl"] - b["dim_kl"], -5 * log_n, atol=1e-4)
    # by hand, for one example: log q(z_0) = logsumexp_m log q(z_0 | x_m) - log(N M)
    by_hand = jax.nn.logsumexp(obj.gaussian_log_density(z[0], post.mean, post.log_diag)) - np.log(N_DATA * 64)
    np.testing.assert_allclose(a["mi"][0], obj.gaussian_log_density(z[0], post.mean[0], post.log_diag[0]) - by_hand,
                               rtol=1e-5)


def test_tc_decomposition_rejects_what_it_cannot_do():
    post = Posterior(jnp.zeros((4, 3)), jnp.zeros((4, 3)), jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="diagonal"):
        obj.tc_decomposition(jnp.zeros((4, 3)), post, 10)
    with pytest.raises(ValueError, match="dataset_size"):
        obj.tc_decomposition(jnp.zeros((4, 3)), Posterior(jnp.zeros((4, 3)), jnp.zeros((4, 3))), 0)


# Aggregate posteriors with a closed form. Codes x_m have posterior means mu_m ~ N(0, Sigma)
# and posterior standard deviation s, so the aggregate is q(z) = N(0, Sigma + s^2 I) =: N(0, S):
#   MI = 1/2 (log det S - L log s^2),  TC = 1/2 (sum_j log S_jj - log det S),
#   dim-KL = 1/2 sum_j (S_jj - 1 - log S_jj).
# The minibatch estimate (the batch's own aggregate, i.e. MWS minus its log N constants) is
# consistent when q(z|x) is wide next to the spacing of the M codes; for small s the m = i
# term of the logsumexp dominates and it overestimates TC (L = 3, M = 2000, s = 0.1: +0.41
# nats). Hence M = 2000 and s = 0.5. Measured over seeds 0..19 (estimate - closed form):
# TC  mean +0.003, sd 0.012, max |err| 0.021;  MI mean -0.005, sd 0.027, max 0.068;
# dim-KL mean +0.006, sd 0.017, max 0.047; factorized TC mean +0.012, sd 0.003, max 0.019.
# The tolerances below are about 4 sd (seed 0 is used).
M_BIG, S_POST = 2000, 0.5
STDS = np.sqrt([1.0, 2.0, 0.5])
CORR = np.array([[1.0, 0.8, 0.5], [0.8, 1.0, 0.6], [0.5, 0.6, 1.0]])


def _mws_without_constants(mu, std, rng):
    """tc_decomposition's batch means at one draw z ~ q(z|x), minus the log N constants."""
    z = mu + std * rng.normal(size=mu.shape)
    f = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    t = obj.tc_decomposition(f(z), Posterior(f(mu), f(np.log(std**2))), N_DATA)
    L, log_n = mu.shape[1], np.log(N_DATA)
    shift = {"mi": log_n, "tc": (L - 1) * log_n, "dim_kl": -L * log_n}
    return {k: float(jnp.mean(v)) - shift[k] for k, v in t.items()}


def test_tc_is_near_zero_for_a_factorized_aggregate_posterior():
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(M_BIG, 3)) * STDS                    # independent across latents
    std = rng.uniform(0.5 * S_POST, 1.5 * S_POST, (M_BIG, 3))  # so is each posterior's width
    est = _mws_without_constants(mu, std, rng)
    assert abs(est["tc"]) < 0.04, est


def test_mws_terms_match_the_closed_form_of_a_correlated_gaussian_aggregate():
    rng = np.random.default_rng(0)
    sigma = CORR * np.outer(STDS, STDS)
    mu = rng.multivariate_normal(np.zeros(3), sigma, M_BIG)
    est = _mws_without_constants(mu, np.full_like(mu, S_POST), rng)
    S = sigma + S_POST**2 * np.eye(3)
    v, logdet = np.diag(S), np.linalg.slogdet(S)[1]
    exact = {"mi": 0.5 * (logdet - 3 * np.log(S_POST**2)), "tc": 0.5 * (np.log(v).sum() - logdet),
             "dim_kl": 0.5 * np.sum(v - 1 - np.log(v))}
    assert exact["tc"] > 0.4                      # well clear of the tolerance
    assert abs(est["tc"] - exact["tc"]) < 0.05, (est, exact)
    assert abs(est["mi"] - exact["mi"]) < 0.12, (est, exact)
    assert abs(est["dim_kl"] - exact["dim_kl"]) < 0.08, (est, exact)


def test_training_loss_beta_tcvae_matches_its_parts(small):
    model, x = small
    key, step = jax.random.PRNGKey(8), jnp.asarray(3)
    spec = obj.LossSpec(objective="beta_tcvae", beta=6.0, warmup_steps=10)
    loss, aux = obj.training_loss(model, x, key, step, spec)
    t = obj.elbo_terms(model, x, key)
    _, z, post = model(x, key)  # the same draw as the loss's with the same key
    parts = obj.tc_decomposition(z, post)  # N = 1: the minibatch aggregate the loss records
    w = 3 / 10
    assert np.isclose(float(aux["kl_weight"]), w)
    by_hand = jnp.mean(-t["rec"] + w * (t["kl"] + 5.0 * parts["tc"]))
    assert np.isclose(float(loss), float(by_hand), rtol=1e-5)
    assert np.allclose(obj.beta_tcvae_objective(t["rec"], t["kl"], parts["tc"], 6.0, w),
                       -t["rec"] + w * (t["kl"] + 5.0 * parts["tc"]), atol=1e-4)
    for name in ("mi", "tc", "dim_kl"):
        assert np.allclose(aux[name], parts[name], atol=1e-5)
    assert np.allclose(aux["rec"], t["rec"]) and np.allclose(aux["kl"], t["kl"])
    # beta = 1 without warm-up is the negative ELBO, gradient included
    one = obj.LossSpec(objective="beta_tcvae", beta=1.0)
    assert np.isclose(float(obj.training_loss(model, x, key, step, one)[0]), float(-jnp.mean(t["elbo"])), rtol=1e-5)
    g = _grads(model, lambda m: obj.training_loss(m, x, key, step, one)[0])
    ref = _grads(model, lambda m: obj.training_loss(m, x, key, step, obj.LossSpec())[0])
    assert all(np.allclose(g[k], ref[k], atol=1e-5) for k in ref)


def test_training_loss_beta_tcvae_needs_a_stochastic_code(small):
    x = small[1]
    ae = build_model(ModelConfig(latent_dim=3, hidden=(16,), deterministic=True), 0)
    with pytest.raises(ValueError, match="stochastic"):
        obj.training_loss(ae, x, jax.random.PRNGKey(0), jnp.asarray(0),
                          obj.LossSpec(objective="beta_tcvae"))


def test_log_mean_weight_in_chunks_is_the_log_mean_of_all_draws():
    # log w of 3 examples; each chunk's draws come from its own key, as the scan splits them
    def log_weights(kc):  # [4, 3]
        return 50.0 * jax.random.normal(kc, (4, 3))  # spread wide: a naive log(mean(exp)) would overflow

    key, k = jax.random.PRNGKey(3), 12
    got = obj.log_mean_weight_in_chunks(log_weights, key, k, 4, 3)
    every = jnp.concatenate([log_weights(kc) for kc in jax.random.split(key, k // 4)])  # [12, 3]
    np.testing.assert_allclose(got, jax.nn.logsumexp(every, axis=0) - jnp.log(k), rtol=1e-6)
    assert got.shape == (3,)
    with pytest.raises(ValueError, match="multiple"):
        obj.log_mean_weight_in_chunks(log_weights, key, 10, 4, 3)
