"""The ELBO on a model where everything is exact (notebook 02).

The one-dimensional linear-Gaussian model

    z ~ N(0, 1),        x | z ~ N(w z + b, sigma^2)

has a closed-form evidence p(x) = N(x; b, w^2 + sigma^2) and posterior
p(z|x) = N(m, s^2) with s^2 = 1 / (1 + w^2 / sigma^2), m = s^2 w (x - b) / sigma^2.
Its log joint is a quadratic in z, so for ANY q(z) the expectation E_q[log p(x, z)]
needs only E_q[z] and E_q[z^2]; with q's entropy this gives the ELBO in closed form for
a Gaussian q and for a gamma q alike:

    ELBO(q) = E_q[log p(x, z)] + H(q),        KL(q || p(z|x)) = log p(x) - ELBO(q).

This module holds those formulas (in jax.numpy, so they can be differentiated and
optimised), a numerical quadrature to check them, a Monte Carlo ELBO estimator with its
standard error, fits of the best Gaussian and the best gamma q with optax, a VAE whose
encoder outputs a fixed q (so the engine's ``iwae_bound`` can be run on the exact
model), L_k curves, the by-hand reconstruction losses (squared error and cross-entropy),
:class:`ELBOExplorer`, an ipywidgets view with sliders for q's mean and std and a switch
between a Gaussian and a gamma q (a :class:`vae_core.widgets.Explorer`; its
``snapshots`` draws a static grid of states), and the forward and reverse KL fits of a Gaussian to a
two-mode target, computed exactly by quadrature (float64 NumPy, no sampling).

Engine models are Flax NNX modules: the functions here take the model itself (no
separate parameters) and split it (``nnx.split``) only where they jit.

The checkers of the notebook's exercises (``check_*``, each returning a
:class:`vae_core.exercises.Verdict`) compare the student's formulas with the closed forms
here and in :mod:`vae_core.objectives` at a few fixed random points.
"""
from __future__ import annotations

import io
import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.scipy.special import digamma, gammaln
from scipy.optimize import minimize
from scipy.special import logsumexp

from vae_core.exercises import Failed, Verdict, attempt, check_close, check_then_choose, is_blank
from vae_core.models import VAE
from vae_core.objectives import gaussian_log_likelihood, iwae_bound, kl_per_dim, log_importance_weights
from vae_core.toy import LinearGaussian
from vae_core.widgets import Explorer

LOG_2PI = math.log(2 * math.pi)

__all__ = ["Exact1D", "log_prior", "log_likelihood", "log_joint", "log_evidence", "posterior",
           "expected_log_joint", "gaussian_entropy", "gaussian_logpdf", "gaussian_elbo",
           "gaussian_expected_loglik", "gaussian_kl_to_prior", "gaussian_kl_to_posterior",
           "gamma_logpdf", "gamma_entropy", "gamma_moments", "gamma_elbo", "trapezoid",
           "quadrature_evidence", "quadrature_expectation", "monte_carlo_elbo", "fit_q", "FitResult",
           "fit_two_for_one", "engine_monte_carlo_elbo",
           "fixed_q_vae", "iwae_curve", "squared_error", "cross_entropy", "ELBOExplorer", "Q_FAMILIES",
           "gamma_from_moments",
           "shifted_gamma_elbo", "SHIFTED_GAMMA_OPTIONS",
           "bimodal_logpdf", "kl_by_quadrature", "gaussian_kl_pair", "fit_forward_kl", "fit_reverse_kl",
           "check_best_gaussian", "check_shifted_gamma", "check_best_sigma", "check_kl_closed_form"]


# ----------------------------------------------------------------------------- the model
class Exact1D(NamedTuple):
    """z ~ N(0, 1), x | z ~ N(w z + b, sigma^2). Fields may be floats or jax scalars."""

    w: float = 2.0
    b: float = 0.5
    sigma: float = 1.0

    def as_linear_gaussian(self) -> LinearGaussian:
        """The same model as a 1x1 :class:`vae_core.toy.LinearGaussian`."""
        return LinearGaussian(W=np.array([[float(self.w)]]), b=np.array([float(self.b)]),
                              sigma=float(self.sigma))


def log_prior(z):
    """log N(z; 0, 1), elementwise."""
    return -0.5 * (z**2 + LOG_2PI)


def log_likelihood(model: Exact1D, x, z):
    """log N(x; w z + b, sigma^2), elementwise in x and z (broadcast)."""
    r = (x - model.w * z - model.b) / model.sigma
    return -0.5 * (r**2 + LOG_2PI) - jnp.log(model.sigma)


def log_joint(model: Exact1D, x, z):
    """log p(x, z) = log p(z) + log p(x|z), elementwise."""
    return log_prior(z) + log_likelihood(model, x, z)


def log_evidence(model: Exact1D, x):
    """Exact log p(x) = log N(x; b, w^2 + sigma^2)."""
    var = model.w**2 + model.sigma**2
    return -0.5 * ((x - model.b) ** 2 / var + jnp.log(var) + LOG_2PI)


def posterior(model: Exact1D, x):
    """Exact p(z|x) = N(mean, std^2); returns (mean, std)."""
    var = 1.0 / (1.0 + model.w**2 / model.sigma**2)
    return var * model.w * (x - model.b) / model.sigma**2, jnp.sqrt(var)


def expected_log_joint(model: Exact1D, x, mean_z, second_moment_z):
    """E_q[log p(x, z)] for any q with E_q[z] = mean_z and E_q[z^2] = second_moment_z.

    Exact because log p(x, z) is a quadratic in z.
    """
    d = x - model.b
    sq = d**2 - 2 * model.w * d * mean_z + model.w**2 * second_moment_z  # E[(x - b - w z)^2]
    return -0.5 * second_moment_z - LOG_2PI - jnp.log(model.sigma) - 0.5 * sq / model.sigma**2


# ----------------------------------------------------------------------------- Gaussian q
def gaussian_logpdf(z, mean, std):
    return -0.5 * (((z - mean) / std) ** 2 + LOG_2PI) - jnp.log(std)


def gaussian_entropy(std):
    """H(N(., std^2)) = 0.5 log(2 pi e std^2)."""
    return 0.5 * (LOG_2PI + 1.0) + jnp.log(std)


def gaussian_elbo(model: Exact1D, x, mean, std):
    """ELBO for q = N(mean, std^2): E_q[log p(x, z)] + H(q), closed form."""
    return expected_log_joint(model, x, mean, mean**2 + std**2) + gaussian_entropy(std)


def gaussian_expected_loglik(model: Exact1D, x, mean, std):
    """E_q[log p(x|z)] for q = N(mean, std^2) (the reconstruction term)."""
    sq = (x - model.w * mean - model.b) ** 2 + model.w**2 * std**2
    return -0.5 * sq / model.sigma**2 - jnp.log(model.sigma) - 0.5 * LOG_2PI


def gaussian_kl_to_prior(mean, std):
    """KL(N(mean, std^2) || N(0, 1))."""
    return 0.5 * (mean**2 + std**2 - 1.0) - jnp.log(std)


def gaussian_kl_to_posterior(model: Exact1D, x, mean, std):
    """KL(N(mean, std^2) || p(z|x)), from the two Gaussians' parameters (not via the ELBO)."""
    pm, ps = posterior(model, x)
    return jnp.log(ps / std) + (std**2 + (mean - pm) ** 2) / (2 * ps**2) - 0.5


# ----------------------------------------------------------------------------- gamma q
def gamma_logpdf(z, shape, rate):
    """log Gamma(z; shape, rate) for z > 0 (-inf for z <= 0)."""
    zc = jnp.where(z > 0, z, 1.0)
    lp = shape * jnp.log(rate) - gammaln(shape) + (shape - 1) * jnp.log(zc) - rate * zc
    return jnp.where(z > 0, lp, -jnp.inf)


def gamma_entropy(shape, rate):
    """H(Gamma(shape, rate)) = shape - log rate + lgamma(shape) + (1 - shape) digamma(shape)."""
    return shape - jnp.log(rate) + gammaln(shape) + (1 - shape) * digamma(shape)


def gamma_moments(shape, rate):
    """(E[z], E[z^2]) of Gamma(shape, rate)."""
    return shape / rate, shape * (shape + 1) / rate**2


def gamma_from_moments(mean, std):
    """(shape, rate) of the gamma distribution with this mean > 0 and std > 0:
    shape = (mean / std)^2, rate = mean / std^2."""
    return (mean / std) ** 2, mean / std**2


def gamma_elbo(model: Exact1D, x, shape, rate):
    """ELBO for q = Gamma(shape, rate) (support z > 0): closed form, like the Gaussian's."""
    m1, m2 = gamma_moments(shape, rate)
    return expected_log_joint(model, x, m1, m2) + gamma_entropy(shape, rate)


# ----------------------------------------------------------------------------- numerical checks
def trapezoid(values, grid):
    """Trapezoid rule along the last axis of values, on a 1-d grid."""
    values, grid = jnp.asarray(values), jnp.asarray(grid)
    return jnp.sum(0.5 * (values[..., 1:] + values[..., :-1]) * jnp.diff(grid), axis=-1)


def quadrature_evidence(model: Exact1D, x, grid):
    """log of the integral of p(x, z) dz over the grid (should match log_evidence)."""
    return jnp.log(trapezoid(jnp.exp(log_joint(model, x, grid)), grid))


def quadrature_expectation(log_q, f_values, grid):
    """E_q[f] = integral of q(z) f(z) dz by the trapezoid rule; log_q, f_values on the grid.

    Points where q is 0 contribute 0 even if f is infinite or NaN there.
    """
    q = jnp.exp(log_q)
    integrand = jnp.where(q > 0, q * jnp.where(q > 0, f_values, 0.0), 0.0)
    return trapezoid(integrand, grid)


def monte_carlo_elbo(samples, log_q_samples, model: Exact1D, x):
    """Monte Carlo ELBO from draws z_i ~ q and their log q(z_i). Returns (estimate, stderr).

    The estimate is mean_i [log p(x, z_i) - log q(z_i)]; stderr = sample std / sqrt(n).
    """
    terms = log_joint(model, x, samples) - log_q_samples
    n = terms.shape[0]
    return jnp.mean(terms), jnp.std(terms, ddof=1) / jnp.sqrt(n)


# ----------------------------------------------------------------------------- fitting q
class FitResult(NamedTuple):
    """Result of :func:`fit_q`.

    params: the final (positive) parameters, e.g. (mean, std) or (shape, rate).
    elbo:   the final ELBO; gap: log p(x) - elbo = KL(q || p(z|x)) >= 0.
    history: dict with 'elbo' [steps] and 'params' [steps, 2] along the optimisation.
    """

    params: tuple
    elbo: float
    gap: float
    history: dict


def fit_q(model: Exact1D, x, family: str = "gamma", init=(2.0, 2.0), *, steps: int = 1500,
          learning_rate: float = 0.05) -> FitResult:
    """Maximise the closed-form ELBO over a q family with Adam (optax), from init.

    family 'gaussian': params (mean, std), std kept positive through its log.
    family 'gamma':    params (shape, rate), both through their logs.
    """
    if family == "gaussian":
        to_params = lambda u: (u[0], jnp.exp(u[1]))  # noqa: E731
        from_params = lambda p: jnp.array([p[0], math.log(p[1])], jnp.float32)  # noqa: E731
        elbo_fn = gaussian_elbo
    elif family == "gamma":
        to_params = lambda u: (jnp.exp(u[0]), jnp.exp(u[1]))  # noqa: E731
        from_params = lambda p: jnp.log(jnp.array(p, jnp.float32))  # noqa: E731
        elbo_fn = gamma_elbo
    else:
        raise ValueError(f"family must be 'gaussian' or 'gamma', got {family!r}")
    if any(float(v) <= 0 for v in (init if family == "gamma" else init[1:])):
        raise ValueError(f"init parameters must be positive where the family needs it, got {init}")

    tx = optax.adam(learning_rate)
    loss = lambda u: -elbo_fn(model, x, *to_params(u))  # noqa: E731

    @jax.jit
    def run(u0):
        def step(carry, _):
            u, state = carry
            value, g = jax.value_and_grad(loss)(u)
            updates, state = tx.update(g, state, u)
            u = optax.apply_updates(u, updates)
            return (u, state), (-value, jnp.stack(to_params(u)))

        (u, _), (elbos, path) = jax.lax.scan(step, (u0, tx.init(u0)), None, length=steps)
        return u, elbos, path

    u, elbos, path = run(from_params(init))
    params = tuple(float(v) for v in to_params(u))
    elbo = float(elbo_fn(model, x, *params))
    gap = float(log_evidence(model, x)) - elbo
    return FitResult(params, elbo, gap, {"elbo": np.asarray(elbos), "params": np.asarray(path)})


def fit_two_for_one(x_data, sigma: float = 1.0, *, init_w: float = 0.3, init_b: float = -1.0,
                    steps: int = 2000, learning_rate: float = 0.05) -> dict:
    """Maximise the summed ELBO over the decoder (w, b) AND one Gaussian q per data point
    at once, with Adam; sigma stays fixed.

    x_data: [n] observations. Returns a dict with the final 'w', 'b', 'q_mean' [n],
    'q_std' [n], and per-step histories 'elbo', 'log_evidence' (sum of exact log p(x_i)
    under the current decoder) and 'kl' (sum of KL(q_i || p(z|x_i))), all [steps].
    The maximum-likelihood decoder has b = mean(x), w^2 = var(x) - sigma^2.
    """
    x = jnp.asarray(x_data, jnp.float32)
    if x.ndim != 1 or x.size < 2:
        raise ValueError(f"x_data must be a 1-d array of at least 2 observations, got shape {x.shape}")
    n = x.shape[0]
    u0 = {"w": jnp.float32(init_w), "b": jnp.float32(init_b),
          "mu": jnp.zeros(n, jnp.float32), "log_s": jnp.zeros(n, jnp.float32)}
    tx = optax.adam(learning_rate)

    def parts(u):
        m = Exact1D(u["w"], u["b"], sigma)
        s = jnp.exp(u["log_s"])
        return (jnp.sum(gaussian_elbo(m, x, u["mu"], s)), jnp.sum(log_evidence(m, x)),
                jnp.sum(gaussian_kl_to_posterior(m, x, u["mu"], s)))

    @jax.jit
    def run(u0):
        def step(carry, _):
            u, state = carry
            g = jax.grad(lambda v: -parts(v)[0])(u)
            updates, state = tx.update(g, state, u)
            u = optax.apply_updates(u, updates)
            return (u, state), jnp.stack(parts(u))

        (u, _), hist = jax.lax.scan(step, (u0, tx.init(u0)), None, length=steps)
        return u, hist

    u, hist = run(u0)
    hist = np.asarray(hist)
    return {"w": float(u["w"]), "b": float(u["b"]), "q_mean": np.asarray(u["mu"]),
            "q_std": np.exp(np.asarray(u["log_s"])), "elbo": hist[:, 0], "log_evidence": hist[:, 1],
            "kl": hist[:, 2]}


# ----------------------------------------------------------------------------- KL asymmetry
# Everything here is float64 NumPy on a fixed 1-d grid: the KLs are integrals done by the
# trapezoid rule, exact to quadrature precision (no Monte Carlo, nothing random).
def _normal_logpdf64(z, mean, std):
    """log N(z; mean, std^2) in float64, elementwise (broadcast)."""
    z = np.asarray(z, np.float64)
    return -0.5 * (((z - mean) / std) ** 2 + LOG_2PI) - np.log(std)


def _trapezoid64(values, grid):
    """Trapezoid rule along the last axis, float64. values [..., n], grid [n] -> [...]."""
    values, grid = np.asarray(values, np.float64), np.asarray(grid, np.float64)
    return np.sum(0.5 * (values[..., 1:] + values[..., :-1]) * np.diff(grid), axis=-1)


def _check_target(log_p, grid):
    """log_p [n] on a 1-d increasing grid [n] whose ends hold p's whole mass."""
    log_p, grid = np.asarray(log_p, np.float64), np.asarray(grid, np.float64)
    if grid.ndim != 1 or grid.size < 3 or log_p.shape != grid.shape or np.any(np.diff(grid) <= 0):
        raise ValueError(f"need a 1-d increasing grid and log_p of the same shape, got {grid.shape} and {log_p.shape}")
    mass = _trapezoid64(np.exp(log_p), grid)
    if abs(mass - 1.0) > 1e-6:
        raise ValueError(f"p integrates to {mass:.8f} on the grid, not 1: widen or refine the grid")
    return log_p, grid


def bimodal_logpdf(z, centres=(-2.0, 2.0), std: float = 0.5):
    """log p(z) of the equal mixture of N(c, std^2) over ``centres``, float64, elementwise.

    z [...] -> [...]. The default is two well-separated modes, at -2 and +2, of std 0.5:
    mean 0, variance std^2 + var(centres) = 4.25.
    """
    c = np.asarray(centres, np.float64)
    if c.ndim != 1 or c.size < 1 or not std > 0:
        raise ValueError(f"need a 1-d list of centres and a positive std, got {centres}, {std}")
    comp = _normal_logpdf64(np.asarray(z, np.float64)[..., None], c, std)  # [..., k]
    return logsumexp(comp, axis=-1) - math.log(c.size)


def kl_by_quadrature(log_p, log_q, grid):
    """KL(p || q) = integral of p(z) [log p(z) - log q(z)] dz by the trapezoid rule, float64.

    log_p, log_q: log-densities on the grid, [..., n] (broadcast against each other);
    grid: [n]. Returns [...] (a float for 1-d inputs). Points where p underflows to 0
    contribute 0. Exact to quadrature precision when both densities are smooth and
    negligible beyond the grid's ends. Swap the arguments for KL(q || p).
    """
    log_p, log_q = np.asarray(log_p, np.float64), np.asarray(log_q, np.float64)
    p = np.exp(log_p)
    integrand = np.where(p > 0, p * (log_p - np.where(p > 0, log_q, 0.0)), 0.0)
    out = _trapezoid64(integrand, grid)
    return float(out) if np.ndim(out) == 0 else out


def gaussian_kl_pair(log_p, grid, mean, std):
    """(KL(p || q), KL(q || p)) for q = N(mean, std^2) and a target p given as log_p [n] on grid [n].

    Both by :func:`kl_by_quadrature`; mean and std are scalars (or broadcast arrays, then
    each KL has their shape).
    """
    log_p, grid = np.asarray(log_p, np.float64), np.asarray(grid, np.float64)
    mean, std = np.asarray(mean, np.float64)[..., None], np.asarray(std, np.float64)[..., None]
    log_q = _normal_logpdf64(grid, mean, std)  # [..., n]
    return kl_by_quadrature(log_p, log_q, grid), kl_by_quadrature(log_q, log_p, grid)


def fit_forward_kl(log_p, grid) -> tuple[float, float]:
    """The Gaussian q = N(m, s^2) that minimises the forward KL(p || q): (m, s) as floats.

    KL(p || q) = -H(p) - E_p[log q], and -E_p[log q] = log s + E_p[(z - m)^2] / (2 s^2) + const
    is smallest at m = E_p[z], s^2 = Var_p[z]: moment matching. The two moments are
    computed by quadrature. log_p [n] on grid [n], normalised on the grid (checked).
    """
    log_p, grid = _check_target(log_p, grid)
    p = np.exp(log_p)
    m = _trapezoid64(p * grid, grid)
    var = _trapezoid64(p * (grid - m) ** 2, grid)
    return float(m), float(math.sqrt(var))


def fit_reverse_kl(log_p, grid, init=(1.0, 1.0), *, gtol: float = 1e-10) -> tuple[float, float]:
    """A Gaussian q = N(m, s^2) that minimises the reverse KL(q || p) locally: (m, s) as floats.

    BFGS (scipy) on u = (m, log s) from init = (mean, std), with the quadrature objective
    J(u) = E_q[log q - log p] and its exact gradient E_q[(log q - log p) d log q / du]
    (the term E_q[d log q / du] vanishes), d log q / dm = (z - m) / s^2,
    d log q / d log s = (z - m)^2 / s^2 - 1. The reverse KL is not convex: on a
    multi-modal p the start decides which mode q settles on. log_p [n] on grid [n],
    normalised on the grid (checked).
    """
    log_p, grid = _check_target(log_p, grid)
    m0, s0 = (float(v) for v in init)
    if not (np.isfinite(m0) and s0 > 0):
        raise ValueError(f"init must be (mean, std) with a positive std, got {init}")

    def objective(u):
        m, s = u[0], math.exp(u[1])
        log_q = _normal_logpdf64(grid, m, s)
        q = np.exp(log_q)
        ratio = log_q - log_p
        r = (grid - m) / s
        value = _trapezoid64(q * ratio, grid)
        grad = [_trapezoid64(q * ratio * r / s, grid), _trapezoid64(q * ratio * (r**2 - 1.0), grid)]
        return value, np.array(grad)

    res = minimize(objective, np.array([m0, math.log(s0)]), jac=True, method="BFGS",
                   options={"gtol": gtol, "maxiter": 1000})
    return float(res.x[0]), float(math.exp(res.x[1]))


# ----------------------------------------------------------------------------- IWAE on the toy
def fixed_q_vae(model: Exact1D, mean: float, std: float) -> VAE:
    """A VAE whose decoder is the exact 1-d model and whose encoder ignores x and outputs
    q = N(mean, std^2). Lets the engine's bounds run on the exact model."""
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    vae = model.as_linear_gaussian().as_vae(posterior="diagonal")
    head = vae.encoder.head.linear
    head.kernel[...] = jnp.zeros_like(head.kernel[...])
    head.bias[...] = jnp.array([mean, 2 * math.log(std)], jnp.float32)
    return vae


def iwae_curve(vae: VAE, x, key, ks, *, repeats=1):
    """E[L_k] for each k, estimated from independent draws of the bound per image.

    x: [n, D]. repeats: draws per image, one int for every k or a sequence with one
    entry per k (small k need many draws: log of one weight is heavy-tailed).
    Returns (means [len(ks)], stderrs [len(ks)]) over the n * repeats draws of each k.
    """
    x = jnp.asarray(x, jnp.float32)
    reps = [int(repeats)] * len(ks) if np.ndim(repeats) == 0 else [int(r) for r in repeats]
    if len(reps) != len(ks) or min(reps) < 1:
        raise ValueError(f"repeats must be a positive int or one positive int per k, got {repeats}")
    graphdef, params = nnx.split(vae)
    means, errs = [], []
    for i, (k, r) in enumerate(zip(ks, reps)):
        xr = jnp.tile(x, (r, 1))
        vals = np.asarray(_iwae_jit(graphdef, params, xr, jax.random.fold_in(key, i), int(k)), np.float64)
        means.append(vals.mean())
        errs.append(vals.std(ddof=1) / math.sqrt(vals.size) if vals.size > 1 else float("nan"))
    return np.array(means), np.array(errs)


@partial(jax.jit, static_argnums=(0, 4))
def _iwae_jit(graphdef, params, x, key, k):
    return iwae_bound(nnx.merge(graphdef, params), x, key, k)


def engine_monte_carlo_elbo(vae: VAE, x, key, n: int):
    """Monte Carlo ELBO from the engine's log importance weights (k = n draws from q).

    x: [batch, D]. Returns (estimate [batch], stderr [batch])."""
    logw = log_importance_weights(vae, jnp.asarray(x, jnp.float32), key, n)
    return jnp.mean(logw, 0), jnp.std(logw, 0, ddof=1) / jnp.sqrt(n)


# ----------------------------------------------------------------------------- reconstruction
def squared_error(x, mean):
    """Sum over pixels of (x - mean)^2, per image. [..., D] -> [...]."""
    x, mean = jnp.asarray(x), jnp.asarray(mean)
    return jnp.sum((x - mean) ** 2, axis=-1)


def cross_entropy(x, probs, eps: float = 1e-7):
    """Binary cross-entropy -sum [x log p + (1 - x) log(1 - p)] per image, from probabilities.

    The textbook form (probabilities clipped to [eps, 1 - eps]); the engine uses the
    numerically safer logit form. [..., D] -> [...].
    """
    p = jnp.clip(jnp.asarray(probs), eps, 1 - eps)
    x = jnp.asarray(x)
    return -jnp.sum(x * jnp.log(p) + (1 - x) * jnp.log1p(-p), axis=-1)


# ----------------------------------------------------------------------------- explorer
Q_FAMILIES = ("gaussian", "gamma")


class ELBOExplorer(Explorer):
    """Sliders for q's mean and std on the exact 1-d model at one x, and a switch of q's family.

    q is the Gaussian N(mean, std^2) or the gamma distribution with that mean and std
    (:func:`gamma_from_moments`: shape (mean/std)^2, rate mean/std^2; it needs mean > 0,
    and lives on z > 0 only, so it cannot equal the Gaussian posterior).

    ``values(mean, std, family='gaussian')`` -> {'log_evidence', 'elbo', 'kl'} (floats, closed
    form; the Gaussian's KL from the two Gaussians' parameters, the gamma's as
    log p(x) - ELBO, exact because its ELBO is). ``render(mean, std, family='gaussian')``
    redraws the one figure in place (q's curve, the bars, the title) and returns the values;
    ``figure`` is that matplotlib Figure (not managed by pyplot, so it is shown only when a
    cell displays it). ``widget`` (from :class:`vae_core.widgets.Explorer`) is an ipywidgets
    VBox with the family buttons, two sliders and an Image, ``display_px`` wide, that
    receives the figure as PNG on every change (with the gamma family the mean slider starts
    at ``gamma_min_mean``). ``snapshots(states)`` (the base class's) draws a static grid of
    states such as ``[(0.0, 1.0), (1.0, 0.45, 'gamma')]``, each titled with its ELBO and KL.
    """

    display_px = 810  # the figure's width at png()'s 90 dpi
    gamma_min_mean = 0.05

    def __init__(self, model: Exact1D, x: float, *, mean_range=(-2.0, 3.0), std_range=(0.05, 2.0),
                 z_range=(-3.0, 4.0)):
        from matplotlib.figure import Figure

        self.model, self.x = model, float(x)
        self.mean_range = tuple(float(v) for v in mean_range)
        self.std_range = tuple(float(v) for v in std_range)
        if not (self.mean_range[0] < self.mean_range[1] and 0 < self.std_range[0] < self.std_range[1]):
            raise ValueError(f"need mean_range (lo < hi) and std_range (0 < lo < hi), got {mean_range}, {std_range}")
        self.z = np.linspace(*z_range, 400)
        pm, ps = (float(v) for v in posterior(model, self.x))
        self.posterior = (pm, ps)
        self.log_px = float(log_evidence(model, self.x))

        self.figure = fig = Figure(figsize=(9.0, 3.4))
        self.ax_q, self.ax_bar = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.6, 1]})
        post_pdf = np.exp(np.asarray(gaussian_logpdf(self.z, pm, ps)))
        self.ax_q.plot(self.z, post_pdf, color="k", lw=2, label="true posterior p(z|x)")
        (self.q_line,) = self.ax_q.plot(self.z, post_pdf, color="tab:orange", lw=2, label="q(z)")
        self.q_fill = None
        self.ax_q.set_xlabel("z")
        self.ax_q.set_ylabel("density")
        self.ax_q.set_xlim(*z_range)
        self.ax_q.legend(loc="upper left", fontsize=8)
        self.ax_q.grid(alpha=0.3)
        names = ["log p(x)", "ELBO", "KL(q || p(z|x))"]
        self.bars = self.ax_bar.bar(names, [0, 0, 0], color=["k", "tab:blue", "tab:red"])
        self.ax_bar.axhline(0, color="gray", lw=0.8)
        self.ax_bar.set_ylabel("nats")
        self.ax_bar.tick_params(axis="x", labelsize=8)
        self.bar_text = [self.ax_bar.text(i, 0, "", ha="center", fontsize=8) for i in range(3)]
        for ax in (self.ax_q, self.ax_bar):
            ax.set_title("x", fontsize=10)  # so that tight_layout leaves room for render's titles
        fig.tight_layout()
        self.render(pm, ps)

    def _check(self, mean, std, family):
        mean, std = float(mean), float(std)
        if family not in Q_FAMILIES:
            raise ValueError(f"family must be one of {Q_FAMILIES}, got {family!r}")
        if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
            raise ValueError(f"q needs a finite mean and a positive std, got mean={mean}, std={std}")
        if family == "gamma" and mean <= 0:
            raise ValueError(f"a gamma q lives on z > 0, so it needs a positive mean, got mean={mean}")
        return mean, std

    def q_label(self, mean, std, family: str = "gaussian") -> str:
        """A short name of q, e.g. 'N(1.00, 0.45²)' or 'Gamma(α=5.00, β=5.00)'."""
        mean, std = self._check(mean, std, family)
        if family == "gaussian":
            return f"N({mean:.2f}, {std:.2f}²)"
        a, r = gamma_from_moments(mean, std)
        return f"Gamma(α={a:.2f}, β={r:.2f})"

    def values(self, mean, std, family: str = "gaussian") -> dict:
        mean, std = self._check(mean, std, family)
        if family == "gaussian":
            elbo = float(gaussian_elbo(self.model, self.x, mean, std))
            kl = float(gaussian_kl_to_posterior(self.model, self.x, mean, std))
        else:
            elbo = float(gamma_elbo(self.model, self.x, *gamma_from_moments(mean, std)))
            kl = self.log_px - elbo
        return {"log_evidence": self.log_px, "elbo": elbo, "kl": kl}

    def _q_pdf(self, mean, std, family) -> np.ndarray:
        if family == "gaussian":
            return np.exp(np.asarray(gaussian_logpdf(self.z, mean, std)))
        return np.exp(np.asarray(gamma_logpdf(self.z, *gamma_from_moments(mean, std))))

    def render(self, mean, std, family: str = "gaussian") -> dict:
        """Redraw q and the bars for q of this family, mean and std; returns :meth:`values`."""
        v = self.values(mean, std, family)
        mean, std = self._check(mean, std, family)
        q_pdf = self._q_pdf(mean, std, family)
        self.q_line.set_ydata(q_pdf)
        if self.q_fill is not None:
            self.q_fill.remove()
        self.q_fill = self.ax_q.fill_between(self.z, q_pdf, color="tab:orange", alpha=0.2)
        peak = np.exp(float(gaussian_logpdf(self.posterior[0], *self.posterior)))
        self.ax_q.set_ylim(0, 1.1 * max(peak, min(q_pdf.max(), 10 * peak)))  # a gamma spike at 0 is cut
        title = f"x = {self.x:g}:  q = {self.q_label(mean, std, family)}"
        if family == "gamma":
            title += f",  mean {mean:.2f}, std {std:.2f}"
        self.ax_q.set_title(title, fontsize=10)
        heights = [v["log_evidence"], v["elbo"], v["kl"]]
        for bar, text, h in zip(self.bars, self.bar_text, heights):
            bar.set_height(h)
            text.set_text(f"{h:.3f}")
            text.set_y(h + (0.1 if h >= 0 else -0.1))
            text.set_va("bottom" if h >= 0 else "top")
        lo, hi = min(heights) - 0.25 * abs(min(heights)) - 0.5, max(max(heights), 0) + 1.0
        self.ax_bar.set_ylim(lo, hi)
        self.ax_bar.set_title("ELBO + KL = log p(x)", fontsize=10)
        self.state = (mean, std, family)
        return v

    def _snapshot_title(self, args, result) -> str:
        return f"q = {self.q_label(*args)}:  ELBO {result['elbo']:.3f},  KL {result['kl']:.3f}"

    def png(self) -> bytes:
        """The figure as it is now, as PNG bytes (90 dpi)."""
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=90)
        return buf.getvalue()

    def _build(self):
        import ipywidgets as W

        mean, std, family = self.state
        style = {"description_width": "70px"}
        self.family_buttons = W.ToggleButtons(options=[("Gaussian q", "gaussian"), ("gamma q", "gamma")],
                                              value=family, description="family", style=style)
        self.mean_slider = W.FloatSlider(value=mean, min=self.mean_range[0], max=self.mean_range[1], step=0.01,
                                         description="q mean", continuous_update=True, style=style,
                                         layout=W.Layout(width="420px"))
        self.std_slider = W.FloatSlider(value=std, min=self.std_range[0], max=self.std_range[1], step=0.01,
                                        description="q std", continuous_update=True, style=style,
                                        layout=W.Layout(width="420px"))
        self.image = W.Image(format="png", value=self.png(), layout=W.Layout(width=f"{self.display_px}px"))
        self.readout = W.HTML()
        hold = [False]

        def refresh(_=None):
            if hold[0]:
                return
            v = self.render(self.mean_slider.value, self.std_slider.value, self.family_buttons.value)
            self.image.value = self.png()
            self.readout.value = (f"<code>log p(x) = {v['log_evidence']:.4f}   ELBO = {v['elbo']:.4f}   "
                                  f"KL = {v['kl']:.4f}   ELBO + KL = {v['elbo'] + v['kl']:.4f}</code>")

        def on_family(_):
            hold[0] = True  # a gamma q needs mean > 0: move the slider's floor first, then draw once
            try:
                gamma = self.family_buttons.value == "gamma"
                self.mean_slider.min = max(self.mean_range[0], self.gamma_min_mean) if gamma else self.mean_range[0]
            finally:
                hold[0] = False
            refresh()

        self.family_buttons.observe(on_family, names="value")
        self.mean_slider.observe(refresh, names="value")
        self.std_slider.observe(refresh, names="value")
        on_family(None)
        return W.VBox([self.family_buttons, self.mean_slider, self.std_slider, self.readout, self.image])


# ----------------------------------------------------------------------------- exercises
def _values(fn, points):
    """[fn(*p) for p in points] as a float array; the first blank or failed result as it is
    (or the raw list when the results are not numbers), for check_close to report."""
    out = []
    for p in points:
        value = attempt(fn, *p)
        if is_blank(value) or isinstance(value, Failed):
            return value
        out.append(value)
    try:
        return np.asarray(out, np.float64)
    except (TypeError, ValueError):
        return out


def check_best_gaussian(my_elbo, my_best_q, n_points: int = 6, seed: int = 0) -> Verdict:
    """Exercise 1: the closed-form ELBO of q = N(mu, vs^2) on the exact 1-d model, and its maximiser.

    my_elbo(x, mu, vs, w, b, sigma) -> ELBO (a number); my_best_q(x, w, b, sigma) -> (mean, std)
    where the ELBO's derivatives vanish. Both are compared at ``n_points`` random models,
    observations and q's with :func:`gaussian_elbo` and :func:`posterior`
    (rtol 1e-4, atol 1e-5: float32 round-off, nothing more).
    """
    rng = np.random.default_rng(seed)
    cases = [dict(x=rng.uniform(-3, 3), mu=rng.uniform(-2, 2), vs=rng.uniform(0.2, 2), w=rng.uniform(-3, 3),
                  b=rng.uniform(-1, 1), sigma=rng.uniform(0.3, 2)) for _ in range(n_points)]
    cases = [{k: float(v) for k, v in c.items()} for c in cases]
    got = _values(my_elbo, [(c["x"], c["mu"], c["vs"], c["w"], c["b"], c["sigma"]) for c in cases])
    want = [float(gaussian_elbo(Exact1D(c["w"], c["b"], c["sigma"]), c["x"], c["mu"], c["vs"])) for c in cases]
    verdict = check_close(got, want, rtol=1e-4, atol=1e-5, what=f"my_elbo at {n_points} random points",
                          hint="ELBO = E_q[log p(x|z)] + E_q[log p(z)] + entropy of q; under q, E[z] = mu, "
                               "E[z^2] = mu^2 + vs^2 and E[(x - b - w z)^2] = (x - b - w mu)^2 + w^2 vs^2. "
                               "Use the arguments, not the notebook's model.")
    if not verdict:
        return verdict
    got = _values(my_best_q, [(c["x"], c["w"], c["b"], c["sigma"]) for c in cases])
    want = [[float(v) for v in posterior(Exact1D(c["w"], c["b"], c["sigma"]), c["x"])] for c in cases]
    verdict = check_close(got, want, rtol=1e-4, atol=1e-5, what=f"my_best_q's (mean, std) at {n_points} points",
                          hint="Differentiate your ELBO with respect to mu and to vs, set both to zero and solve; "
                               "return the pair (mean, std), the std positive.")
    if not verdict:
        return verdict
    return Verdict(True, "Your ELBO matches the closed form, and its maximiser is the posterior N(m, s^2).")


def shifted_gamma_elbo(model: Exact1D, x, shape, rate, shift):
    """ELBO of q = shift + Gamma(shape, rate): moments E[z] = shift + shape/rate,
    var = shape/rate^2; the entropy does not change with the shift."""
    m1 = shift + shape / rate
    return expected_log_joint(model, x, m1, m1**2 + shape / rate**2) + gamma_entropy(shape, rate)


SHIFTED_GAMMA_OPTIONS = {
    "a": "The gap reaches exactly 0 at a finite alpha: with a shift, the gamma family contains the posterior.",
    "b": "alpha keeps growing (and the shift keeps moving left) the longer Adam runs; the gap shrinks towards "
         "0 but stays above 0 for every finite alpha.",
    "c": "The shift does not help: the best gap stays at the unshifted gamma's.",
    "d": "alpha shrinks towards 0 and q turns into an exponential distribution.",
}


def check_shifted_gamma(my_shifted_elbo, behaviour, model: Exact1D, x) -> Verdict:
    """Exercise 2: the ELBO of a shifted gamma q = c + Gamma(alpha, beta), and what its optimum does.

    my_shifted_elbo(alpha, beta, c) -> ELBO on the notebook's model and observation, compared
    with :func:`shifted_gamma_elbo` at five (alpha, beta, c), c = 0 among them (rtol 1e-4,
    atol 1e-4: float32 round-off in the gamma function's logarithm);
    behaviour: one key of :data:`SHIFTED_GAMMA_OPTIONS` (the right one is "b").
    """
    points = [(2.0, 2.0, 0.0), (5.0, 3.0, -1.0), (30.0, 8.0, -2.5), (1.5, 0.7, 0.4), (12.0, 5.0, -0.8)]
    got = _values(my_shifted_elbo, points)
    want = [float(shifted_gamma_elbo(model, x, a, r, c)) for a, r, c in points]
    verdict = check_close(got, want, rtol=1e-4, atol=1e-4, what="Your shifted-gamma ELBO at 5 points",
                          hint="A shift moves E[z] by c and leaves the variance alpha / beta^2 and the entropy "
                               "unchanged; E.expected_log_joint needs only E[z] and E[z^2], E.gamma_entropy gives "
                               "the entropy.")
    return check_then_choose(verdict, behaviour, "b", options=SHIFTED_GAMMA_OPTIONS,
                             hint="Print alpha, the shift and the gap after 500, 2000 and 5000 steps; the gamma's "
                                  "skewness is 2 / sqrt(alpha).", right_so_far="Your ELBO is right; the behaviour")


def check_best_sigma(sigma_star, log_lik, x, probs) -> Verdict:
    """Exercise 3: the sigma that maximises a Gaussian decoder's log p(x|z) for a batch, and that maximum.

    sigma_star: one sigma shared by every pixel of every image of the batch; log_lik: the
    batch mean of log p(x|z) at sigma_star. x, probs: the batch [n, D] and the decoder's
    means [n, D]. Expected: sigma* = sqrt(mean SSE / D), and the mean of
    ``vae_core.objectives.gaussian_log_likelihood`` at log sigma* (rtol 1e-4).
    """
    x, probs = jnp.asarray(x, jnp.float32), jnp.asarray(probs, jnp.float32)
    sse = np.asarray(squared_error(x, probs), np.float64)
    best = math.sqrt(sse.mean() / x.shape[-1])
    verdict = check_close(sigma_star, best, rtol=1e-4, atol=0.0, what="sigma*",
                          hint="Write log p(x|z) as -SSE / (2 sigma^2) - D log sigma - const, set its derivative "
                               "with respect to sigma to zero; with one sigma for the batch, use the mean SSE.")
    if not verdict:
        return verdict
    expected = float(jnp.mean(gaussian_log_likelihood(probs, x, jnp.log(best))))
    return check_close(log_lik, expected, rtol=1e-4, atol=1e-3, what="log p(x|z) at sigma* (batch mean)",
                       hint="Evaluate gaussian_log_likelihood(probs, x_b, jnp.log(sigma_star)) and average it over "
                            "the batch, or plug sigma* into the formula.")


def check_kl_closed_form(my_kl, seed: int = 0) -> Verdict:
    """Exercise 4: my_kl(mu, log_var) -> KL(N(mu, diag(exp(log_var))) || N(0, I)), [batch, L] -> [batch].

    Compared with the engine's ``kl_per_dim`` summed over the latents on three random
    batches of shapes [4, 3], [2, 20] and [1, 1] (rtol 1e-4, atol 1e-5).
    """
    rng = np.random.default_rng(seed)
    got, want = [], []
    hint = ("KL = E_q[log q(z) - log p(z)]; take each latent separately: E_q[z_j^2] = mu_j^2 + sigma_j^2 and "
            "E_q[(z_j - mu_j)^2] = sigma_j^2. Sum over the latent axis (axis -1), keep the batch axis.")
    for shape in [(4, 3), (2, 20), (1, 1)]:
        mu = rng.normal(0.0, 1.5, shape).astype(np.float32)
        log_var = rng.uniform(-3.0, 2.0, shape).astype(np.float32)
        value = attempt(my_kl, mu, log_var)
        if is_blank(value):
            return check_close(value, 0.0, hint=hint)
        try:
            value = np.asarray(value, np.float64)
        except (TypeError, ValueError):
            return check_close(value, 0.0, hint=hint, what="my_kl's result")
        if value.shape != (shape[0],):
            return Verdict(False, f"my_kl returned shape {value.shape} for inputs of shape {shape}, "
                                  f"expected ({shape[0]},): one KL per example.", hint)
        got.append(value)
        want.append(np.asarray(jnp.sum(kl_per_dim(mu, log_var), -1), np.float64))
    return check_close(np.concatenate(got), np.concatenate(want), rtol=1e-4, atol=1e-5,
                       what="my_kl on 3 random batches", hint=hint)
