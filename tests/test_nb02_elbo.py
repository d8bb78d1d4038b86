"""Tests of course.nb02_elbo: the exact 1-d model's closed forms against vae_core.toy,
quadrature and Monte Carlo; the q fits; the engine's bounds on the fixed-q VAE; the
reconstruction losses; the explorer's in-place redraw; the forward and reverse KL fits to a
two-mode target by quadrature."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.optimize import minimize

from course import nb02_elbo as E
from vae_core.objectives import bernoulli_log_likelihood, gaussian_log_likelihood
from vae_core.widgets import Explorer

MODEL = E.Exact1D(w=2.0, b=0.5, sigma=1.0)
X = 3.0
GRID = jnp.linspace(-12.0, 12.0, 48001)


def test_closed_forms_match_linear_gaussian():
    lg = MODEL.as_linear_gaussian()
    xs = np.array([[-1.0], [0.3], [3.0]])
    for x in xs[:, 0]:
        assert float(E.log_evidence(MODEL, x)) == pytest.approx(float(lg.log_evidence(np.array([[x]]))[0]), abs=1e-5)
        pm, ps = E.posterior(MODEL, x)
        m_ref, c_ref = lg.posterior(np.array([[x]]))
        assert float(pm) == pytest.approx(float(m_ref[0, 0]), abs=1e-6)
        assert float(ps) ** 2 == pytest.approx(float(c_ref[0, 0]), abs=1e-6)
        for mu, sd in [(0.5, 0.6), (-1.0, 1.3), (2.0, 0.1)]:
            ref_elbo = float(lg.elbo(np.array([[x]]), jnp.array([[mu]]), jnp.array([[sd**2]]))[0])
            ref_kl = float(lg.kl_to_posterior(np.array([[x]]), jnp.array([[mu]]), jnp.array([[sd**2]]))[0])
            assert float(E.gaussian_elbo(MODEL, x, mu, sd)) == pytest.approx(ref_elbo, abs=1e-4)
            assert float(E.gaussian_kl_to_posterior(MODEL, x, mu, sd)) == pytest.approx(ref_kl, abs=1e-4)
            # the two routes to the ELBO agree, and ELBO + KL = log p(x)
            route2 = E.gaussian_expected_loglik(MODEL, x, mu, sd) - E.gaussian_kl_to_prior(mu, sd)
            assert float(E.gaussian_elbo(MODEL, x, mu, sd)) == pytest.approx(float(route2), abs=1e-4)
            total = E.gaussian_elbo(MODEL, x, mu, sd) + E.gaussian_kl_to_posterior(MODEL, x, mu, sd)
            assert float(total) == pytest.approx(float(E.log_evidence(MODEL, x)), abs=1e-4)


def test_densities_against_scipy():
    z = np.array([-1.0, 0.2, 2.5])
    assert np.allclose(E.gaussian_logpdf(z, 0.3, 0.7), stats.norm(0.3, 0.7).logpdf(z), atol=1e-5)
    assert np.allclose(E.gamma_logpdf(z[1:], 3.0, 2.0), stats.gamma(3.0, scale=0.5).logpdf(z[1:]), atol=1e-5)
    assert float(E.gamma_logpdf(jnp.array(-1.0), 3.0, 2.0)) == -np.inf
    assert float(E.gamma_entropy(3.0, 2.0)) == pytest.approx(stats.gamma(3.0, scale=0.5).entropy(), abs=1e-5)
    assert float(E.gaussian_entropy(0.7)) == pytest.approx(stats.norm(0, 0.7).entropy(), abs=1e-6)
    m1, m2 = E.gamma_moments(3.0, 2.0)
    assert (float(m1), float(m2)) == pytest.approx((1.5, 3.0))


def test_quadrature_checks_evidence_posterior_and_elbos():
    assert float(E.quadrature_evidence(MODEL, X, GRID)) == pytest.approx(float(E.log_evidence(MODEL, X)), abs=1e-5)
    lj = E.log_joint(MODEL, X, GRID)
    # Bayes: p(z|x) = p(x, z) / p(x) is the closed-form posterior
    pm, ps = E.posterior(MODEL, X)
    bayes = np.exp(lj - E.log_evidence(MODEL, X))
    assert np.max(np.abs(bayes - np.exp(E.gaussian_logpdf(GRID, pm, ps)))) < 1e-5
    # Gaussian q and gamma q: E_q[log p(x,z) - log q(z)] by quadrature = closed forms
    lq = E.gaussian_logpdf(GRID, 0.4, 0.8)
    assert float(E.quadrature_expectation(lq, lj - lq, GRID)) == pytest.approx(
        float(E.gaussian_elbo(MODEL, X, 0.4, 0.8)), abs=1e-4)
    lq = E.gamma_logpdf(GRID, 4.0, 3.0)
    assert float(E.quadrature_expectation(lq, lj - lq, GRID)) == pytest.approx(
        float(E.gamma_elbo(MODEL, X, 4.0, 3.0)), abs=1e-4)
    # Jensen: E_q[p(x,z)/q(z)] = p(x) exactly (for a q covering the posterior)
    lq = E.gaussian_logpdf(GRID, 0.4, 0.8)
    mean_w = E.quadrature_expectation(lq, jnp.exp(lj - lq), GRID)
    assert float(jnp.log(mean_w)) == pytest.approx(float(E.log_evidence(MODEL, X)), abs=1e-5)


def test_monte_carlo_elbo_within_standard_error_for_both_families():
    key_n, key_g = jax.random.split(jax.random.PRNGKey(1))
    n = 20000
    z = 0.4 + 0.8 * jax.random.normal(key_n, (n,))
    est, se = E.monte_carlo_elbo(z, E.gaussian_logpdf(z, 0.4, 0.8), MODEL, X)
    assert abs(float(est) - float(E.gaussian_elbo(MODEL, X, 0.4, 0.8))) < 4 * float(se)
    assert 0 < float(se) < 0.05
    z = jax.random.gamma(key_g, 4.0, (n,)) / 3.0
    est, se = E.monte_carlo_elbo(z, E.gamma_logpdf(z, 4.0, 3.0), MODEL, X)
    assert abs(float(est) - float(E.gamma_elbo(MODEL, X, 4.0, 3.0))) < 4 * float(se)


def test_fit_gaussian_reaches_posterior_and_gamma_does_not():
    g = E.fit_q(MODEL, X, "gaussian", init=(-1.0, 1.5))
    pm, ps = E.posterior(MODEL, X)
    assert g.params == pytest.approx((float(pm), float(ps)), abs=1e-3)
    assert abs(g.gap) < 1e-5
    r = E.fit_q(MODEL, X, "gamma", init=(2.0, 2.0))
    assert r.gap > 0.01
    assert len(r.history["elbo"]) == 1500 and r.history["params"].shape == (1500, 2)
    # Adam's optimum agrees with a derivative-free optimiser's to 1e-3 nats
    f = lambda u: -float(E.gamma_elbo(MODEL, X, np.exp(u[0]), np.exp(u[1])))  # noqa: E731
    res = minimize(f, [0.0, 0.0], method="Nelder-Mead", options=dict(xatol=1e-7, fatol=1e-9, maxiter=4000))
    best_gap = float(E.log_evidence(MODEL, X)) + res.fun
    assert r.gap == pytest.approx(best_gap, abs=1e-3)
    with pytest.raises(ValueError, match="family"):
        E.fit_q(MODEL, X, "beta")
    with pytest.raises(ValueError, match="positive"):
        E.fit_q(MODEL, X, "gamma", init=(-1.0, 2.0))


def test_fixed_q_vae_runs_engine_bounds():
    vae = E.fixed_q_vae(MODEL, 0.2, 0.9)
    x = jnp.array([[X], [0.0]], jnp.float32)
    # the encoder ignores x: the same q for both inputs
    post = vae.encode(x)
    assert np.allclose(post.mean[:, 0], 0.2) and np.allclose(jnp.exp(0.5 * post.log_diag[:, 0]), 0.9, atol=1e-6)
    # the decoder is the exact model: log p(x, z) is the 1-d log joint
    from vae_core.objectives import log_joint
    z = jnp.array([[[-0.7], [1.3]]])
    assert np.allclose(log_joint(vae, x, z)[0], E.log_joint(MODEL, x[:, 0], z[0, :, 0]), atol=1e-5)
    est, se = E.engine_monte_carlo_elbo(vae, x, jax.random.PRNGKey(0), 20000)
    for i, xi in enumerate([X, 0.0]):
        assert abs(float(est[i]) - float(E.gaussian_elbo(MODEL, xi, 0.2, 0.9))) < 4 * float(se[i])
    means, errs = E.iwae_curve(vae, x[:1], jax.random.PRNGKey(2), [1, 10, 1000], repeats=400)
    logpx = float(E.log_evidence(MODEL, X))
    assert means[0] == pytest.approx(float(E.gaussian_elbo(MODEL, X, 0.2, 0.9)), abs=4 * errs[0])
    assert means[0] < means[1] < means[2] <= logpx + 4 * errs[2]
    assert logpx - means[2] < 0.01
    # with the exact posterior as q every L_k equals log p(x)
    pm, ps = E.posterior(MODEL, X)
    vae = E.fixed_q_vae(MODEL, float(pm), float(ps))
    means, _ = E.iwae_curve(vae, x[:1], jax.random.PRNGKey(3), [1, 7], repeats=[10, 3])
    assert np.allclose(means, logpx, atol=1e-4)
    with pytest.raises(ValueError, match="repeats"):
        E.iwae_curve(vae, x[:1], jax.random.PRNGKey(3), [1, 7], repeats=[10])
    with pytest.raises(ValueError, match="std"):
        E.fixed_q_vae(MODEL, 0.0, 0.0)


def test_reconstruction_losses_match_engine_likelihoods():
    rng = np.random.default_rng(0)
    x = (rng.random((4, 30)) < 0.4).astype(np.float32)
    logits = rng.normal(size=(4, 30)).astype(np.float32)
    probs = jax.nn.sigmoid(logits)
    assert np.allclose(-E.cross_entropy(x, probs), bernoulli_log_likelihood(logits, x), atol=1e-4)
    sigma = 0.3
    gauss = gaussian_log_likelihood(probs, x, jnp.log(sigma))
    by_hand = -E.squared_error(x, probs) / (2 * sigma**2) - 30 * (math.log(sigma) + 0.5 * math.log(2 * math.pi))
    assert np.allclose(gauss, by_hand, atol=1e-3)
    assert float(E.squared_error(np.ones((1, 3)), np.zeros((1, 3)))[0]) == 3.0
    # clipping keeps the textbook form finite at p = 0 or 1
    assert np.isfinite(float(E.cross_entropy(np.ones((1, 2)), np.array([[0.0, 1.0]]))[0]))


def test_explorer_renders_in_place():
    ex = E.ELBOExplorer(MODEL, X)
    assert isinstance(ex, Explorer)
    fig, line = ex.figure, ex.q_line
    v = ex.render(0.3, 0.9)
    assert ex.figure is fig and ex.q_line is line
    assert v["elbo"] + v["kl"] == pytest.approx(v["log_evidence"], abs=1e-4)
    assert v["kl"] > 0
    assert np.allclose(line.get_ydata(), stats.norm(0.3, 0.9).pdf(ex.z), atol=1e-5)
    assert [b.get_height() for b in ex.bars] == pytest.approx([v["log_evidence"], v["elbo"], v["kl"]])
    pm, ps = ex.posterior
    assert ex.render(pm, ps)["kl"] == pytest.approx(0.0, abs=1e-5)
    assert ex.png()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="positive std"):
        ex.render(0.0, -1.0)


def test_explorer_widget_is_built_once_and_follows_the_sliders():
    ex = E.ELBOExplorer(MODEL, X)
    w = ex.widget
    assert w is ex.widget
    ex.mean_slider.value = 1.5
    assert ex.state[0] == pytest.approx(1.5)
    assert "ELBO" in ex.readout.value
    assert ex.image.value[:8] == b"\x89PNG\r\n\x1a\n"


def test_explorer_gamma_family_has_the_sliders_mean_and_std():
    ex = E.ELBOExplorer(MODEL, X)
    pm, ps = ex.posterior
    a, r = E.gamma_from_moments(pm, ps)
    m1, m2 = E.gamma_moments(a, r)
    assert float(m1) == pytest.approx(pm, rel=1e-6) and float(m2 - m1**2) == pytest.approx(ps**2, rel=1e-6)
    v = ex.render(pm, ps, "gamma")
    assert v["elbo"] == pytest.approx(float(E.gamma_elbo(MODEL, X, a, r)), abs=1e-6)
    assert v["kl"] == pytest.approx(v["log_evidence"] - v["elbo"], abs=1e-9) and v["kl"] > 0.01  # cannot reach it
    assert np.allclose(ex.q_line.get_ydata(), stats.gamma(a, scale=1 / r).pdf(ex.z), atol=1e-4)
    assert ex.state == (pytest.approx(pm), pytest.approx(ps), "gamma")
    assert "Gamma(α=5.00, β=5.00)" in ex.ax_q.get_title()
    assert ex.values(pm, ps)["kl"] == pytest.approx(0.0, abs=1e-5)  # the Gaussian default is unchanged
    with pytest.raises(ValueError, match="positive mean"):
        ex.render(-0.5, 1.0, "gamma")
    with pytest.raises(ValueError, match="family must be one of"):
        ex.values(1.0, 1.0, "beta")


def test_explorer_family_buttons_move_the_mean_floor():
    ex = E.ELBOExplorer(MODEL, X)
    ex.widget
    ex.mean_slider.value = -1.0
    ex.family_buttons.value = "gamma"  # the mean slider's floor moves up to a positive mean, drawn once
    assert ex.mean_slider.min == pytest.approx(ex.gamma_min_mean) and ex.state[2] == "gamma"
    assert ex.state[0] == pytest.approx(ex.gamma_min_mean)
    ex.family_buttons.value = "gaussian"
    assert ex.mean_slider.min == pytest.approx(-2.0) and ex.state[2] == "gaussian"


def test_explorer_snapshots_title_each_state_with_its_elbo_and_kl():
    ex = E.ELBOExplorer(MODEL, X)
    states = [(0.0, 1.0), (1.0, 0.45, "gamma")]
    fig = ex.snapshots(states, ncols=2)
    assert len(fig.axes) == 2 and fig.axes[0].get_images()[0].get_array().shape == (340, 900, 4)
    for ax, st in zip(fig.axes, states):
        v = ex.values(*st)
        assert ax.get_title() == f"q = {ex.q_label(*st)}:  ELBO {v['elbo']:.3f},  KL {v['kl']:.3f}"


def test_two_for_one_fit_reaches_max_likelihood_and_exact_posteriors():
    data = MODEL.as_linear_gaussian().sample(np.random.default_rng(0), 200)[:, 0]
    r = E.fit_two_for_one(data, sigma=1.0, steps=2000)
    w_ml, b_ml = math.sqrt(data.var() - 1.0), data.mean()
    assert abs(r["w"]) == pytest.approx(w_ml, abs=1e-3)
    assert r["b"] == pytest.approx(b_ml, abs=1e-3)
    # the encoder side ends at the exact posteriors: the summed KL is ~0
    assert r["kl"][-1] < 1e-2 and r["kl"][0] > 1.0
    assert r["elbo"][-1] > r["elbo"][0]
    assert np.allclose(r["elbo"] + r["kl"], r["log_evidence"], atol=1e-2)
    pm, ps = E.posterior(E.Exact1D(r["w"], r["b"], 1.0), jnp.asarray(data))
    assert np.allclose(r["q_mean"], pm, atol=1e-2) and np.allclose(r["q_std"], ps, atol=1e-2)
    with pytest.raises(ValueError, match="1-d"):
        E.fit_two_for_one(np.zeros((3, 2)))


# ----------------------------------------------------------------------------- KL asymmetry
KL_GRID = np.linspace(-15.0, 15.0, 6001)
LOG_P2 = E.bimodal_logpdf(KL_GRID)  # 0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2)


def _gauss_kl(m1, s1, m2, s2):
    """Closed form KL(N(m1, s1^2) || N(m2, s2^2))."""
    return math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5


def test_bimodal_logpdf_is_the_normalised_mixture():
    z = np.array([-3.0, -2.0, 0.0, 0.7, 2.0])
    ref = np.log(0.5 * stats.norm(-2, 0.5).pdf(z) + 0.5 * stats.norm(2, 0.5).pdf(z))
    assert np.allclose(E.bimodal_logpdf(z), ref, atol=1e-12)
    assert E.bimodal_logpdf(z).dtype == np.float64 and E.bimodal_logpdf(np.zeros((2, 3))).shape == (2, 3)
    assert np.exp(LOG_P2).sum() * (KL_GRID[1] - KL_GRID[0]) == pytest.approx(1.0, abs=1e-10)
    assert np.allclose(LOG_P2, LOG_P2[::-1], atol=1e-12)  # symmetric about 0
    # far out in the tails log p stays finite (logsumexp), so KL(q || p) never meets log 0
    assert np.isfinite(E.bimodal_logpdf(np.array([-40.0, 40.0]))).all()
    with pytest.raises(ValueError, match="positive std"):
        E.bimodal_logpdf(z, std=0.0)


def test_kl_by_quadrature_matches_gaussian_closed_form():
    pairs = [(0.3, 0.7, -1.0, 1.6), (2.0, 0.5, 0.0, 2.0615528), (0.0, 2.0, 1.5, 0.4), (1.0, 1.0, 1.0, 1.0)]
    for m1, s1, m2, s2 in pairs:
        lp, lq = stats.norm(m1, s1).logpdf(KL_GRID), stats.norm(m2, s2).logpdf(KL_GRID)
        assert E.kl_by_quadrature(lp, lq, KL_GRID) == pytest.approx(_gauss_kl(m1, s1, m2, s2), abs=1e-6)
        assert E.kl_by_quadrature(lq, lp, KL_GRID) == pytest.approx(_gauss_kl(m2, s2, m1, s1), abs=1e-6)
        fwd, rev = E.gaussian_kl_pair(lp, KL_GRID, m2, s2)
        assert (fwd, rev) == pytest.approx((_gauss_kl(m1, s1, m2, s2), _gauss_kl(m2, s2, m1, s1)), abs=1e-6)
    # broadcasting: many q at once, one KL each
    means, stds = np.array([-1.0, 0.0, 2.0]), np.array([0.5, 1.0, 2.0])
    fwd, rev = E.gaussian_kl_pair(stats.norm(0.0, 1.0).logpdf(KL_GRID), KL_GRID, means, stds)
    assert fwd.shape == rev.shape == (3,)
    assert np.allclose(fwd, [_gauss_kl(0, 1, m, s) for m, s in zip(means, stds)], atol=1e-6)
    assert np.allclose(rev, [_gauss_kl(m, s, 0, 1) for m, s in zip(means, stds)], atol=1e-6)


def test_kl_is_nonnegative_and_asymmetric():
    rng = np.random.default_rng(0)
    means, stds = rng.uniform(-3, 3, 200), rng.uniform(0.2, 2.0, 200)  # q negligible beyond the grid
    fwd, rev = E.gaussian_kl_pair(LOG_P2, KL_GRID, means, stds)
    assert np.all(fwd >= -1e-12) and np.all(rev >= -1e-12)
    assert np.all(np.abs(fwd - rev) > 1e-3)  # no Gaussian is equally far from p both ways here
    # KL(p || p) = 0
    assert E.kl_by_quadrature(LOG_P2, LOG_P2, KL_GRID) == pytest.approx(0.0, abs=1e-12)
    # the best forward and best reverse fits are each the better one under their own direction
    f, r = E.fit_forward_kl(LOG_P2, KL_GRID), E.fit_reverse_kl(LOG_P2, KL_GRID, init=(1.0, 1.0))
    (f_fwd, f_rev), (r_fwd, r_rev) = E.gaussian_kl_pair(LOG_P2, KL_GRID, *f), E.gaussian_kl_pair(LOG_P2, KL_GRID, *r)
    assert f_fwd < r_fwd and r_rev < f_rev
    assert r_fwd > 10 * f_fwd and f_rev > 2 * r_rev  # and poor under the other
    # no random Gaussian beats either fit in its own direction
    assert np.all(fwd >= f_fwd - 1e-12) and np.all(rev >= r_rev - 1e-12)


def test_forward_fit_is_moment_matching():
    m, s = E.fit_forward_kl(LOG_P2, KL_GRID)
    assert (m, s**2) == pytest.approx((0.0, 0.5**2 + 2.0**2), abs=1e-9)
    # an asymmetric target too: mean = mean of the centres, variance = std^2 + var(centres)
    log_p = E.bimodal_logpdf(KL_GRID, centres=(-1.0, 3.0, 4.0), std=0.7)
    m, s = E.fit_forward_kl(log_p, KL_GRID)
    c = np.array([-1.0, 3.0, 4.0])
    assert (m, s**2) == pytest.approx((c.mean(), 0.49 + c.var()), abs=1e-9)
    # and it is the minimiser: moving m or s either way raises KL(p || q)
    best = E.gaussian_kl_pair(log_p, KL_GRID, m, s)[0]
    for dm, ds in [(0.05, 0), (-0.05, 0), (0, 0.05), (0, -0.05)]:
        assert E.gaussian_kl_pair(log_p, KL_GRID, m + dm, s + ds)[0] > best + 1e-5
    # a grid that misses part of p is refused
    with pytest.raises(ValueError, match="integrates"):
        E.fit_forward_kl(LOG_P2[3000:], KL_GRID[3000:])
    with pytest.raises(ValueError, match="same shape"):
        E.fit_forward_kl(LOG_P2[:-1], KL_GRID)


def test_reverse_fit_sits_on_one_mode_and_the_start_picks_which():
    m, s = E.fit_reverse_kl(LOG_P2, KL_GRID, init=(1.0, 1.0))
    assert m == pytest.approx(2.0, abs=0.01) and s == pytest.approx(0.5, abs=0.01)
    mm, ms = E.fit_reverse_kl(LOG_P2, KL_GRID, init=(-1.0, 1.0))
    assert (mm, ms) == pytest.approx((-m, s), abs=1e-6)  # the mirror solution
    # q covers half of p's mass, where p is about q / 2: KL(q || p) is just under log 2
    rev = E.gaussian_kl_pair(LOG_P2, KL_GRID, m, s)[1]
    assert math.log(2) - 1e-3 < rev < math.log(2)
    # a derivative-free optimiser on the same quadrature objective agrees
    f = lambda u: E.gaussian_kl_pair(LOG_P2, KL_GRID, u[0], math.exp(u[1]))[1]  # noqa: E731
    res = minimize(f, [1.0, 0.0], method="Nelder-Mead", options=dict(xatol=1e-9, fatol=1e-13, maxiter=4000))
    assert (m, s) == pytest.approx((res.x[0], math.exp(res.x[1])), abs=1e-5)
    assert rev == pytest.approx(res.fun, abs=1e-10)
    # the symmetric Gaussian centred between the modes (the forward fit) is worse
    assert E.gaussian_kl_pair(LOG_P2, KL_GRID, *E.fit_forward_kl(LOG_P2, KL_GRID))[1] > rev + 0.5
    with pytest.raises(ValueError, match="positive std"):
        E.fit_reverse_kl(LOG_P2, KL_GRID, init=(1.0, 0.0))


# ----------------------------------------------------------------------------- exercises
from tests.exercise_tools import check_exercises  # noqa: E402


def _hinted_failure(verdict):
    return not verdict and verdict.hint and "Hint:" in str(verdict)


def _my_elbo(x, mu, vs, w, b, sigma):
    return (-((x - b - w * mu) ** 2 + w**2 * vs**2) / (2 * sigma**2) - np.log(sigma) - 0.5 * np.log(2 * np.pi)
            - 0.5 * (mu**2 + vs**2 - 1 - np.log(vs**2)))


def _my_best_q(x, w, b, sigma):
    s2 = 1 / (1 + w**2 / sigma**2)
    return s2 * w * (x - b) / sigma**2, np.sqrt(s2)


def test_check_best_gaussian():
    assert E.check_best_gaussian(_my_elbo, _my_best_q)
    notebook_only = lambda x, mu, vs, w, b, sigma: _my_elbo(x, mu, vs, 2.0, 0.5, 1.0)  # noqa: E731
    no_entropy = lambda x, mu, vs, w, b, sigma: _my_elbo(x, mu, vs, w, b, sigma) - np.log(vs)  # noqa: E731
    for verdict in (E.check_best_gaussian(None, None), E.check_best_gaussian(_my_elbo, None),
                    E.check_best_gaussian(notebook_only, _my_best_q), E.check_best_gaussian(no_entropy, _my_best_q),
                    E.check_best_gaussian(_my_elbo, lambda x, w, b, sigma: (x - b) / w),
                    E.check_best_gaussian(_my_elbo, lambda x, w, b, sigma: (1.0, 0.4472)),
                    E.check_best_gaussian(lambda *a: 1 / 0, _my_best_q)):
        assert _hinted_failure(verdict)


def _shifted(alpha, beta, c):
    m1 = c + alpha / beta
    return E.expected_log_joint(MODEL, X, m1, m1**2 + alpha / beta**2) + E.gamma_entropy(alpha, beta)


def test_check_shifted_gamma():
    # the closed form agrees with quadrature of E_q[log p(x, z) - log q(z)] for a shifted gamma
    for a, r, c in [(5.0, 3.0, -1.0), (12.0, 5.0, -0.8)]:
        lq = E.gamma_logpdf(GRID - c, a, r)
        quad = E.quadrature_expectation(lq, E.log_joint(MODEL, X, GRID) - lq, GRID)
        assert float(E.shifted_gamma_elbo(MODEL, X, a, r, c)) == pytest.approx(float(quad), abs=1e-4)
    unshifted = float(E.gamma_elbo(MODEL, X, 3.0, 2.0))
    assert float(E.shifted_gamma_elbo(MODEL, X, 3.0, 2.0, 0.0)) == pytest.approx(unshifted)
    assert E.check_shifted_gamma(_shifted, "b", MODEL, X)
    unshifted_mean = lambda a, r, c: _shifted(a, r, 0.0)  # noqa: E731
    for verdict in (E.check_shifted_gamma(None, None, MODEL, X), E.check_shifted_gamma(_shifted, None, MODEL, X),
                    E.check_shifted_gamma(unshifted_mean, "b", MODEL, X),
                    E.check_shifted_gamma(_shifted, "a", MODEL, X), E.check_shifted_gamma(_shifted, "e", MODEL, X)):
        assert _hinted_failure(verdict)


def _batch(seed=0, n=20, d=784):
    rng = np.random.default_rng(seed)
    x = (rng.random((n, d)) < 0.2).astype(np.float32)
    probs = jax.nn.sigmoid(jnp.asarray(rng.normal(-1.5, 1.5, (n, d)), jnp.float32))
    return x, probs


def test_check_best_sigma():
    x, probs = _batch()
    sse = np.asarray(E.squared_error(x, probs))
    best = float(np.sqrt(sse.mean() / x.shape[1]))
    ll = float(jnp.mean(gaussian_log_likelihood(probs, x, jnp.log(best))))
    # sigma* maximises the batch's mean log-likelihood
    for other in (0.9 * best, 1.1 * best):
        assert float(jnp.mean(gaussian_log_likelihood(probs, x, jnp.log(other)))) < ll
    assert ll == pytest.approx(-x.shape[1] / 2 * (1 + np.log(2 * np.pi) + np.log(sse.mean() / x.shape[1])), abs=1e-2)
    assert E.check_best_sigma(best, ll, x, probs)
    per_image = np.sqrt(sse / x.shape[1])  # one sigma per image is not what is asked
    for verdict in (E.check_best_sigma(None, None, x, probs), E.check_best_sigma(best, None, x, probs),
                    E.check_best_sigma(1.0, ll, x, probs), E.check_best_sigma(best**2, ll, x, probs),
                    E.check_best_sigma(per_image, ll, x, probs), E.check_best_sigma(best, ll + 1.0, x, probs)):
        assert _hinted_failure(verdict)


def test_check_kl_closed_form():
    right = lambda m, lv: 0.5 * jnp.sum(m**2 + jnp.exp(lv) - 1.0 - lv, -1)  # noqa: E731
    assert E.check_kl_closed_form(right)
    assert E.check_kl_closed_form(lambda m, lv: np.sum(E.gaussian_kl_to_prior(m, np.exp(0.5 * lv)), -1))
    for wrong in (None, lambda m, lv: ...,
                  lambda m, lv: 0.5 * jnp.sum(m**2 + jnp.exp(lv) - lv, -1),          # the -1 is missing
                  lambda m, lv: 0.5 * jnp.sum(m**2 + jnp.exp(0.5 * lv) - 1 - lv, -1),  # sigma for sigma^2
                  lambda m, lv: 0.5 * (m**2 + jnp.exp(lv) - 1.0 - lv),                 # not summed
                  lambda m, lv: 1 / 0):
        assert _hinted_failure(E.check_kl_closed_form(wrong))


def test_exercises_check_themselves():
    x_b, probs = _batch(1)

    def namespace():
        pm, ps = (float(v) for v in E.posterior(MODEL, X))
        return dict(np=np, jnp=jnp, jax=jax, E=E, gaussian_log_likelihood=gaussian_log_likelihood,
                    model=MODEL, x_obs=X, log_px=float(E.log_evidence(MODEL, X)), post_mean=pm, post_std=ps,
                    x_b=x_b, probs=probs, sse=np.asarray(E.squared_error(x_b, probs)), D=x_b.shape[1])

    assert check_exercises("02_elbo_derivation.ipynb", namespace, min_count=4) == 4
