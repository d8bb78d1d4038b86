"""Log-likelihoods, KL terms and the bounds the course trains and evaluates with.

Conventions: every function returns per-example values (shape [batch] or
[batch, latent]) and leaves averaging to the caller, so the same code serves training
losses, test-set reports and per-digit analysis. Log-likelihoods are in nats.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from typing import NamedTuple

from .models import VAE, Posterior, sample_posterior, scale_tril

# log-variances are clipped to this range before exp(): exp(±30) stays finite in
# float32, so extreme encoder outputs give large but finite KL terms, never inf/NaN.
LOGVAR_LIMIT = 30.0
LOG_2PI = math.log(2 * math.pi)


def _safe_logvar(logvar):
    return jnp.clip(logvar, -LOGVAR_LIMIT, LOGVAR_LIMIT)


# --------------------------------------------------------------------------- likelihoods
def bernoulli_log_likelihood(logits: jax.Array, x: jax.Array) -> jax.Array:
    """log p(x|z) for factorized Bernoulli pixels. logits, x: [..., D] -> [...].

    Per pixel x*l - softplus(l) (= x log sigmoid(l) + (1-x) log sigmoid(-l)): one
    transcendental pair per pixel, finite for logits of +-1e4.
    """
    return jnp.sum(x * logits - softplus(logits), axis=-1)


@jax.custom_jvp
def softplus(logits: jax.Array) -> jax.Array:
    """log(1 + e^l) as max(l, 0) + log1p(e^-|l|), elementwise; finite for any finite l.

    Equal to ``jax.nn.softplus`` to float32 rounding and cheaper on XLA:CPU (that one is a
    ``logaddexp`` with extra selects for infinities); with the decoding in parts below it
    made log p(x) 1.9x faster on a 2-core CPU (``benchmarks/logpx_speed.py``). Its
    derivative is sigmoid(l), from the same e^-|l| (written out: max and abs alone would
    give 0 at l = 0).
    """
    return jnp.maximum(logits, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(logits)))


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (logits,), (dlogits,) = primals, tangents
    e = jnp.exp(-jnp.abs(logits))
    value = jnp.maximum(logits, 0.0) + jnp.log1p(e)
    return value, jnp.where(logits >= 0, 1.0, e) / (1.0 + e) * dlogits


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
        return gaussian_log_density(z, post.mean, post.log_diag)
    L = scale_tril(post)  # [batch, L, L]
    diff = z - post.mean
    # solve L y = diff for each example (broadcast over leading sample axes)
    solve = lambda Lb, db: jax.scipy.linalg.solve_triangular(Lb, db.T, lower=True).T  # noqa: E731
    y = jax.vmap(solve, in_axes=(0, -2), out_axes=-2)(L, diff)
    log_det = jnp.sum(_safe_logvar(post.log_diag), axis=-1) * 0.5
    dim = z.shape[-1]
    return -0.5 * jnp.sum(y**2, axis=-1) - log_det - 0.5 * dim * LOG_2PI


def observation_log_likelihood(model: VAE, out: jax.Array, x: jax.Array) -> jax.Array:
    """log p(x|z) from the decoder's output (logits or means). out: [..., D], x: [..., D] -> [...]."""
    if model.cfg.likelihood == "bernoulli":
        return bernoulli_log_likelihood(out, x)
    return gaussian_log_likelihood(out, x, model.obs_log_std())


def decoder_log_likelihood(model: VAE, x: jax.Array, z: jax.Array) -> jax.Array:
    """log p(x|z) under the model's decoder. x: [batch, D], z: [..., batch, L] -> [..., batch]."""
    lead = z.shape[:-1]
    out = model.decoder_output(z.reshape(-1, z.shape[-1])).reshape(*lead, -1)
    return observation_log_likelihood(model, out, x)


def log_joint(model: VAE, x: jax.Array, z: jax.Array) -> jax.Array:
    """log p(x, z) = log p(x|z) + log N(z; 0, I). x: [batch, D], z: [..., batch, L] -> [..., batch]."""
    return decoder_log_likelihood(model, x, z) + standard_normal_log_density(z)


# --------------------------------------------------------------------------- KL terms
def kl_per_dim(mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """Analytic KL(N(mean, exp(logvar)) || N(0, 1)) per latent dimension. [b, L] -> [b, L]."""
    logvar = _safe_logvar(logvar)
    return 0.5 * (jnp.exp(logvar) + mean**2 - 1.0 - logvar)


def kl_divergence(post: Posterior) -> jax.Array:
    """Analytic KL(q(z|x) || N(0, I)) summed over latents, for either covariance. -> [batch]."""
    if post.offdiag is None:
        return jnp.sum(kl_per_dim(post.mean, post.log_diag), axis=-1)
    logvar = _safe_logvar(post.log_diag)
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


# --------------------------------------------------------------------------- KL decomposition (beta-TCVAE)
def tc_decomposition(z: jax.Array, post: Posterior, dataset_size: int = 1) -> dict:
    """The KL term split as in Chen et al. (2018), estimated on one minibatch. -> dict of [batch].

    z: [M, L], one draw z_i ~ q(z|x_i) per example; post: the diagonal Gaussian q(z|x)
    of the same M examples (mean, log_diag: [M, L]); dataset_size: N, the number of
    examples the minibatch was drawn from. E_x KL(q(z|x) || p(z)) with p = N(0, I) is

        I(x; z)                          index-code mutual information      'mi'
      + KL(q(z) || prod_j q(z_j))        total correlation                  'tc'
      + sum_j KL(q(z_j) || p(z_j))       dimension-wise KL                  'dim_kl'

    with the aggregate posterior q(z) = (1/N) sum_n q(z|x_n). Per example i, with the
    paper's minibatch-weighted sampling (MWS) estimates

        log q(z_i)   ~ logsumexp_m log q(z_i | x_m)   - log(N M)
        log q(z_ij)  ~ logsumexp_m log q(z_ij | x_mj) - log(N M)     (each latent j)

    the terms are mi_i = log q(z_i|x_i) - log q(z_i), tc_i = log q(z_i) - sum_j log q(z_ij)
    and dim_kl_i = sum_j log q(z_ij) - log p(z_i). They add up, per example and exactly,
    to log q(z_i|x_i) - log p(z_i), the one-sample estimate of KL(q(z|x_i) || p), whatever
    N is; their batch means estimate the three terms.

    What N does (the tests pin it down): it only shifts the terms by constants,
    mi by +log N, tc by +(L-1) log N and dim_kl by -L log N, so it changes no gradient.
    dataset_size=1 uses the minibatch's own aggregate posterior q_B(z) = (1/M) sum_m q(z|x_m)
    exactly (the batch taken as the whole data set): the batch means are then unbiased
    for q_B's MI, TC and dimension-wise KL, and estimate the data set's when q(z|x) is
    wide next to the spacing of the M codes (for narrow posteriors the m = i term of the
    logsumexp dominates and TC comes out too high). The paper's N (the training-set size)
    adds the constants above, so its TC reads (L-1) log N nats higher, e.g. 99 nats for
    L = 10, N = 60,000.
    """
    if post.offdiag is not None:
        raise ValueError("tc_decomposition needs a diagonal Gaussian posterior (posterior='diagonal')")
    if int(dataset_size) < 1:
        raise ValueError(f"dataset_size must be the number of examples (>= 1), got {dataset_size}")
    M = z.shape[0]
    logvar = _safe_logvar(post.log_diag)
    # log q(z_ij | x_mj) for every pair (i, m): [M (draw i), M (example m), L]
    diff = z[:, None, :] - post.mean[None, :, :]
    log_q_pairs = -0.5 * (diff**2 * jnp.exp(-logvar)[None] + logvar[None] + LOG_2PI)
    log_norm = math.log(float(dataset_size) * M)
    log_qz = jax.nn.logsumexp(jnp.sum(log_q_pairs, -1), axis=1) - log_norm           # [M]
    log_qz_dims = jax.nn.logsumexp(log_q_pairs, axis=1) - log_norm                   # [M, L]
    log_qz_x = jnp.sum(jnp.diagonal(log_q_pairs, axis1=0, axis2=1).T, -1)           # log q(z_i|x_i)
    log_pz = standard_normal_log_density(z)
    sum_dims = jnp.sum(log_qz_dims, -1)
    return {"mi": log_qz_x - log_qz, "tc": log_qz - sum_dims, "dim_kl": sum_dims - log_pz}


def beta_tcvae_objective(rec: jax.Array, kl: jax.Array, tc: jax.Array, beta: float | jax.Array,
                         weight: float | jax.Array = 1.0) -> jax.Array:
    """Chen et al.'s beta-TCVAE loss (alpha = gamma = 1) per example: -rec + weight (kl + (beta - 1) tc). -> [batch].

    A loss to minimise. rec = log p(x|z), kl = the analytic KL(q(z|x) || N(0, I)), tc the
    total-correlation term of :func:`tc_decomposition` (all [batch]); weight: the KL
    warm-up factor (1: none). Since mi + tc + dim_kl is the one-sample estimate of kl,
    this has the expectation (and expected gradient) of -rec + mi + beta tc + dim_kl,
    the paper's objective, with the analytic KL's lower variance in place of the
    one-sample one; beta = 1 is the negative ELBO.
    """
    return -rec + weight * (kl + (beta - 1.0) * tc)


# --------------------------------------------------------------------------- bounds
def elbo_terms(model: VAE, x: jax.Array, key: jax.Array, beta: float | jax.Array = 1.0,
               target: jax.Array | None = None) -> dict:
    """One-sample ELBO and its parts for a batch x: [batch, D].

    target: optional [batch, D]; the decoder's likelihood is then that of the target
    instead of x (a denoising VAE: the encoder sees a corrupted x, the decoder is scored
    on the clean image; Im et al. 2017's denoising criterion). None: target = x.

    Returns a dict of per-example arrays:
      elbo [batch]      = rec - beta * kl   (the beta-weighted objective)
      rec [batch]       = log p(target|z), z ~ q(z|x) reparameterized (z = mean for an AE)
      kl [batch]        = analytic KL(q(z|x) || N(0, I)) (0 for an AE)
      kl_per_dim [batch, L]
    """
    return _elbo_draw(model, x, key, beta, target)[0]


def _elbo_draw(model: VAE, x, key, beta=1.0, target=None) -> tuple[dict, jax.Array, Posterior]:
    """elbo_terms' dict, with the draw z [batch, L] and the posterior it came from."""
    out, z, post = model(x, key)
    rec = observation_log_likelihood(model, out, x if target is None else target)
    if model.cfg.deterministic:
        per_dim = jnp.zeros_like(post.mean)
        kl = jnp.zeros(x.shape[0], x.dtype)
    elif post.offdiag is None:
        per_dim = kl_per_dim(post.mean, post.log_diag)
        kl = jnp.sum(per_dim, -1)
    else:
        kl = kl_divergence(post)
        per_dim = jnp.broadcast_to(kl[:, None] / post.mean.shape[-1], post.mean.shape)
    return {"elbo": rec - beta * kl, "rec": rec, "kl": kl, "kl_per_dim": per_dim}, z, post


def log_importance_weights(model: VAE, x: jax.Array, key: jax.Array, k: int,
                           post: Posterior | None = None, rows: int | None = None) -> jax.Array:
    """log w_i = log p(x, z_i) - log q(z_i|x) for k draws z_i ~ q(z|x). x: [batch, D] -> [k, batch].

    post: q(z|x) for this batch when the caller already has it (saves an encoder pass).
    rows: decode at most max(rows, batch) codes at a time: the k draws go through the
    decoder in parts of max(1, rows // batch) draws (a ``lax.map``; the last part padded with
    zeros that are dropped), so the decoder's output holds at most that many rows x D
    floats. The same draws; the numbers equal to float rounding. None decodes all k x batch
    at once.
    """
    post = model.encode(x) if post is None else post
    z = sample_posterior(key, post, k)                                    # [k, batch, L]
    batch = x.shape[0]
    if rows is None or rows >= k * batch:
        joint = log_joint(model, x, z)
    else:
        per_part = max(1, rows // batch)
        n_parts = -(-k // per_part)
        padded = jnp.concatenate([z, jnp.zeros((n_parts * per_part - k, *z.shape[1:]), z.dtype)])
        parts = padded.reshape(n_parts, per_part, *z.shape[1:])           # [parts, per_part, batch, L]
        joint = jax.lax.map(lambda zp: log_joint(model, x, zp), parts).reshape(-1, batch)[:k]
    return joint - posterior_log_density(z, post)


def log_mean_weight_in_chunks(log_weights, key: jax.Array, k: int, k_chunk: int, n: int,
                              dtype=jnp.float32) -> jax.Array:
    """log (1/k) sum_s w_s per example from k importance weights drawn k_chunk at a time.

    log_weights(key) -> [k_chunk, n] log w of k_chunk fresh draws; the chunks' logsumexps
    are combined by a running logaddexp in a ``lax.scan`` over ``jax.random.split(key,
    k // k_chunk)``, so memory holds one chunk. k must be a multiple of k_chunk. -> [n].
    The importance-sampled log-likelihood L_k of :func:`vae_core.evaluate.log_marginal_likelihood`
    and of the conditional models both use it.
    """
    if k < 1 or k_chunk < 1 or k % k_chunk:
        raise ValueError(f"k={k} must be a positive multiple of k_chunk={k_chunk}")

    def add_chunk(acc, kc):  # running logsumexp over chunks of importance samples
        return jnp.logaddexp(acc, jax.nn.logsumexp(log_weights(kc), axis=0)), None

    total, _ = jax.lax.scan(add_chunk, jnp.full(n, -jnp.inf, dtype), jax.random.split(key, k // k_chunk))
    return total - jnp.log(k)


def iwae_bound(model: VAE, x: jax.Array, key: jax.Array, k: int) -> jax.Array:
    """Importance-weighted bound L_k = E[log (1/k) sum_i w_i] (one draw). -> [batch].

    L_1 is the ELBO; L_k rises toward log p(x) as k grows (Burda et al. 2015).
    """
    logw = log_importance_weights(model, x, key, k)
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


# --------------------------------------------------------------------------- the training loss
class LossSpec(NamedTuple):
    """What a training step minimises; ``vae_core.train`` builds it from a TrainConfig.

    objective:      'elbo' (beta-weighted, with warm-up), 'iwae' (L_k), 'capacity' or
                    'beta_tcvae' (Chen et al.: beta weights the total correlation).
    beta, warmup_steps: KL weight = linear_warmup(step, warmup_steps, beta) ('elbo');
                    for 'beta_tcvae' the weight on the TC, the warm-up scaling all three terms.
    iwae_k:         importance samples ('iwae').
    capacity_max, capacity_steps, gamma: C = capacity_max * min(step / capacity_steps, 1) ('capacity').
    """

    objective: str = "elbo"
    beta: float = 1.0
    warmup_steps: int = 0
    iwae_k: int = 1
    capacity_max: float = 25.0
    capacity_steps: int = 1
    gamma: float = 100.0


def training_loss(model: VAE, x: jax.Array, key: jax.Array, step: jax.Array, spec: LossSpec,
                  target: jax.Array | None = None):
    """The scalar loss of one minibatch x: [batch, D] and what the history records.

    target: optional clean images [batch, D] the decoder is scored on while the encoder
    sees x (a denoising VAE, :func:`elbo_terms`); objectives 'elbo' and 'capacity' only.

    Returns (loss, aux) with aux = {'rec': [batch], 'kl': [batch], 'kl_weight': []}:
    the reconstruction and KL terms of one posterior draw, and the weight the loss
    really put on the KL term at this step — beta after warm-up ('elbo'),
    gamma * sign(KL - C) averaged over the batch ('capacity'), and NaN for 'iwae'
    (L_k has no separate KL term; rec and kl are then recorded without gradient).

    'beta_tcvae': loss = mean of -rec + w * (kl + (beta - 1) * tc) with w the warm-up
    weight (linear_warmup(step, warmup_steps, 1); 1 without warm-up), i.e. weight w on
    the index-code MI and the dimension-wise KL and w * beta on the total correlation
    (:func:`beta_tcvae_objective`); kl_weight records w, and aux also holds 'mi', 'tc',
    'dim_kl' ([batch]): :func:`tc_decomposition` with N = 1, the minibatch's own aggregate
    posterior. The paper's N (the training-set size) would only add constants to the three
    terms (TC (L-1) log N nats higher), which change neither the loss's gradient nor its
    optimum, and make the recorded TC unreadable; N = 1 keeps it in nats of q_B(z).
    """
    if target is not None and spec.objective not in ("elbo", "capacity"):
        raise ValueError(f"a separate target (denoising) needs objective 'elbo' or 'capacity', not {spec.objective!r}")
    if spec.objective == "iwae":
        k_iw, k_elbo = jax.random.split(key)
        bound = iwae_bound(model, x, k_iw, spec.iwae_k)
        t = jax.lax.stop_gradient(elbo_terms(model, x, k_elbo))
        aux = {"rec": t["rec"], "kl": t["kl"], "kl_weight": jnp.asarray(jnp.nan, jnp.float32)}
        return -jnp.mean(bound), aux
    if spec.objective == "beta_tcvae":
        if model.cfg.deterministic:
            raise ValueError("objective 'beta_tcvae' needs a stochastic encoder (deterministic=False)")
        t, z, post = _elbo_draw(model, x, key)
        parts = tc_decomposition(z, post, dataset_size=1)
        weight = linear_warmup(step, spec.warmup_steps, 1.0)
        loss = beta_tcvae_objective(t["rec"], t["kl"], parts["tc"], spec.beta, weight)
        return jnp.mean(loss), {"rec": t["rec"], "kl": t["kl"], "kl_weight": weight, **parts}
    t = elbo_terms(model, x, key, target=target)
    if spec.objective == "capacity":
        c = spec.capacity_max * jnp.clip(step / spec.capacity_steps, 0.0, 1.0)
        loss = capacity_objective(t["rec"], t["kl"], c, spec.gamma)
        weight = spec.gamma * jnp.mean(jnp.sign(t["kl"] - c))
    else:
        weight = linear_warmup(step, spec.warmup_steps, spec.beta)
        loss = -(t["rec"] - weight * t["kl"])
    return jnp.mean(loss), {"rec": t["rec"], "kl": t["kl"], "kl_weight": weight}


__all__ = ["LOGVAR_LIMIT", "bernoulli_log_likelihood", "softplus", "gaussian_log_likelihood", "gaussian_log_density",
           "standard_normal_log_density", "posterior_log_density", "observation_log_likelihood",
           "decoder_log_likelihood", "log_joint", "kl_per_dim", "kl_divergence", "monte_carlo_kl",
           "tc_decomposition", "beta_tcvae_objective", "elbo_terms",
           "log_importance_weights", "log_mean_weight_in_chunks", "iwae_bound", "linear_warmup", "capacity_objective", "LossSpec",
           "training_loss"]
