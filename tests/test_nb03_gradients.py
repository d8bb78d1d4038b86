"""Tests for course.nb03_gradients: the estimators against closed forms, exact derivatives and
an independent density; the VAE encoder-gradient estimators against each other; the custom
training loss against its parts."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from course import nb03_gradients as G
from vae_core.models import ModelConfig, build_model
from vae_core.objectives import posterior_log_density
from vae_core.train import TrainConfig, train

N_SEEDS = 2**16
Z = 4.5  # tolerance in standard errors (a false alarm has probability < 1e-5 per check)
KS = [-3.0, 0.0, 1.0, 2.5]


def _draws(estimator, k, seed=0, **kw):
    return G.draw_estimates(jax.random.PRNGKey(seed), 1.0, 1.0, k, estimator=estimator, n_seeds=N_SEEDS, **kw)


@pytest.mark.parametrize("k", KS)
def test_pathwise_is_unbiased_with_variance_4(k):
    draws = _draws("pathwise", k)
    mean, se = G.mean_with_error(draws[:, 0])
    assert abs(mean - 2 * (1.0 - k)) < Z * se          # analytic gradient 2d
    var, vse = G.variance_with_error(draws[:, 0])
    assert abs(var - 4.0) < Z * vse
    var_s, vse_s = G.variance_with_error(draws[:, 1])  # wrt sigma: 4 d^2 + 8
    assert abs(var_s - (4 * (1 - k) ** 2 + 8)) < Z * vse_s


@pytest.mark.parametrize("k", KS)
def test_score_function_variance_matches_closed_form_and_exceeds_pathwise(k):
    cf = G.closed_forms(k)
    draws = _draws("score", k, seed=1)
    mean, se = G.mean_with_error(draws[:, 0])
    assert abs(mean - cf["grad_mu"]) < Z * se          # unbiased too
    var, vse = G.variance_with_error(draws[:, 0])
    assert abs(var - cf["score_var_mu"]) < Z * vse     # d^4 + 14 d^2 + 15
    assert var - Z * vse > 4.0                         # clearly above the pathwise 4
    var_s, vse_s = G.variance_with_error(draws[:, 1])
    assert abs(var_s - cf["score_var_sigma"]) < Z * vse_s


def test_tolerance_rejects_a_wrong_closed_form():
    # the check above must be able to fail: a wrong coefficient (18 d^2 instead of 14 d^2)
    d = 1.0 - (-3.0)
    var, vse = G.variance_with_error(_draws("score", -3.0, seed=1)[:, 0])
    assert abs(var - (d**4 + 18 * d**2 + 15)) > Z * vse


def test_closed_forms_reference_values():
    cf = G.closed_forms(-3.0)
    assert cf["score_var_mu"] == 495 and cf["pathwise_var_mu"] == 4 and cf["grad_mu"] == 8
    assert cf["pathwise_var_sigma"] == 4 * 16 + 8


@pytest.mark.parametrize("k", [-3.0, 1.0])
@pytest.mark.parametrize("which, formula", [("mean_f", lambda d: 8 * d**2 + 10),
                                            ("optimal_baseline", lambda d: 8 * d**2 + 6)])
def test_baselines_reduce_variance_as_derived(k, which, formula):
    d = 1.0 - k
    b = float(G.closed_forms(k)[which])
    draws = _draws("score", k, seed=2, baseline=b)
    var, vse = G.variance_with_error(draws[:, 0])
    assert abs(var - formula(d)) < Z * vse
    assert abs(G.closed_forms(k, baseline=b)["score_var_mu"] - formula(d)) < 1e-9
    mean, se = G.mean_with_error(draws[:, 0])
    assert abs(mean - 2 * d) < Z * se                   # a constant baseline keeps it unbiased


def test_leave_one_out_baseline_is_unbiased_and_helps():
    k, n = -3.0, 8
    loo = G.draw_estimates(jax.random.PRNGKey(3), 1.0, 1.0, k, estimator="score", n_seeds=2**15,
                           n_samples=n, baseline="loo")
    mean, se = G.mean_with_error(loo[:, 0])
    assert abs(mean - 8.0) < Z * se
    var, _ = G.variance_with_error(loo[:, 0])
    assert var < 0.5 * G.closed_forms(k)["score_var_mu"] / n


def test_variance_falls_as_one_over_n_samples():
    for n in (4, 16):
        draws = G.draw_estimates(jax.random.PRNGKey(4), 1.0, 1.0, 0.0, estimator="score", n_seeds=2**15,
                                 n_samples=n)
        var, vse = G.variance_with_error(draws[:, 0])
        assert abs(var - 30.0 / n) < Z * vse


def test_gamma_pathwise_and_score_match_exact_derivative():
    for alpha, k in [(0.5, 3.0), (2.0, 0.0), (5.0, 3.0)]:
        exact = G.gamma_exact_gradient(alpha, k)
        # independent check of the exact formula by differentiating E = alpha + (alpha - k)^2
        assert abs(jax.grad(lambda a: a + (a - k) ** 2)(alpha) - exact) < 1e-5
        for est in ("pathwise", "score"):
            d = G.draw_gamma_estimates(jax.random.PRNGKey(5), alpha, k, estimator=est, n_seeds=2**16)
            mean, se = G.mean_with_error(d)
            assert abs(mean - exact) < Z * se, (alpha, k, est, mean, se, exact)
            assert se < 0.1 * max(1.0, abs(exact))  # precise enough for the check to mean something
    # the pathwise derivative of z itself: d E[z]/d alpha = 1
    g = jax.vmap(lambda kk: jax.grad(lambda a: jax.random.gamma(kk, a))(2.0))(jax.random.split(jax.random.PRNGKey(6), 2**15))
    mean, se = G.mean_with_error(g)
    assert abs(mean - 1.0) < Z * se


def test_full_covariance_density_and_sampling():
    key = jax.random.PRNGKey(7)
    post = G.random_full_posterior(key, dim=5, batch=3)
    z = jax.random.normal(jax.random.PRNGKey(8), (4, 3, 5)) * 2
    ours = posterior_log_density(z, post)
    ref = G.reference_log_density(z, post)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-3)
    # reparameterized samples have covariance L L^T
    from vae_core.models import sample_posterior
    s = sample_posterior(jax.random.PRNGKey(9), post, 200_000)        # [n, 3, 5]
    emp = jnp.einsum("nbi,nbj->bij", s - post.mean, s - post.mean) / s.shape[0]
    np.testing.assert_allclose(emp, G.covariance(post), atol=0.05 * float(jnp.max(jnp.abs(G.covariance(post)))))


def test_full_covariance_pathwise_gradient_matches_exact():
    post = G.random_full_posterior(jax.random.PRNGKey(10), dim=4, batch=1)
    A = jax.random.normal(jax.random.PRNGKey(11), (4, 4))
    path, exact = G.quadratic_form_gradients(jax.random.PRNGKey(12), post, A, 400_000)
    for p, e in zip(path, exact):
        np.testing.assert_allclose(p, e, atol=0.05 * float(jnp.max(jnp.abs(e))) + 0.02)


@pytest.fixture(scope="module")
def tiny_vae():
    cfg = ModelConfig(latent_dim=3, hidden=(16,), image_shape=(4, 4))
    model = build_model(cfg, jax.random.PRNGKey(0))
    x = jax.random.bernoulli(jax.random.PRNGKey(1), 0.4, (8, 16)).astype(jnp.float32)
    return model, x


def _leaves(tree):
    return jax.tree_util.tree_leaves(tree)


def test_encoder_gradient_has_the_encoders_shape_and_pathwise_matches_plain_grad(tiny_vae):
    model, x = tiny_vae
    key = jax.random.PRNGKey(5)
    g = G.encoder_gradient(model, x, key, "pathwise")
    assert jax.tree_util.tree_structure(g) == jax.tree_util.tree_structure(nnx.state(model.encoder, nnx.Param))
    # the same gradient by differentiating the whole model and keeping the encoder's part
    graphdef, params = nnx.split(model)
    full = jax.grad(lambda p: G.encoder_surrogate(nnx.merge(graphdef, p), x, key, "pathwise"))(params)
    for a, b in zip(_leaves(g), _leaves(full["encoder"])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert any(float(jnp.max(jnp.abs(a))) > 0 for a in _leaves(g))


def test_vae_encoder_estimators_agree_and_score_is_noisier(tiny_vae):
    model, x = tiny_vae
    n = 1024
    stats = {}
    for i, (est, s) in enumerate([("pathwise", 1), ("score", 1), ("score_loo", 4)]):
        stats[est] = G.gradient_moments(model, x, jax.random.PRNGKey(20 + i), estimator=est,
                                        n_draws=n, n_samples=s, chunk=64)
    mp, vp = stats["pathwise"]
    for est in ("score", "score_loo"):
        ratio = G.mean_agreement(*stats[est], mp, vp, 3, n)
        assert all(r < 1.6 for r in ratio.values()), (est, ratio)   # means agree: both unbiased
    gp = G.group_statistics(mp, vp, 3)
    gs = G.group_statistics(*stats["score"], 3, signal_tree=mp)
    assert list(gp) == ["hidden layers", "mean head", "log-variance head"]
    for name in gp:
        assert gs[name]["variance"] > 3 * gp[name]["variance"]
        assert gs[name]["snr"] < gp[name]["snr"]


def test_mean_agreement_detects_a_bias(tiny_vae):
    model, x = tiny_vae
    n = 1024
    mp, vp = G.gradient_moments(model, x, jax.random.PRNGKey(30), estimator="pathwise", n_draws=n, chunk=64)
    biased = jax.tree_util.tree_map(lambda a: 1.5 * a, mp)
    ratio = G.mean_agreement(biased, vp, mp, vp, 3, n)
    assert all(r > 3 for r in ratio.values())


def test_gradient_moments_matches_direct_computation(tiny_vae):
    model, x = tiny_vae
    key = jax.random.PRNGKey(40)
    mean, var = G.gradient_moments(model, x, key, estimator="score", n_draws=64, chunk=16)
    keys = jax.random.split(key, 64)
    g = jax.vmap(lambda k: G.encoder_gradient(model, x, k, "score"))(keys)
    jax.tree_util.tree_map(lambda m, a: np.testing.assert_allclose(m, a.mean(0), rtol=1e-4, atol=1e-5), mean, g)
    jax.tree_util.tree_map(lambda v, a: np.testing.assert_allclose(v, a.var(0, ddof=1), rtol=1e-3, atol=1e-6), var, g)
    with pytest.raises(ValueError, match="multiple of chunk"):
        G.gradient_moments(model, x, key, estimator="score", n_draws=60, chunk=16)


def test_parameter_groups_split_the_head_by_columns():
    cfg = ModelConfig(latent_dim=3, hidden=(5,), image_shape=(2, 2), posterior="full")
    model = build_model(cfg, 0)
    groups = G.parameter_groups(nnx.state(model.encoder, nnx.Param), 3)
    assert list(groups) == ["hidden layers", "mean head", "log-diagonal head", "off-diagonal head"]
    head = model.encoder.head.linear
    assert groups["hidden layers"].size == 4 * 5 + 5
    assert groups["mean head"].size == 5 * 3 + 3
    assert groups["off-diagonal head"].size == 5 * 3 + 3            # L (L - 1) / 2 = 3 columns
    np.testing.assert_array_equal(groups["log-diagonal head"][-3:], head.bias[...][3:6])
    np.testing.assert_array_equal(groups["mean head"][:3], head.kernel[...][0, :3])


def test_estimator_loss_value_is_the_elbo_and_its_gradient_splits_by_network(tiny_vae):
    model, x = tiny_vae
    key = jax.random.PRNGKey(60)
    graphdef, params = nnx.split(model)
    for est, s in [("pathwise", 1), ("score", 1), ("score_loo", 3)]:
        loss = G.estimator_loss(est, s)
        fn = lambda p: loss(nnx.merge(graphdef, p), x, key, 0)  # noqa: E731
        (value, aux), grads = jax.value_and_grad(fn, has_aux=True)(params)
        # the value is the Monte Carlo -ELBO at the draws the loss used
        assert float(value) == pytest.approx(-float(jnp.mean(G.mc_elbo(model, x, key, s))), rel=1e-5)
        assert aux["rec"].shape == aux["kl"].shape == (8,) and float(aux["kl_weight"]) == 1.0
        # encoder gradient: the estimator's (with the sign of a loss to minimise)
        enc = G.encoder_gradient(model, x, key, est, s)
        for a, b in zip(_leaves(grads["encoder"]), _leaves(enc)):
            np.testing.assert_allclose(a, -b, rtol=1e-4, atol=1e-5)
        # decoder gradient: pathwise grad of -log p(x|z) at the same z, whatever the estimator
        from vae_core.models import sample_posterior
        from vae_core.objectives import decoder_log_likelihood
        z = sample_posterior(key, model.encode(x), s)
        dec = jax.grad(lambda p: -jnp.mean(decoder_log_likelihood(nnx.merge(graphdef, p), x, z)))(params)
        for a, b in zip(_leaves(grads["decoder"]), _leaves(dec["decoder"])):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="estimator"):
        G.estimator_loss("reinforce")
    with pytest.raises(ValueError, match="n_samples >= 2"):
        G.estimator_loss("score_loo", 1)


def test_training_with_each_estimator_runs_and_pathwise_improves():
    rng = np.random.default_rng(0)
    # two prototype patterns with 5% pixel noise: the code has something to learn
    protos = np.array([[1, 0] * 8, [0, 1] * 8], np.float32)
    x = protos[rng.integers(0, 2, 512)]
    x = np.abs(x - (rng.random(x.shape) < 0.05)).astype(np.float32)
    cfg = ModelConfig(latent_dim=2, hidden=(16,), image_shape=(4, 4))
    tcfg = TrainConfig(epochs=12, batch_size=32, learning_rate=3e-3, binarize=False)   # 16 steps per epoch
    out = {}
    for est, s in [("pathwise", 1), ("score", 1), ("score_loo", 2)]:
        out[est] = train(cfg, tcfg, x, x[:64], loss=G.estimator_loss(est, s), progress=False).history
        assert np.all(np.isfinite(out[est]["test_elbo"])) and len(out[est]["test_elbo"]) == 12
        assert np.all(np.isfinite(out[est]["train_loss"]))
    h = out["pathwise"]
    assert h["test_elbo"][-1] > h["test_elbo"][0] + 1.0
    # same seed, same initialisation and batches: only the encoder's gradient differs
    assert out["score"]["test_elbo"] != h["test_elbo"]


def test_mc_elbo_is_an_unbiased_estimate_of_the_analytic_kl_elbo(tiny_vae):
    from vae_core.objectives import elbo_terms
    model, x = tiny_vae
    mc = G.mc_elbo(model, x, jax.random.PRNGKey(50), 20_000)          # [S, b]
    analytic = jax.vmap(lambda k: elbo_terms(model, x, k)["elbo"])(jax.random.split(jax.random.PRNGKey(51), 20_000))
    se = np.sqrt(np.var(mc, 0) / mc.shape[0] + np.var(analytic, 0) / analytic.shape[0])
    assert np.all(np.abs(np.mean(mc, 0) - np.mean(analytic, 0)) < Z * se)
    assert np.all(se < 0.1)  # precise enough that a wrong sign or a missing term would be caught


# --------------------------------------------------------------------------- G-REP
GREP_N = 2**15


def _f_id(z):
    return z


def _f_log(z):
    return jnp.log(z)


def _f_quad(z):
    return (z - 3.0) ** 2


# E_{Gamma(alpha, beta)}[f] in closed form, differentiated by jax.grad for the exact gradients
CLOSED = {_f_id: lambda a, b: a / b,
          _f_log: lambda a, b: jax.scipy.special.digamma(a) - jnp.log(b),
          _f_quad: lambda a, b: a / b**2 + (a / b - 3.0) ** 2}


def _gamma_sample(alpha, beta, seed):
    """Gamma(alpha, rate beta) draws from numpy: an independent sampler, and no jax.random.gamma to compile."""
    return np.random.default_rng(seed).gamma(alpha, 1.0 / beta, GREP_N).astype(np.float32)


def _exact(f, alpha, beta):
    return np.asarray(jax.grad(CLOSED[f], argnums=(0, 1))(alpha, beta))


@pytest.mark.parametrize("f", list(CLOSED), ids=lambda f: f.__name__)
def test_grep_is_unbiased_where_the_expectation_has_a_closed_form(f):
    for alpha, beta in [(0.8, 1.0), (3.0, 2.5)]:
        z = _gamma_sample(alpha, beta, seed=int(10 * alpha))
        g = G.grep_terms(z, f, alpha, beta)
        assert g.rep.shape == g.corr.shape == g.total.shape == (GREP_N, 2)
        np.testing.assert_allclose(g.total, g.rep + g.corr, rtol=1e-6, atol=1e-6)
        exact = _exact(f, alpha, beta)
        for col in (0, 1):                                   # d/dalpha, d/dbeta
            mean, se = G.mean_with_error(g.total[:, col])
            # (+ float32 round-off: for log z the beta column is the constant -1/beta, with se = 0)
            assert abs(mean - exact[col]) < Z * se + 1e-5 * max(1.0, abs(exact[col])), (alpha, col, mean, se)
            assert se < 0.05 * max(1.0, abs(exact[col]))     # precise enough to catch a wrong term
        # eps's density has no beta in it, so the correction vanishes draw by draw in the beta column
        assert np.max(np.abs(g.corr[:, 1])) < 1e-3 * np.mean(np.abs(g.rep[:, 1]))


def test_grep_needs_its_correction_and_beats_the_score_function():
    alpha = 1.0
    z = _gamma_sample(alpha, 1.0, seed=3)
    g = G.grep_terms(z, _f_quad, alpha, 1.0)
    # both terms against the notebook's hand-derived formulas (beta = 1), with s = sqrt(psi_1):
    #   g_rep = f'(z) z (psi_1 + eps psi_2 / (2 s)),
    #   g_corr = f(z) [eps s + (alpha - z)(psi_1 + eps psi_2 / (2 s)) + psi_2 / (2 psi_1)]
    zz, eps = np.asarray(z[:200], np.float64), np.asarray(G.grep_standardize(z[:200], alpha, 1.0), np.float64)
    p1, p2 = (float(jax.scipy.special.polygamma(m, alpha)) for m in (1, 2))
    dT = p1 + eps * p2 / (2 * np.sqrt(p1))
    np.testing.assert_allclose(g.rep[:200, 0], 2 * (zz - 3.0) * zz * dT, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(g.corr[:200, 0], (zz - 3.0) ** 2 * (eps * np.sqrt(p1) + (alpha - zz) * dT
                                                                    + p2 / (2 * p1)), rtol=2e-3, atol=2e-3)
    exact = _exact(_f_quad, alpha, 1.0)[0]
    mean, se = G.mean_with_error(g.rep[:, 0])
    assert abs(mean - exact) > Z * se                        # the pathwise term alone is biased here
    mean, se = G.mean_with_error(g.total[:, 0])
    assert abs(mean - exact) < Z * se
    # the score function at the same draws: f(z) d/dalpha log q(z) = f(z) (log z - psi(alpha))
    score = np.asarray(_f_quad(z) * (np.log(z) - float(jax.scipy.special.digamma(alpha))), np.float64)
    v_grep, v_grep_se = G.variance_with_error(g.total[:, 0])
    v_score, v_score_se = G.variance_with_error(score)
    assert v_grep + Z * v_grep_se < v_score - Z * v_score_se


def test_grep_eps_is_standardised_and_its_density_is_the_change_of_variables():
    z = np.array([0.01, 0.4, 1.0, 2.5, 9.0], np.float32)
    from scipy import stats
    for alpha, beta in [(0.3, 1.0), (1.0, 3.0), (5.0, 0.5)]:
        np.testing.assert_allclose(G.gamma_log_density(z, alpha, beta),
                                   stats.gamma(alpha, scale=1 / beta).logpdf(z), rtol=1e-5, atol=1e-5)
        eps = G.grep_standardize(z, alpha, beta)
        np.testing.assert_allclose(G.grep_transform(eps, alpha, beta), z, rtol=1e-5)
        # log q(eps) = log q_gamma(T(eps)) + log |dT/deps|, with the Jacobian from autodiff
        dT = jax.vmap(jax.grad(lambda e: G.grep_transform(e, alpha, beta)))(eps)
        np.testing.assert_allclose(G.grep_eps_log_density(eps, alpha, beta),
                                   G.gamma_log_density(z, alpha, beta) + np.log(dT), rtol=1e-4, atol=1e-4)
    # by quadrature: a density with mean 0 and variance 1, whose skewness depends on alpha (and not on beta)
    grid = np.linspace(-45.0, 10.0, 55_001)
    log_q = jax.jit(G.grep_eps_log_density)
    for alpha in (0.3, 1.0, 5.0):
        skews = []
        for beta in (1.0, 3.0):
            q = np.exp(np.asarray(log_q(jnp.asarray(grid), alpha, beta), np.float64))
            assert np.trapezoid(q, grid) == pytest.approx(1.0, abs=1e-4)
            assert np.trapezoid(grid * q, grid) == pytest.approx(0.0, abs=1e-4)
            assert np.trapezoid(grid**2 * q, grid) == pytest.approx(1.0, abs=1e-4)
            skews.append(np.trapezoid(grid**3 * q, grid))
        assert skews[0] == pytest.approx(skews[1], abs=1e-4)
        assert skews[0] == pytest.approx(float(G.log_gamma_skewness(alpha)), abs=1e-3)
    assert float(G.log_gamma_skewness(0.3)) < float(G.log_gamma_skewness(5.0)) < 0


def test_grep_gradient_draws_with_its_key_and_estimates_trigamma():
    key, alpha, beta = jax.random.PRNGKey(7), 2.0, 1.5
    g = G.grep_gradient(key, _f_log, alpha, beta, GREP_N)
    z = G.gamma_draws(key, alpha, beta, GREP_N)
    np.testing.assert_array_equal(g.total, G.grep_terms(z, _f_log, alpha, beta).total)  # the same draws
    mean, se = G.mean_with_error(z)
    assert abs(mean - alpha / beta) < Z * se
    mean, se = G.mean_with_error(g.total[:, 0])              # d/dalpha E[log z] = psi_1(alpha)
    assert abs(mean - float(jax.scipy.special.polygamma(1, alpha))) < Z * se
    assert not np.array_equal(G.grep_gradient(jax.random.PRNGKey(8), _f_log, alpha, beta, GREP_N).total, g.total)


# --------------------------------------------------------------------------- explorer
@pytest.fixture(scope="module")
def explorer():
    return G.EstimatorExplorer()


def test_estimator_explorer_renders_without_a_front_end(explorer):
    from vae_core.widgets import Explorer

    assert isinstance(explorer, Explorer)
    fig, ax = explorer.figure, explorer.ax
    plain = explorer.render(-3.0, 1, False)
    assert explorer.figure is fig and explorer.ax is ax and explorer.state == (-3.0, 1, False)
    assert len(ax.patches) == 2 * 60 and "k = -3" in ax.get_title()    # two histograms of 60 bins
    assert plain["exact"] == 8.0 and plain["b"] == 0.0
    for name, exact in (("pathwise", 4.0), ("score", 495.0)):
        assert plain[f"{name}_var_exact"] == exact
        assert abs(plain[f"{name}_var"] - exact) < Z * plain[f"{name}_var_se"]
        assert abs(plain[f"{name}_mean"] - 8.0) < Z * plain[f"{name}_se"]
    based = explorer.values(-3.0, 1, True)
    assert based["b"] == 17.0 and based["score_var_exact"] == 138.0    # b = E f = d^2 + 1, 8 d^2 + 10
    assert based["score_var"] + Z * based["score_var_se"] < plain["score_var"] - Z * plain["score_var_se"]
    assert based["pathwise_var"] == plain["pathwise_var"]             # the same draws: a fixed key
    assert explorer.values(-3.0, 1, False) == plain                   # reproducible
    assert explorer.png()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="n_samples"):
        explorer.values(0.0, 0, False)


def test_estimator_explorer_grid_and_widget(explorer):
    fig, rows = explorer.grid(ks=(1.0, -3.0), n_samples=1)
    assert len(fig.axes) == 4 and [(r["k"], r["baseline"]) for r in rows] == [
        (1.0, False), (-3.0, False), (1.0, True), (-3.0, True)]
    for off, on in zip(rows[:2], rows[2:]):                           # the baseline helps at every k
        assert on["score_var"] < off["score_var"] and on["score_var_exact"] < off["score_var_exact"]
    w = explorer.widget
    assert w is explorer.widget and explorer.n_slider.options == (1, 2, 4, 8, 16, 32, 64, 128)
    explorer.baseline_box.value = not explorer.state[2]
    assert explorer.state[2] == explorer.baseline_box.value and "variance" in explorer.readout.value
    assert explorer.image.value[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- exercises
from exercise_tools import check_exercises  # noqa: E402


@pytest.mark.parametrize("sigma, k", [(0.5, -1.0), (2.0, -3.0), (3.0, 1.0)])
def test_score_variance_at_any_sigma_matches_draws(sigma, k):
    # exercise 4's answer, d^4 / sigma^2 + 14 d^2 + 15 sigma^2, against 2**16 draws away from sigma = 1
    draws = G.draw_estimates(jax.random.PRNGKey(70), 1.0, sigma, k, estimator="score", n_seeds=N_SEEDS)
    var, vse = G.variance_with_error(draws[:, 0])
    d = 1.0 - k
    assert abs(var - (d**4 / sigma**2 + 14 * d**2 + 15 * sigma**2)) < Z * vse
    assert G.closed_forms(k, sigma=sigma)["score_var_mu"] == pytest.approx(d**4 / sigma**2 + 14 * d**2 + 15 * sigma**2)
    # and the sigma = 1 formula is clearly wrong there
    assert abs(var - (d**4 + 14 * d**2 + 15)) > Z * vse


def _not_yet(verdict):
    return not verdict.passed and verdict.hint and "Not yet." in str(verdict)


@pytest.fixture(scope="module")
def sigma_draws():
    return G.draw_estimates(jax.random.PRNGKey(71), 1.0, 2.0, -3.0, estimator="pathwise", n_seeds=2**16)


def test_check_pathwise_sigma_variance(sigma_draws):
    assert _not_yet(G.check_pathwise_sigma_variance(None))
    assert _not_yet(G.check_pathwise_sigma_variance(sigma_draws))            # both columns
    assert _not_yet(G.check_pathwise_sigma_variance(sigma_draws[:, 0]))      # d/dmu: variance 16
    assert _not_yet(G.check_pathwise_sigma_variance(sigma_draws[:1000, 1]))  # too few draws
    at_sigma_1 = G.draw_estimates(jax.random.PRNGKey(72), 1.0, 1.0, -3.0, estimator="pathwise", n_seeds=2**16)
    assert _not_yet(G.check_pathwise_sigma_variance(at_sigma_1[:, 1]))       # variance 72, mean 2
    assert G.check_pathwise_sigma_variance(sigma_draws[:, 1]).passed


def test_check_best_baseline():
    assert _not_yet(G.check_best_baseline(None, None))
    assert _not_yet(G.check_best_baseline(lambda d: d**2 + 1.0, "b"))         # the mean of f
    assert _not_yet(G.check_best_baseline(lambda d: d**2 + 3.0, None))
    assert _not_yet(G.check_best_baseline(lambda d: d**2 + 3.0, "c"))
    assert _not_yet(G.check_best_baseline(lambda d: d**2 + 3.0, "e"))
    assert G.check_best_baseline(lambda d: d**2 + 3.0, "B").passed


def test_check_gamma_log_gradient():
    # synthetic draws centred on the trigamma values (the real draws run in the notebook test)
    rng = np.random.default_rng(0)
    exact = {a: float(jax.scipy.special.polygamma(1, a)) for a in (0.5, 4.0)}
    right = {(a, name): exact[a] + rng.normal(0.0, 1.0, 2**14) for a in (0.5, 4.0) for name in ("pathwise", "score")}
    assert _not_yet(G.check_gamma_log_gradient(None))
    assert _not_yet(G.check_gamma_log_gradient({(0.5, "pathwise"): right[0.5, "pathwise"]}))
    swapped = {(a, name): right[4.5 - a, name] for a, name in right}
    assert _not_yet(G.check_gamma_log_gradient(swapped))
    # the quadratic test function's derivative 1 + 2 alpha (k = 0) instead of psi'(alpha)
    quadratic = {(a, name): 1 + 2 * a + rng.normal(0.0, 1.0, 2**14) for a, name in right}
    assert _not_yet(G.check_gamma_log_gradient(quadratic))
    assert _not_yet(G.check_gamma_log_gradient({**right, (4.0, "score"): right[4.0, "score"][:100]}))
    assert G.check_gamma_log_gradient(right).passed


def test_check_score_variance():
    def blank(d, sigma):
        ...

    sigma_one = G.check_score_variance(lambda d, s: d**4 + 14 * d**2 + 15)
    assert _not_yet(sigma_one) and "Right at sigma = 1" in sigma_one.message
    assert _not_yet(G.check_score_variance(None))
    assert _not_yet(G.check_score_variance(blank))
    assert _not_yet(G.check_score_variance(lambda d, s: d**4 / s**2 + 14 * d**2 + 15 * s**4))
    assert "raised" in G.check_score_variance(lambda d, s: 1 / (s - s)).message
    assert G.check_score_variance(lambda d, s: d**4 / s**2 + 14 * d**2 + 15 * s**2).passed


def _namespace():
    return {"np": np, "jax": jax, "jnp": jnp, "G": G}


def test_exercises_check_themselves():
    assert check_exercises("03_reparameterization_gradients.ipynb", _namespace, min_count=4) == 4
