"""Gradient estimators for expectations under a distribution that depends on the parameters.

The problem:  grad_phi E_{q_phi(z)}[f(z)]  — phi sits in the distribution, so the gradient
cannot simply move inside the expectation. Two unbiased Monte Carlo answers:

  score function (REINFORCE, BBVI):  E_q[ f(z) grad_phi log q_phi(z) ]
  pathwise (reparameterization):     E_eps[ grad_phi f(g(eps, phi)) ],  z = g(eps, phi)

This module measures both, in four settings the notebook 03 walks through:

1. The closed-form toy problem f(x) = (x - k)^2, x ~ N(mu, sigma^2), d = mu - k, with the
   estimators vmapped over many seeds and their variances in closed form
   (:func:`closed_forms`; d^4 + 14 d^2 + 15, 4, 4 d^2 + 8 sigma^2 at mu = sigma = 1), and
   :class:`EstimatorExplorer`, histograms of repeated estimates under sliders for k, N and a baseline.
2. A VAE on MNIST: the ELBO gradient for the encoder parameters under each estimator,
   its variance and signal-to-noise ratio per parameter group (:func:`gradient_moments`,
   :func:`group_statistics`), and a short training run with each: :func:`estimator_loss`
   is the custom loss handed to ``vae_core.train.train(..., loss=...)``.
3. Full-covariance Gaussians z = mu + L eps (:func:`random_full_posterior`,
   :func:`reference_log_density`, :func:`quadratic_form_gradients`).
4. A gamma variable, whose sampler JAX differentiates by implicit reparameterization
   (:func:`gamma_pathwise_estimate`, :func:`gamma_score_estimate`, :func:`gamma_exact_gradient`),
   and G-REP, the generalized reparameterization gradient of Ruiz, Titsias & Blei (2016):
   a standardising map eps = T^{-1}(z) plus a score-function correction (:func:`grep_gradient`).

The notebook's exercises are checked by the ``check_*`` functions at the end (section 5).

Every estimator returns one estimate per PRNG key; ``jax.vmap`` over keys gives the
sampling distribution of the estimator, which is what the variances are computed from.

The VAE is a Flax NNX module. Gradients with respect to the encoder alone split the
model into its encoder parameters and the rest (``nnx.split(model, ENCODER, ...)``),
differentiate a function of the encoder's state, and merge the two inside it
(``nnx.merge``); the gradient comes back shaped like ``nnx.state(model.encoder)``.
"""
from __future__ import annotations

import io
import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.scipy.special import digamma, gammaln, polygamma

from vae_core.exercises import Verdict, attempt, check_choice, check_close, is_blank
from vae_core.models import VAE, Posterior, sample_posterior, scale_tril
from vae_core.objectives import decoder_log_likelihood, kl_divergence, log_joint, posterior_log_density
from vae_core.widgets import Explorer

ESTIMATORS = ("pathwise", "score", "score_loo")
# the encoder's parameters, as an NNX filter: nnx.split(model, ENCODER, ...) -> graphdef, encoder, rest
ENCODER = nnx.All(nnx.Param, nnx.PathContains("encoder"))


# =========================================================================== 1. toy problem
def quadratic(x, k):
    """The test function f(x) = (x - k)^2 (elementwise)."""
    return (x - k) ** 2


def gaussian_score(x, mu, sigma):
    """(d/dmu, d/dsigma) of log N(x; mu, sigma^2), elementwise."""
    u = (x - mu) / sigma
    return u / sigma, (u**2 - 1.0) / sigma


def _baseline_values(fx, baseline):
    """fx: [n]. None -> 0; a number -> that constant; 'loo' -> mean of the other n-1 values."""
    if baseline is None:
        return jnp.zeros_like(fx)
    if isinstance(baseline, str):
        if baseline != "loo":
            raise ValueError(f"baseline must be None, a number or 'loo', got {baseline!r}")
        n = fx.shape[0]
        if n < 2:
            raise ValueError("a leave-one-out baseline needs n_samples >= 2")
        return (jnp.sum(fx) - fx) / (n - 1)
    return jnp.broadcast_to(jnp.asarray(baseline, fx.dtype), fx.shape)


def score_function_estimate(key, mu, sigma, k, *, n_samples: int = 1, baseline=None, f=quadratic):
    """Score-function estimate of grad_(mu, sigma) E_{N(mu, sigma^2)}[f(x, k)] from n_samples draws.

    baseline: None (plain REINFORCE), a constant b (uses f - b; unbiased because
    E[grad log q] = 0), or 'loo' (each draw's baseline is the mean f of the other draws,
    which is independent of that draw, so the estimate stays unbiased).
    Returns [2]: (d/dmu, d/dsigma).
    """
    eps = jax.random.normal(key, (n_samples,))
    x = mu + sigma * eps
    fx = f(x, k)
    centred = fx - _baseline_values(fx, baseline)
    s_mu, s_sigma = gaussian_score(x, mu, sigma)
    return jnp.stack([jnp.mean(centred * s_mu), jnp.mean(centred * s_sigma)])


def pathwise_estimate(key, mu, sigma, k, *, n_samples: int = 1, f=quadratic):
    """Pathwise estimate: grad of mean f(mu + sigma eps, k) over n_samples eps ~ N(0, 1). Returns [2]."""
    eps = jax.random.normal(key, (n_samples,))
    g = jax.grad(lambda m, s: jnp.mean(f(m + s * eps, k)), argnums=(0, 1))(mu, sigma)
    return jnp.stack(g)


def draw_estimates(key, mu, sigma, k, *, estimator: str, n_seeds: int, n_samples: int = 1,
                   baseline=None, f=quadratic):
    """n_seeds independent estimates, vmapped over seeds. -> [n_seeds, 2] (d/dmu, d/dsigma).

    estimator: 'pathwise' or 'score' (baseline as in :func:`score_function_estimate`:
    None, 'loo' or a number; a number is passed as data, so changing it does not recompile).
    """
    if estimator not in ("pathwise", "score"):
        raise ValueError(f"estimator must be 'pathwise' or 'score', got {estimator!r}")
    if baseline is None or isinstance(baseline, str):
        kind, b = baseline, 0.0
    else:
        kind, b = "const", baseline
    return _draw(key, jnp.float32(mu), jnp.float32(sigma), jnp.float32(k), jnp.float32(b),
                 estimator=estimator, n_seeds=n_seeds, n_samples=n_samples, kind=kind, f=f)


@partial(jax.jit, static_argnames=("estimator", "n_seeds", "n_samples", "kind", "f"))
def _draw(key, mu, sigma, k, b, *, estimator, n_seeds, n_samples, kind, f):
    keys = jax.random.split(key, n_seeds)
    if estimator == "pathwise":
        one = partial(pathwise_estimate, mu=mu, sigma=sigma, k=k, n_samples=n_samples, f=f)
    else:
        one = partial(score_function_estimate, mu=mu, sigma=sigma, k=k, n_samples=n_samples,
                      baseline=b if kind == "const" else kind, f=f)
    return jax.vmap(one)(keys)


def closed_forms(k, mu: float = 1.0, sigma: float = 1.0, baseline: float = 0.0) -> dict:
    """Exact gradients and one-sample estimator variances for f = (x - k)^2, x ~ N(mu, sigma^2).

    With d = mu - k (reference.md gives the mu = sigma = 1 case):
      grad_mu = 2 d,  grad_sigma = 2 sigma
      pathwise:  Var_mu = 4 sigma^2,  Var_sigma = 4 d^2 + 8 sigma^2
      score, constant baseline b:
        Var_mu = d^4/s^2 + 14 d^2 + 15 s^2 - (2 b (d^2 + 3 s^2) - b^2) / s^2
        (b = 0: d^4 + 14 d^2 + 15 at sigma = 1; b = E f = d^2 + s^2: 8 d^2 + 10 s^2;
         the best b = d^2 + 3 s^2: 8 d^2 + 6 s^2)
        Var_sigma (b = 0) = 2 d^4/s^2 + 60 d^2 + 74 s^2
    Works elementwise on arrays of k.
    """
    d = mu - np.asarray(k, np.float64)
    s2 = sigma**2
    b = np.asarray(baseline, np.float64)
    return {
        "grad_mu": 2 * d,
        "grad_sigma": 2 * sigma + 0 * d,
        "pathwise_var_mu": 4 * s2 + 0 * d,
        "pathwise_var_sigma": 4 * d**2 + 8 * s2,
        "score_var_mu": d**4 / s2 + 14 * d**2 + 15 * s2 - (2 * b * (d**2 + 3 * s2) - b**2) / s2,
        "score_var_sigma": 2 * d**4 / s2 + 60 * d**2 + 74 * s2 if np.all(b == 0) else np.nan * d,
        "optimal_baseline": d**2 + 3 * s2,
        "mean_f": d**2 + s2,
    }


def variance_with_error(draws, axis: int = 0):
    """Sample variance of draws along axis and its standard error sqrt((m4 - var^2) / n).

    m4 is the sample fourth central moment; the formula is the large-n standard error of
    a sample variance, for any distribution with a finite fourth moment.
    """
    x = np.asarray(draws, np.float64)
    n = x.shape[axis]
    c = x - x.mean(axis=axis, keepdims=True)
    var = (c**2).sum(axis=axis) / (n - 1)
    m4 = (c**4).mean(axis=axis)
    return var, np.sqrt(np.maximum(m4 - var**2, 0.0) / n)


def mean_with_error(draws, axis: int = 0):
    """Sample mean of draws along axis and its standard error."""
    x = np.asarray(draws, np.float64)
    return x.mean(axis=axis), x.std(axis=axis, ddof=1) / math.sqrt(x.shape[axis])


# --------------------------------------------------------------------------- explorer
def _g3(x: float) -> str:
    """x to 3 significant digits, never in exponent notation (a legend reads 436, 0.472)."""
    return f"{x:.3g}" if 1e-3 <= abs(x) < 1e4 or x == 0 else f"{x:.3e}"


class EstimatorExplorer(Explorer):
    """Histograms of many repeated gradient estimates on the toy problem, with sliders.

    f(x) = (x - k)^2, x ~ N(mu, sigma^2). Each state (k, n_samples, baseline) draws ``repeats``
    independent estimates of d/dmu E[f], each an average over n_samples draws, with the
    pathwise and the score-function estimator (:func:`draw_estimates`, the same fixed PRNG
    key every time, so a state always shows the same histograms). With ``baseline`` on, the
    score function subtracts the constant b = E f = d^2 + sigma^2 (the section's "b = E f",
    known here in closed form); any constant keeps it unbiased.

    ``values(k, n_samples, baseline)`` -> dict: 'exact' (2 d); per estimator the sample mean
    and the sample variance, each with its standard error ('pathwise_mean', 'pathwise_se',
    'pathwise_var', 'pathwise_var_se', 'score_mean', ...); the closed-form variances of an
    N-sample estimate ('pathwise_var_exact' = 4 sigma^2 / N, 'score_var_exact' from
    :func:`closed_forms`); the state ('k', 'n_samples', 'baseline') and the constant used
    ('b', 0 when off). ``draw(ax, ...)`` draws one state's histograms into a matplotlib
    axes and returns its values; ``render(...)`` redraws ``figure`` (a matplotlib Figure not
    managed by pyplot) in place and returns the values; ``grid(ks, n_samples)`` is a new
    Figure of states, rows baseline off / on, one column per k (the static view for readers
    without a kernel). ``widget`` (from :class:`vae_core.widgets.Explorer`): sliders for k and
    N, a baseline checkbox, a readout and an Image that receives the figure as PNG after each
    change (``continuous_update=False``: one redraw when a slider is released; the estimators
    compile once for each new N, so its first redraw is slower).
    """

    display_px = 810  # the figure's width at png()'s 90 dpi

    def __init__(self, *, mu: float = 1.0, sigma: float = 1.0, repeats: int = 2000, k_range=(-5.0, 5.0),
                 n_options=(1, 2, 4, 8, 16, 32, 64, 128), k: float = -3.0, n_samples: int = 1,
                 baseline: bool = False, seed: int = 0):
        from matplotlib.figure import Figure

        self.mu, self.sigma = float(mu), float(sigma)
        if not self.sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.repeats = int(repeats)
        if self.repeats < 2:
            raise ValueError(f"repeats must be >= 2 (a variance needs two estimates), got {repeats}")
        self.k_range = tuple(float(v) for v in k_range)
        self.n_options = tuple(int(n) for n in n_options)
        self.key = jax.random.PRNGKey(seed)
        self.figure = Figure(figsize=(9.0, 3.6))
        self.ax = self.figure.subplots()
        self.render(k, n_samples, baseline)

    def _check(self, k, n_samples, baseline):
        k, n = float(k), int(n_samples)
        if not np.isfinite(k):
            raise ValueError(f"k must be finite, got {k}")
        if n < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        return k, n, bool(baseline)

    def estimates(self, k, n_samples, baseline):
        """(pathwise [repeats], score [repeats], b): repeated n_samples-draw estimates of d/dmu."""
        k, n, on = self._check(k, n_samples, baseline)
        b = float(closed_forms(k, self.mu, self.sigma)["mean_f"]) if on else 0.0
        common = dict(n_seeds=self.repeats, n_samples=n)
        path = draw_estimates(self.key, self.mu, self.sigma, k, estimator="pathwise", **common)[:, 0]
        score = draw_estimates(self.key, self.mu, self.sigma, k, estimator="score", baseline=b, **common)[:, 0]
        return np.asarray(path, np.float64), np.asarray(score, np.float64), b

    def values(self, k, n_samples, baseline) -> dict:
        """The numbers one state shows (see the class docstring)."""
        return self._values(k, n_samples, baseline, *self.estimates(k, n_samples, baseline))

    def _values(self, k, n_samples, baseline, path, score, b) -> dict:
        k, n, on = self._check(k, n_samples, baseline)
        cf = closed_forms(k, self.mu, self.sigma, baseline=b)
        out = {"k": k, "n_samples": n, "baseline": on, "b": b, "exact": float(cf["grad_mu"]),
               "pathwise_var_exact": float(cf["pathwise_var_mu"]) / n, "score_var_exact": float(cf["score_var_mu"]) / n}
        for name, draws in (("pathwise", path), ("score", score)):
            out[f"{name}_mean"], out[f"{name}_se"] = (float(v) for v in mean_with_error(draws))
            out[f"{name}_var"], out[f"{name}_var_se"] = (float(v) for v in variance_with_error(draws))
        return out

    def draw(self, ax, k, n_samples, baseline, *, legend_size: float = 8.0) -> dict:
        """Draw one state's two histograms (same bins) and the exact gradient into ax; returns its values."""
        path, score, b = self.estimates(k, n_samples, baseline)
        v = self._values(k, n_samples, baseline, path, score, b)
        both = np.concatenate([path, score])
        lo, hi = np.percentile(both, [0.5, 99.5])
        lo, hi = min(lo, v["exact"] - 1.0), max(hi, v["exact"] + 1.0)
        bins = np.linspace(lo, hi, 61)
        score_name = "score, b = E f" if v["baseline"] else "score"
        for name, draws, color, alpha in (("score", score, "C3", 0.55), ("pathwise", path, "C0", 0.7)):
            ax.hist(np.clip(draws, lo, hi), bins=bins, density=True, color=color, alpha=alpha,
                    label=f"{score_name if name == 'score' else name}: variance {_g3(v[name + '_var'])} "
                          f"± {_g3(v[name + '_var_se'])} (exact {_g3(v[name + '_var_exact'])})")
        ax.axvline(v["exact"], color="k", lw=1.5, label=f"exact gradient 2d = {v['exact']:g}")
        ax.set_xlim(lo, hi)
        ax.set_xlabel("estimate of d/dμ E[(x - k)²]")
        ax.set_ylabel("density over repeats")
        ax.legend(fontsize=legend_size, loc="upper right")
        ax.grid(alpha=0.3)
        return v

    def render(self, k, n_samples, baseline) -> dict:
        """Redraw ``figure`` for one state; returns :meth:`values` of that state."""
        self.ax.clear()
        v = self.draw(self.ax, k, n_samples, baseline)
        self.ax.set_title(f"k = {v['k']:g}, N = {v['n_samples']} samples per estimate, "
                          f"{self.repeats} repeated estimates, baseline {'b = E f' if v['baseline'] else 'off'}",
                          fontsize=10)
        self.figure.tight_layout()
        self.state = (v["k"], v["n_samples"], v["baseline"])
        return v

    def grid(self, ks=(1.0, -1.0, -3.0), n_samples: int = 1):
        """A new Figure of states: rows baseline off / on, one column per k. -> (Figure, [values dicts])."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(4.2 * len(ks), 6.4))
        axes = fig.subplots(2, len(ks), squeeze=False)
        rows = []
        for i, on in enumerate((False, True)):
            for j, k in enumerate(ks):
                v = self.draw(axes[i, j], k, n_samples, on, legend_size=7.0)
                axes[i, j].set_title(f"k = {v['k']:g} (d = {self.mu - v['k']:g}), "
                                     f"baseline {'b = E f' if on else 'off'}", fontsize=9)
                rows.append(v)
        fig.suptitle(f"{self.repeats} repeated estimates of d/dμ, N = {int(n_samples)} sample(s) each, "
                     f"x ~ N({self.mu:g}, {self.sigma:g}²)")
        fig.tight_layout()
        return fig, rows

    def png(self) -> bytes:
        """The figure as it is now, as PNG bytes (90 dpi)."""
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=90)
        return buf.getvalue()

    def _readout(self, v) -> str:
        return (f"<code>exact 2d = {v['exact']:.3g}   pathwise: mean {v['pathwise_mean']:.3g}, variance "
                f"{v['pathwise_var']:.3g}   score: mean {v['score_mean']:.3g}, variance {v['score_var']:.3g}   "
                f"variance ratio score / pathwise {v['score_var'] / v['pathwise_var']:.3g}</code>")

    def _build(self):
        import ipywidgets as W

        k, n, on = self.state
        style = {"description_width": "90px"}
        n_value = n if n in self.n_options else self.n_options[0]
        self.k_slider = W.FloatSlider(value=k, min=self.k_range[0], max=self.k_range[1], step=0.5,
                                      description="target k", continuous_update=False, style=style,
                                      layout=W.Layout(width="420px"))
        self.n_slider = W.SelectionSlider(options=self.n_options, value=n_value, description="samples N",
                                          continuous_update=False, style=style, layout=W.Layout(width="420px"))
        self.baseline_box = W.Checkbox(value=on, description="baseline b = E f (score function)", indent=False)
        self.image = W.Image(format="png", layout=W.Layout(width=f"{self.display_px}px"))
        self.readout = W.HTML()

        def refresh(_=None):
            v = self.render(self.k_slider.value, self.n_slider.value, self.baseline_box.value)
            self.image.value = self.png()
            self.readout.value = self._readout(v)

        for control in (self.k_slider, self.n_slider, self.baseline_box):
            control.observe(refresh, names="value")
        refresh()
        return W.VBox([self.k_slider, self.n_slider, self.baseline_box, self.readout, self.image])


# =========================================================================== 2. a VAE's encoder
def mc_elbo(model: VAE, x, key, n_samples: int = 1):
    """The Monte Carlo ELBO integrand log p(x, z) - log q(z|x) at n_samples reparameterized z.

    x: [b, D] -> [S, b].
    """
    post = model.encode(x)
    z = sample_posterior(key, post, n_samples)
    return log_joint(model, x, z) - posterior_log_density(z, post)


def encoder_surrogate(model: VAE, x, key, estimator: str, n_samples: int = 1):
    """A scalar whose gradient wrt the encoder parameters is the estimator's ELBO gradient.

    The integrand is the Monte Carlo ELBO f(z) = log p(x, z) - log q(z|x), averaged over the
    batch x [b, D] and n_samples draws per image.
      'pathwise':  z = mean + L eps, differentiated through z (and through log q).
      'score':     (f(z) with z stopped) * log q_phi(z|x); the term E_q[grad log q] = 0 is
                   left out, as in REINFORCE.
      'score_loo': as 'score' with f(z_s) - mean_{s' != s} f(z_s') (needs n_samples >= 2).
    Only its gradient wrt the encoder is meant (for 'pathwise' it also depends on the
    decoder; :func:`encoder_gradient` and :func:`estimator_loss` differentiate the
    encoder's part alone).
    """
    post = model.encode(x)
    if estimator == "pathwise":
        z = sample_posterior(key, post, n_samples)
        return jnp.mean(log_joint(model, x, z) - posterior_log_density(z, post))
    if estimator not in ("score", "score_loo"):
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if estimator == "score_loo" and n_samples < 2:
        raise ValueError("'score_loo' needs n_samples >= 2")
    z = jax.lax.stop_gradient(sample_posterior(key, post, n_samples))
    log_q = posterior_log_density(z, post)                     # [S, b], depends on the encoder
    f = jax.lax.stop_gradient(log_joint(model, x, z) - log_q)
    if estimator == "score_loo":
        f = f - (jnp.sum(f, 0, keepdims=True) - f) / (n_samples - 1)
    return jnp.mean(f * log_q)


def encoder_gradient(model: VAE, x, key, estimator: str = "pathwise", n_samples: int = 1) -> nnx.State:
    """One estimate of grad_phi ELBO (batch mean) for the encoder parameters.

    Returns an nnx.State shaped like ``nnx.state(model.encoder)``.
    """
    graphdef, enc, rest = nnx.split(model, ENCODER, ...)

    def surrogate(enc):
        return encoder_surrogate(nnx.merge(graphdef, enc, rest), x, key, estimator, n_samples)

    return jax.grad(surrogate)(enc)["encoder"]


def gradient_moments(model: VAE, x, key, *, estimator: str, n_draws: int, n_samples: int = 1,
                     chunk: int = 16):
    """Mean and variance, over n_draws independent keys, of each encoder-gradient coordinate.

    x: [b, D]. Draws are vmapped ``chunk`` at a time inside a lax.scan, and combined with
    Chan's parallel update, so memory holds only ``chunk`` gradients. n_draws must be a
    multiple of chunk. Returns (mean, variance) (variance with ddof = 1), each an nnx.State
    shaped like ``nnx.state(model.encoder)``.
    """
    if n_draws % chunk:
        raise ValueError(f"n_draws ({n_draws}) must be a multiple of chunk ({chunk})")
    graphdef, params = nnx.split(model)
    return _gradient_moments(graphdef, params, jnp.asarray(x), key, estimator, n_draws, n_samples, chunk)


@partial(jax.jit, static_argnums=(0, 4, 5, 6, 7))
def _gradient_moments(graphdef, params, x, key, estimator, n_draws, n_samples, chunk):
    model = nnx.merge(graphdef, params)
    keys = jax.random.split(key, n_draws).reshape(n_draws // chunk, chunk, -1)
    one = lambda k: encoder_gradient(model, x, k, estimator, n_samples)  # noqa: E731
    zeros = jax.tree_util.tree_map(jnp.zeros_like, nnx.state(model.encoder, nnx.Param))

    def step(carry, ks):
        n, mean, m2 = carry
        g = jax.vmap(one)(ks)
        c_mean = jax.tree_util.tree_map(lambda a: jnp.mean(a, 0), g)
        c_m2 = jax.tree_util.tree_map(lambda a, m: jnp.sum((a - m) ** 2, 0), g, c_mean)
        tot = n + chunk
        delta = jax.tree_util.tree_map(lambda cm, m: cm - m, c_mean, mean)
        mean = jax.tree_util.tree_map(lambda m, dl: m + dl * chunk / tot, mean, delta)
        m2 = jax.tree_util.tree_map(lambda a, b, dl: a + b + dl**2 * n * chunk / tot, m2, c_m2, delta)
        return (tot, mean, m2), None

    (n, mean, m2), _ = jax.lax.scan(step, (jnp.zeros((), jnp.float32), zeros, zeros), keys)
    return mean, jax.tree_util.tree_map(lambda a: a / (n - 1), m2)


def parameter_groups(enc_tree, latent_dim: int) -> dict:
    """Flatten an encoder tree (gradients, variances, ...) into named groups of coordinates.

    enc_tree: shaped like ``nnx.state(model.encoder)`` (an nnx.State or its pure dict).
    'hidden layers': every layer before the posterior head; 'mean head' and
    'log-variance head': the head's kernel and bias columns for the mean and for the
    log-variance (for a full-covariance posterior the same columns give log L_ii^2 and the
    group is called 'log-diagonal head'); 'off-diagonal head': the columns of the
    Cholesky factor's strictly-lower entries (full covariance only).
    """
    tree = nnx.to_pure_dict(enc_tree) if isinstance(enc_tree, nnx.State) else enc_tree
    head = tree["head"]["linear"]
    L = latent_dim
    hidden = [jnp.ravel(a) for name, sub in tree.items() if name != "head"
              for a in jax.tree_util.tree_leaves(sub)]
    cols = lambda lo, hi: jnp.concatenate([jnp.ravel(head["kernel"][:, lo:hi]),  # noqa: E731
                                           jnp.ravel(head["bias"][lo:hi])])
    full = head["bias"].shape[0] > 2 * L
    groups = {"hidden layers": jnp.concatenate(hidden), "mean head": cols(0, L),
              ("log-diagonal head" if full else "log-variance head"): cols(L, 2 * L)}
    if full:
        groups["off-diagonal head"] = cols(2 * L, head["bias"].shape[0])
    return groups


def group_statistics(mean_tree, var_tree, latent_dim: int, signal_tree=None) -> dict:
    """Per parameter group: gradient variance, signal-to-noise ratio and an unbiasedness check.

    For each group (see :func:`parameter_groups`) with one-draw gradient g:
      'variance':      mean over coordinates of Var[g_j]
      'total_variance': sum over coordinates (trace of the covariance)
      'signal':        || E g ||, taken from signal_tree when given (e.g. the precise mean of
                       the low-variance estimator), else from mean_tree
      'snr':           signal / sqrt(total_variance): the size of the true gradient relative
                       to the typical size of one estimate's error
    Returns {group: {...}} of Python floats.
    """
    means = parameter_groups(mean_tree, latent_dim)
    varis = parameter_groups(var_tree, latent_dim)
    signals = parameter_groups(signal_tree if signal_tree is not None else mean_tree, latent_dim)
    out = {}
    for name in means:
        tot = float(jnp.sum(varis[name]))
        sig = float(jnp.linalg.norm(signals[name]))
        out[name] = {"variance": float(jnp.mean(varis[name])), "total_variance": tot,
                     "signal": sig, "snr": sig / math.sqrt(tot) if tot > 0 else float("inf"),
                     "n_params": int(means[name].size)}
    return out


def mean_agreement(mean_a, var_a, mean_b, var_b, latent_dim: int, n_draws: int) -> dict:
    """||mean_a - mean_b|| divided by the norm the difference would have from sampling noise alone.

    When both estimators are unbiased for the same gradient, the expected squared norm of
    the difference of their n_draws-sample means is (tr Var_a + tr Var_b) / n_draws, so the
    ratio is close to 1; a bias shows up as a ratio well above 1. -> {group: ratio}.
    """
    ga, gb = parameter_groups(mean_a, latent_dim), parameter_groups(mean_b, latent_dim)
    va, vb = parameter_groups(var_a, latent_dim), parameter_groups(var_b, latent_dim)
    out = {}
    for name in ga:
        noise = math.sqrt(float(jnp.sum(va[name]) + jnp.sum(vb[name])) / n_draws)
        out[name] = float(jnp.linalg.norm(ga[name] - gb[name])) / noise if noise > 0 else float("nan")
    return out


# --------------------------------------------------------------------------- training
def estimator_loss(estimator: str, n_samples: int = 1):
    """A custom loss for ``vae_core.train.train(..., loss=...)`` whose encoder gradient comes from
    ``estimator`` (see :func:`encoder_surrogate`); the decoder's gradient is always the
    pathwise grad_theta log p(x|z) at the same (stopped) z.

    Returns loss(model, x [b, D], key, step) -> (scalar, aux). The scalar's value is the
    Monte Carlo -ELBO (mean of log q(z|x) - log p(x, z) over the batch and the n_samples
    draws), so the history's 'train_loss' is comparable across estimators; its gradient is
    the estimator's. aux = {'rec': [b] mean log p(x|z) over the draws, 'kl': [b] analytic
    KL(q || N(0, I)), 'kl_weight': 1.0}, recorded without gradient.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if estimator == "score_loo" and n_samples < 2:
        raise ValueError("'score_loo' needs n_samples >= 2")

    def loss(model: VAE, x, key, step):
        graphdef, enc, rest = nnx.split(model, ENCODER, ...)
        stop = jax.lax.stop_gradient
        # encoder gradient from the chosen estimator, decoder parameters held fixed in it
        enc_part = encoder_surrogate(nnx.merge(graphdef, enc, stop(rest)), x, key, estimator, n_samples)
        # decoder gradient: pathwise log p(x|z) at stopped z (the same z the encoder term drew)
        dec_model = nnx.merge(graphdef, stop(enc), rest)
        post = dec_model.encode(x)
        z = sample_posterior(key, post, n_samples)
        rec = decoder_log_likelihood(dec_model, x, z)                         # [S, b]
        surrogate = -(enc_part + jnp.mean(rec))
        value = -jnp.mean(log_joint(dec_model, x, z) - posterior_log_density(z, post))
        aux = {"rec": stop(jnp.mean(rec, 0)), "kl": stop(kl_divergence(post)),
               "kl_weight": jnp.asarray(1.0, jnp.float32)}
        return surrogate - stop(surrogate) + stop(value), aux

    return loss


# =========================================================================== 3. full covariance
def random_full_posterior(key, dim: int, batch: int = 1, scale: float = 0.5) -> Posterior:
    """A random full-covariance Posterior: mean [batch, dim], log_diag [batch, dim] (log L_ii^2),
    offdiag [batch, dim (dim - 1) / 2] (the Cholesky factor's strictly-lower entries)."""
    k1, k2, k3 = jax.random.split(key, 3)
    n_off = dim * (dim - 1) // 2
    return Posterior(jax.random.normal(k1, (batch, dim)),
                     scale * jax.random.normal(k2, (batch, dim)),
                     scale * jax.random.normal(k3, (batch, n_off)))


def covariance(post: Posterior):
    """Sigma = L L^T for each example. -> [batch, L, L]."""
    L = scale_tril(post)
    return L @ jnp.swapaxes(L, -1, -2)


def reference_log_density(z, post: Posterior):
    """log N(z; mean, L L^T) by jax.scipy.stats.multivariate_normal (the independent check).

    z: [..., batch, L] -> [..., batch].
    """
    cov = covariance(post)
    f = lambda zb, m, c: jax.scipy.stats.multivariate_normal.logpdf(zb, m, c)  # noqa: E731
    return jax.vmap(f, in_axes=(-2, 0, 0), out_axes=-1)(z, post.mean, cov)


def quadratic_form_gradients(key, post: Posterior, A, n_samples: int):
    """Pathwise and exact gradients of E_q[z^T A z] wrt (mean, log_diag, offdiag) of one posterior.

    E[z^T A z] = mu^T A mu + tr(A L L^T), so d/dmu = (A + A^T) mu and d/dL = (A + A^T) L,
    restricted to L's free entries (chain rule through L_ii = exp(log_diag_i / 2)).
    post: a batch-1 full-covariance Posterior. Returns (pathwise Posterior, exact Posterior).
    """
    S = A + A.T

    def mc(p):
        z = sample_posterior(key, p, n_samples)[:, 0]            # [n, L]
        return jnp.mean(jnp.einsum("ni,ij,nj->n", z, A, z))

    path = jax.grad(mc)(post)
    L = scale_tril(post)[0]
    G = S @ L
    rows, cols = jnp.tril_indices(L.shape[0], k=-1)
    exact = Posterior((S @ post.mean[0])[None],
                      (jnp.diag(G) * 0.5 * jnp.diag(L))[None], G[rows, cols][None])
    return path, exact


# =========================================================================== 4. gamma
def gamma_pathwise_estimate(key, alpha, k, *, n_samples: int = 1, f=quadratic):
    """Pathwise d/dalpha E_{Gamma(alpha, 1)}[f(z, k)] through jax.random.gamma's implicit gradient."""
    return jax.grad(lambda a: jnp.mean(f(jax.random.gamma(key, a, (n_samples,)), k)))(alpha)


def gamma_score_estimate(key, alpha, k, *, n_samples: int = 1, f=quadratic):
    """Score-function d/dalpha E[f(z, k)]: f(z) (log z - digamma(alpha)), z ~ Gamma(alpha, 1)."""
    z = jax.random.gamma(key, alpha, (n_samples,))
    return jnp.mean(f(z, k) * (jnp.log(z) - jax.scipy.special.digamma(alpha)))


def gamma_exact_gradient(alpha, k):
    """d/dalpha E[(z - k)^2] for z ~ Gamma(alpha, 1): E = alpha + (alpha - k)^2, so 1 + 2 (alpha - k)."""
    return 1.0 + 2.0 * (alpha - k)


@partial(jax.jit, static_argnames=("estimator", "n_seeds", "n_samples", "f"))
def draw_gamma_estimates(key, alpha, k, *, estimator: str, n_seeds: int, n_samples: int = 1, f=quadratic):
    """n_seeds independent gamma-gradient estimates ('pathwise' or 'score'), vmapped. -> [n_seeds]."""
    fn = {"pathwise": gamma_pathwise_estimate, "score": gamma_score_estimate}[estimator]
    keys = jax.random.split(key, n_seeds)
    return jax.vmap(lambda kk: fn(kk, alpha, k, n_samples=n_samples, f=f))(keys)


# --------------------------------------------------------------------------- G-REP
class GrepEstimate(NamedTuple):
    """Per-draw G-REP terms for (d/dalpha, d/dbeta) of E_{Gamma(alpha, beta)}[f(z)], each [n, 2].

    rep:   the pathwise term   f'(z) grad_v T(eps; v)
    corr:  the correction      f(z) grad_v log q(eps; v)
    total: rep + corr, one unbiased estimate per draw (average the rows for an n-draw estimate)
    """
    rep: jax.Array
    corr: jax.Array
    total: jax.Array


def gamma_log_density(z, alpha, beta):
    """log Gamma(z; shape alpha, rate beta) = alpha log beta - log Gamma(alpha) + (alpha - 1) log z - beta z.

    Elementwise; z > 0.
    """
    return alpha * jnp.log(beta) - gammaln(alpha) + (alpha - 1.0) * jnp.log(z) - beta * z


def grep_standardize(z, alpha, beta):
    """G-REP's standardisation of a gamma variable (Ruiz, Titsias & Blei 2016):
    eps = T^{-1}(z; alpha, beta) = (log z - psi(alpha) + log beta) / sqrt(psi_1(alpha)).

    log z has mean psi(alpha) - log beta and variance psi_1(alpha) (digamma, trigamma), so eps
    has mean 0 and variance 1 for every (alpha, beta). Elementwise.
    """
    return (jnp.log(z) - digamma(alpha) + jnp.log(beta)) / jnp.sqrt(polygamma(1, alpha))


def grep_transform(eps, alpha, beta):
    """The inverse of :func:`grep_standardize`, elementwise:
    z = T(eps; alpha, beta) = exp(eps sqrt(psi_1(alpha)) + psi(alpha) - log beta)."""
    return jnp.exp(eps * jnp.sqrt(polygamma(1, alpha)) + digamma(alpha) - jnp.log(beta))


def grep_eps_log_density(eps, alpha, beta):
    """log q(eps; alpha, beta), the density of eps = T^{-1}(z) for z ~ Gamma(alpha, beta), by change of
    variables: log q(T(eps; v); v) + log J(eps; v) with J = dT/deps = T(eps; v) sqrt(psi_1(alpha)).

    Elementwise. Written through T, so its gradient with respect to (alpha, beta) at fixed eps is
    the total derivative G-REP's correction term needs. beta cancels exactly: eps's distribution
    depends on alpha only.
    """
    s = jnp.sqrt(polygamma(1, alpha))
    log_z = eps * s + digamma(alpha) - jnp.log(beta)           # log T(eps; v)
    # log q(T; v) + log T + log s, written in log z so that a z below float32's range stays finite
    return alpha * jnp.log(beta) - gammaln(alpha) + alpha * log_z - beta * jnp.exp(log_z) + jnp.log(s)


@partial(jax.jit, static_argnames=("f",))
def grep_terms(z, f, alpha, beta) -> GrepEstimate:
    """G-REP's two terms at given draws z [n] ~ Gamma(alpha, beta), for v = (alpha, beta).

    With eps = T^{-1}(z; v) held fixed (:func:`grep_standardize`), one draw gives
      rep  = f'(T(eps; v)) grad_v T(eps; v)                               (pathwise, through T)
      corr = f(T(eps; v)) grad_v [log q(T(eps; v); v) + log J(eps; v)]      (score of eps's density)
    and E[rep] + E[corr] = grad_v E_{Gamma(alpha, beta)}[f(z)]. f: a differentiable elementwise
    function of z (static: each new f compiles once). Returns a :class:`GrepEstimate` of [n, 2]
    arrays, columns (d/dalpha, d/dbeta).
    """
    v = jnp.stack([jnp.asarray(alpha, jnp.float32), jnp.asarray(beta, jnp.float32)])
    eps = jax.lax.stop_gradient(grep_standardize(z, v[0], v[1]))

    def one(e):
        rep = jax.grad(lambda w: f(grep_transform(e, w[0], w[1])))(v)
        score = jax.grad(lambda w: grep_eps_log_density(e, w[0], w[1]))(v)
        return rep, f(grep_transform(e, v[0], v[1])) * score

    rep, corr = jax.vmap(one)(eps)
    return GrepEstimate(rep, corr, rep + corr)


@partial(jax.jit, static_argnames=("n",))
def gamma_draws(key, alpha, beta, n: int):
    """n draws z ~ Gamma(shape alpha, rate beta) -> [n] (jax.random.gamma, compiled once per n)."""
    return jax.random.gamma(key, alpha, (n,)) / beta


def grep_gradient(key, f, alpha, beta, n: int) -> GrepEstimate:
    """G-REP gradient of E_{Gamma(alpha, beta)}[f(z)] wrt (alpha, beta) from n independent draws.

    Draws z [n] with :func:`gamma_draws` and returns :func:`grep_terms` at them: per-draw
    [n, 2] arrays rep, corr and total (columns d/dalpha, d/dbeta), so that
    ``mean_with_error(g.total[:, 0])`` is the n-draw estimate of d/dalpha and its standard error.
    """
    return grep_terms(gamma_draws(key, alpha, beta, n), f, alpha, beta)


def log_gamma_skewness(alpha):
    """Skewness of log z for z ~ Gamma(alpha, beta), which is also eps's: psi_2(alpha) / psi_1(alpha)^(3/2)."""
    return polygamma(2, alpha) / polygamma(1, alpha) ** 1.5


# =========================================================================== 5. exercises
def _draws_1d(draws, what: str, min_n: int, hint: str):
    """draws as a float64 1-D array, or a Verdict saying what is wrong with it."""
    try:
        arr = np.asarray(draws, np.float64)
    except (TypeError, ValueError):
        return Verdict(False, f"{what} should be an array of numbers, got {type(draws).__name__}.", hint)
    if arr.ndim == 2 and arr.shape[1] == 2:
        return Verdict(False, f"{what} has two columns (d/dmu, d/dsigma): keep only the one asked for.", hint)
    if arr.ndim != 1:
        return Verdict(False, f"{what} should be a 1-D array (one estimate per draw), got shape {arr.shape}.", hint)
    if len(arr) < min_n:
        return Verdict(False, f"{what} holds {len(arr)} draws; use at least {min_n} so that the check is tight "
                              "enough to mean something.", hint)
    if not np.all(np.isfinite(arr)):
        return Verdict(False, f"{what} contains NaN or infinity.", hint)
    return arr


def check_pathwise_sigma_variance(draws, *, n_sigma: float = 4.5) -> Verdict:
    """Exercise 1: draws = one-draw pathwise estimates of d/dsigma E[(x - k)^2] at mu = 1, sigma = 2,
    k = -3 (a 1-D array, at least 2**14 of them).

    Their sample mean must agree with the exact gradient 2 sigma and their sample variance with
    4 d^2 + 8 sigma^2 (:func:`closed_forms`), each within n_sigma standard errors computed from
    the draws themselves (:func:`mean_with_error`, :func:`variance_with_error`).
    """
    hint = ("draw with G.draw_estimates at mu = 1, sigma = 2, k = -3 (estimator 'pathwise', 2**16 seeds) and keep "
            f"the derivative with respect to sigma only: which column is it? The check allows {n_sigma:g} standard "
            "errors of the sample mean and of the sample variance.")
    if is_blank(draws):
        return check_close(None, 0.0, hint=hint)
    arr = _draws_1d(draws, "draws", 2**14, hint)
    if isinstance(arr, Verdict):
        return arr
    cf = closed_forms(-3.0, mu=1.0, sigma=2.0)
    mean, mean_se = mean_with_error(arr)
    verdict = check_close(mean, float(cf["grad_sigma"]), rtol=0.0, atol=n_sigma * mean_se, hint=hint,
                          what="the mean of your draws")
    if not verdict:
        return verdict
    var, var_se = variance_with_error(arr)
    verdict = check_close(var, float(cf["pathwise_var_sigma"]), rtol=0.0, atol=n_sigma * var_se, hint=hint,
                          what="the sample variance of your draws")
    if not verdict:
        return verdict
    return Verdict(True, f"The sample variance {var:.2f} +- {var_se:.2f} agrees with 4 d^2 + 8 sigma^2 = "
                         f"{float(cf['pathwise_var_sigma']):.0f} within {n_sigma:g} standard errors.")


BASELINE_OPTIONS = {
    "a": "Because E f is unknown in practice, and an unknown quantity cannot be the optimum.",
    "b": "Because the variance weighs each draw by its squared score eps^2, and f is largest where |eps| is "
         "large: the best constant is the score-weighted mean E[f eps^2] / E[eps^2], which exceeds E f.",
    "c": "Because subtracting E f makes the estimator biased, so a different constant is needed.",
    "d": "Because the best baseline must also cancel the true gradient 2 d.",
}


def check_best_baseline(my_best_baseline, why) -> Verdict:
    """Exercise 2: my_best_baseline(d) -> the constant b minimising Var[(f - b) eps] for the score
    function wrt mu at mu = sigma = 1 (f = (d + eps)^2); why: one key of :data:`BASELINE_OPTIONS`.

    Checked against ``closed_forms(k)['optimal_baseline']`` at six values of d (rtol 1e-6).
    """
    hint = ("Var[(f - b) eps] = E[(f - b)^2 eps^2] - (2 d)^2 is a parabola in b: set its derivative to zero. "
            "You need E[f eps^2] and E[eps^2] for f = (d + eps)^2 (E eps^2 = 1, E eps^4 = 3, odd powers vanish).")
    for d in (-4.0, -1.0, 0.0, 0.5, 2.0, 3.0):
        verdict = check_close(attempt(my_best_baseline, d), float(closed_forms(1.0 - d)["optimal_baseline"]),
                              rtol=1e-6, atol=1e-9, hint=hint, what=f"your b* at d = {d:g}")
        if not verdict:
            return verdict
    return check_choice(why, "b", options=BASELINE_OPTIONS,
                        hint="your b* is right. For the reason: which draws get the most weight in "
                             "E[(f - b)^2 eps^2], and how large is f at those draws?")


def check_gamma_log_gradient(draws, *, n_sigma: float = 4.5) -> Verdict:
    """Exercise 3: draws = {(alpha, name): 1-D array of one-draw estimates of d/dalpha E[log z]} for
    alpha in (0.5, 4.0) and name in ('pathwise', 'score'), z ~ Gamma(alpha, 1), at least 2**12 each.

    Each mean must agree with the exact trigamma psi'(alpha) within n_sigma standard errors of that mean.
    """
    hint = ("pass the test function f(z, k) = log z (k unused) as f= to G.draw_gamma_estimates; the exact "
            "derivative is the trigamma function, jax.scipy.special.polygamma(1, alpha). The check allows "
            f"{n_sigma:g} standard errors of each mean.")
    wanted = [(a, name) for a in (0.5, 4.0) for name in ("pathwise", "score")]
    if is_blank(draws):
        return check_close(None, 0.0, hint=hint)
    if not isinstance(draws, dict) or set(draws) != set(wanted):
        got = sorted(draws) if isinstance(draws, dict) else type(draws).__name__
        return Verdict(False, f"give a dict with the four keys {wanted}, got {got}.", hint)
    lines = []
    for a, name in wanted:
        arr = _draws_1d(draws[a, name], f"draws[{a}, {name!r}]", 2**12, hint)
        if isinstance(arr, Verdict):
            return arr
        exact = float(jax.scipy.special.polygamma(1, a))
        mean, se = mean_with_error(arr)
        verdict = check_close(mean, exact, rtol=0.0, atol=n_sigma * se, hint=hint,
                              what=f"the mean of your {name} draws at alpha = {a:g}")
        if not verdict:
            return verdict
        lines.append(f"{name} at alpha = {a:g}: {mean:.4f} +- {se:.4f}")
    return Verdict(True, "Every mean agrees with psi'(alpha) within " f"{n_sigma:g} standard errors ("
                         + "; ".join(lines) + ").")


def check_score_variance(my_score_variance) -> Verdict:
    """Exercise 4: my_score_variance(d, sigma) -> the variance of one score-function draw
    f(x) (x - mu) / sigma^2 of d/dmu E[(x - k)^2], x ~ N(mu, sigma^2), d = mu - k.

    Checked against the exact ``closed_forms(k, mu, sigma)['score_var_mu']`` (no baseline) at six
    (d, sigma) points, rtol 1e-6.
    """
    hint = ("write x = mu + sigma eps, so one draw is (d + sigma eps)^2 eps / sigma. Expand (d + sigma eps)^4 eps^2, "
            "keep the even powers of eps (E eps^2 = 1, E eps^4 = 3, E eps^6 = 15), divide by sigma^2 and subtract "
            "the squared mean (2 d)^2. At sigma = 1 the answer must be d^4 + 14 d^2 + 15.")
    points = [(1.0, 1.0), (4.0, 2.0), (-1.5, 0.5), (0.0, 3.0), (2.0, 0.3), (-3.0, 1.7)]
    right_at_one = False
    for d, sigma in points:
        expected = float(closed_forms(-d, mu=0.0, sigma=sigma)["score_var_mu"])
        verdict = check_close(attempt(my_score_variance, d, sigma), expected, rtol=1e-6, atol=1e-9, hint=hint,
                              what=f"your variance at d = {d:g}, sigma = {sigma:g}")
        if not verdict:
            if right_at_one:
                return Verdict(False, verdict.message + " (Right at sigma = 1: check how each term scales "
                                                        "with sigma.)", hint)
            return verdict
        right_at_one = right_at_one or sigma == 1.0
    return Verdict(True, "It matches at all six (d, sigma) points. A narrow q (small sigma) makes the "
                         "score function noisier through its d^4 / sigma^2 term, while the pathwise "
                         "variance 4 sigma^2 shrinks.")


__all__ = [
    "ESTIMATORS", "quadratic", "gaussian_score", "score_function_estimate", "pathwise_estimate",
    "draw_estimates", "closed_forms", "variance_with_error", "mean_with_error", "EstimatorExplorer", "ENCODER",
    "mc_elbo", "encoder_surrogate", "encoder_gradient", "gradient_moments", "parameter_groups",
    "group_statistics", "mean_agreement", "estimator_loss", "random_full_posterior",
    "covariance", "reference_log_density", "quadratic_form_gradients", "gamma_pathwise_estimate",
    "gamma_score_estimate", "gamma_exact_gradient", "draw_gamma_estimates", "GrepEstimate", "gamma_log_density",
    "grep_standardize", "grep_transform", "grep_eps_log_density", "grep_terms", "gamma_draws", "grep_gradient",
    "log_gamma_skewness", "check_pathwise_sigma_variance", "BASELINE_OPTIONS", "check_best_baseline",
    "check_gamma_log_gradient", "check_score_variance",
]
