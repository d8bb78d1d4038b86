"""Log-likelihoods, KL terms and the bounds the course trains and evaluates with.

Conventions: every function returns per-example values (shape [batch] or
[batch, latent]) and leaves averaging to the caller, so the same code serves training
losses, test-set reports and per-digit analysis. Log-likelihoods are in nats.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

from .models import Posterior, VAE, sample_posterior, scale_tril

# log-variances are clipped to this range before exp(): exp(±30) stays finite in
# float32, so extreme encoder outputs give large but finite KL terms, never inf/NaN.
LOGVAR_LIMIT = 30.0
LOG_2PI = math.log(2 * math.pi)


def _safe_logvar(logvar):
    return jnp.clip(logvar, -LOGVAR_LIMIT, LOGVAR_LIMIT)


# --------------------------------------------------------------------------- likelihoods
def bernoulli_log_likelihood(logits: jax.Array, x: jax.Array) -> jax.Array:
    """log p(x|z) for factorized Bernoulli pixels. logits, x: [..., D] -> [...].

    Uses optax's log-sigmoid form, finite for logits of +-1e4.
    """
    return -jnp.sum(optax.sigmoid_binary_cross_entropy(logits, x), axis=-1)


def gaussian_log_likelihood(mean: jax.Array, x: jax.Array, log_std: jax.Array) -> jax.Array:
    """log N(x; mean, exp(log_std)^2) summed over pixels. mean, x: [..., D]; log_std: [D] or []."""
    log_std = jnp.broadcast_to(log_std, mean.shape)
    z = (x - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * LOG_2PI, axis=-1)


def gaussian_log_density(z: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """log N(z; mean, diag(exp(logvar))) summed over the last axis. [..., L] -> [...]."""
    logvar = _safe_logvar(logvar)
    return jnp.sum(-0.5 * ((z - mean) ** 2 * jnp.exp(-logvar) + logvar + LOG_2PI), axis=-1)


def standard_normal_log_density(z: jax.Array) -> jax.Array:
    """log N(z; 0, I). [..., L] -> [...]."""
    return jnp.sum(-0.5 * (z**2 + LOG_2PI), axis=-1)


def posterior_log_density(z: jax.Array, post: Posterior) -> jax.Array:
    """log q(z|x) for z: [..., batch, L] under a diagonal or full-covariance Posterior."""
    if post.offdiag is None:
        return gaussian_log_density(z, post.mean, post.logvar)
    L = scale_tril(post)  # [batch, L, L]
    diff = z - post.mean
    # solve L y = diff for each example (broadcast over leading sample axes)
    solve = lambda Lb, db: jax.scipy.linalg.solve_triangular(Lb, db.T, lower=True).T  # noqa: E731
    y = jax.vmap(solve, in_axes=(0, -2), out_axes=-2)(L, diff)
    log_det = jnp.sum(_safe_logvar(post.logvar), axis=-1) * 0.5
    dim = z.shape[-1]
    return -0.5 * jnp.sum(y**2, axis=-1) - log_det - 0.5 * dim * LOG_2PI


def decoder_log_likelihood(model: VAE, params, z: jax.Array, x: jax.Array) -> jax.Array:
    """log p(x|z) under the model's decoder. z: [..., batch, L], x: [batch, D] -> [..., batch]."""
    lead = z.shape[:-1]
    out = model.apply(params, z.reshape(-1, z.shape[-1]), method=VAE.decode).reshape(*lead, -1)
    if model.cfg.likelihood == "bernoulli":
        return bernoulli_log_likelihood(out, x)
    log_std = model.apply(params, method=VAE.obs_log_std)
    return gaussian_log_likelihood(out, x, log_std)


# --------------------------------------------------------------------------- KL terms
def kl_per_dim(mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """Analytic KL(N(mean, exp(logvar)) || N(0, 1)) per latent dimension. [b, L] -> [b, L]."""
    logvar = _safe_logvar(logvar)
    return 0.5 * (jnp.exp(logvar) + mean**2 - 1.0 - logvar)


def kl_divergence(post: Posterior) -> jax.Array:
    """Analytic KL(q(z|x) || N(0, I)) summed over latents, for either covariance. -> [batch]."""
    if post.offdiag is None:
        return jnp.sum(kl_per_dim(post.mean, post.logvar), axis=-1)
    logvar = _safe_logvar(post.logvar)
    trace = jnp.sum(jnp.exp(logvar), -1) + jnp.sum(post.offdiag**2, -1)
    dim = post.mean.shape[-1]
    return 0.5 * (trace + jnp.sum(post.mean**2, -1) - dim - jnp.sum(logvar, -1))


def monte_carlo_kl(key: jax.Array, post: Posterior, n_samples: int) -> tuple[jax.Array, jax.Array]:
    """Monte Carlo KL(q || N(0, I)) = E_q[log q(z) - log p(z)] with its standard error.

    Returns (estimate [batch], standard error [batch]).
    """
    z = sample_posterior(key, post, n_samples)  # [n, batch, L]
    terms = posterior_log_density(z, post) - standard_normal_log_density(z)
    return jnp.mean(terms, 0), jnp.std(terms, 0, ddof=1) / jnp.sqrt(n_samples)


# --------------------------------------------------------------------------- bounds
def elbo_terms(model: VAE, params, x: jax.Array, key: jax.Array, beta: float | jax.Array = 1.0) -> dict:
    """One-sample ELBO and its parts for a batch x: [batch, D].

    Returns a dict of per-example arrays:
      elbo [batch]      = rec - beta * kl   (the beta-weighted objective)
      rec [batch]       = log p(x|z), z ~ q(z|x) reparameterized (z = mean for an AE)
      kl [batch]        = analytic KL(q(z|x) || N(0, I)) (0 for an AE)
      kl_per_dim [batch, L]
    """
    out, z, post = model.apply(params, x, key)
    if model.cfg.likelihood == "bernoulli":
        rec = bernoulli_log_likelihood(out, x)
    else:
        rec = gaussian_log_likelihood(out, x, model.apply(params, method=VAE.obs_log_std))
    if model.cfg.deterministic:
        per_dim = jnp.zeros_like(post.mean)
        kl = jnp.zeros(x.shape[0], x.dtype)
    elif post.offdiag is None:
        per_dim = kl_per_dim(post.mean, post.logvar)
        kl = jnp.sum(per_dim, -1)
    else:
        kl = kl_divergence(post)
        per_dim = jnp.broadcast_to(kl[:, None] / post.mean.shape[-1], post.mean.shape)
    return {"elbo": rec - beta * kl, "rec": rec, "kl": kl, "kl_per_dim": per_dim}


def log_importance_weights(model: VAE, params, x: jax.Array, key: jax.Array, k: int) -> jax.Array:
    """log w_i = log p(x, z_i) - log q(z_i|x) for k draws z_i ~ q(z|x). x: [batch, D] -> [k, batch]."""
    post = model.apply(params, x, method=VAE.encode)
    z = sample_posterior(key, post, k)
    return (decoder_log_likelihood(model, params, z, x) + standard_normal_log_density(z)
            - posterior_log_density(z, post))


def iwae_bound(model: VAE, params, x: jax.Array, key: jax.Array, k: int) -> jax.Array:
    """Importance-weighted bound L_k = E[log (1/k) sum_i w_i] (one draw). -> [batch].

    L_1 is the ELBO; L_k rises toward log p(x) as k grows (Burda et al. 2015).
    """
    logw = log_importance_weights(model, params, x, key, k)
    return jax.nn.logsumexp(logw, axis=0) - jnp.log(k)


# --------------------------------------------------------------------------- schedules
def linear_warmup(step: jax.Array, warmup_steps: int, final_value: float = 1.0) -> jax.Array:
    """A weight that rises linearly from 0 to final_value over warmup_steps, then stays.

    warmup_steps = 0 gives final_value from the first step (no warm-up).
    """
    if warmup_steps <= 0:
        return jnp.asarray(final_value, jnp.float32)
    frac = jnp.clip(jnp.asarray(step, jnp.float32) / warmup_steps, 0.0, 1.0)
    return final_value * frac


def capacity_objective(rec: jax.Array, kl: jax.Array, capacity: jax.Array, gamma: float) -> jax.Array:
    """Burgess et al.'s capacity loss: -log p(x|z) + gamma * |KL - C|, per example. -> [batch].

    A loss to minimise (not a bound). capacity C is raised during training.
    """
    return -rec + gamma * jnp.abs(kl - capacity)
