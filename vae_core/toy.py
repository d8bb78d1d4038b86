"""A linear-Gaussian latent model, where everything a VAE approximates is exact.

    z ~ N(0, I_L),    x | z ~ N(W z + b, sigma^2 I_D)       W: [D, L], b: [D]

Marginal:  p(x) = N(x; b, W W^T + sigma^2 I)
Posterior: p(z|x) = N(m, S),  S = (I + W^T W / sigma^2)^-1,  m = S W^T (x - b) / sigma^2

For a Gaussian q(z) = N(mu, C) the ELBO is closed-form too:
    ELBO(q) = E_q[log p(x|z)] - KL(q || N(0, I))
    E_q[log p(x|z)] = log N(x; W mu + b, sigma^2 I) - tr(W C W^T) / (2 sigma^2)
and log p(x) = ELBO(q) + KL(q || p(z|x)) holds exactly. ``tests/test_toy.py`` checks
these identities against brute-force numbers, and the engine's bounds are tested
against them (``as_vae`` turns this model into a VAE with the exact posterior).
"""
from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np

from .models import ModelConfig, model_from_arrays, n_offdiag


@dataclasses.dataclass(frozen=True)
class LinearGaussian:
    """W: [D, L], b: [D], sigma: observation noise standard deviation."""

    W: np.ndarray
    b: np.ndarray
    sigma: float

    @property
    def dims(self) -> tuple[int, int]:
        return self.W.shape  # (D, L)

    def log_evidence(self, x) -> jnp.ndarray:
        """Exact log p(x). x: [n, D] -> [n]."""
        D = self.W.shape[0]
        cov = self.W @ self.W.T + self.sigma**2 * jnp.eye(D)
        return _mvn_logpdf(jnp.atleast_2d(x), jnp.asarray(self.b), cov)

    def posterior(self, x) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Exact p(z|x) = N(mean [n, L], cov [L, L]) (the covariance does not depend on x)."""
        W, s2 = jnp.asarray(self.W), self.sigma**2
        L = W.shape[1]
        cov = jnp.linalg.inv(jnp.eye(L) + W.T @ W / s2)
        mean = (jnp.atleast_2d(x) - self.b) @ W @ cov.T / s2
        return mean, cov

    def elbo(self, x, q_mean, q_cov) -> jnp.ndarray:
        """Closed-form ELBO for q(z) = N(q_mean [n, L], q_cov [L, L]). -> [n]."""
        W, s2 = jnp.asarray(self.W), self.sigma**2
        x = jnp.atleast_2d(x)
        D, L = W.shape
        resid = x - (q_mean @ W.T + self.b)
        expected_loglik = (-0.5 * jnp.sum(resid**2, -1) / s2 - 0.5 * D * math.log(2 * math.pi * s2)
                           - 0.5 * jnp.trace(W @ q_cov @ W.T) / s2)
        return expected_loglik - gaussian_kl(q_mean, q_cov, jnp.zeros(L), jnp.eye(L))

    def kl_to_posterior(self, x, q_mean, q_cov) -> jnp.ndarray:
        """KL(q || p(z|x)) for q = N(q_mean [n, L], q_cov [L, L]). -> [n]."""
        p_mean, p_cov = self.posterior(x)
        return gaussian_kl(q_mean, q_cov, p_mean, p_cov)

    def as_vae(self, posterior: str = "full"):
        """A ``VAE`` whose decoder is this model and whose encoder outputs the exact
        posterior (for posterior='full'): linear encoder and decoder, no hidden layers."""
        D, L = self.W.shape
        cfg = ModelConfig(latent_dim=L, hidden=(), likelihood="gaussian", obs_std=float(self.sigma),
                          image_shape=(1, D), posterior=posterior)
        s2 = self.sigma**2
        p_cov = np.linalg.inv(np.eye(L) + self.W.T @ self.W / s2)
        chol = np.linalg.cholesky(p_cov)
        A = (p_cov @ self.W.T / s2)            # mean = A (x - b)
        kernel = np.zeros((D, 2 * L + (n_offdiag(L) if posterior == "full" else 0)), np.float32)
        bias = np.zeros(kernel.shape[1], np.float32)
        kernel[:, :L] = A.T
        bias[:L] = -(A @ self.b)
        if posterior == "full":
            bias[L:2 * L] = 2 * np.log(np.diag(chol))
            rows, cols = np.tril_indices(L, k=-1)
            bias[2 * L:] = chol[rows, cols]
        else:
            bias[L:2 * L] = np.log(np.diag(p_cov))
        return model_from_arrays(cfg, {
            "encoder/head/linear/kernel": kernel, "encoder/head/linear/bias": bias,
            "decoder/output/kernel": np.asarray(self.W.T, np.float32),
            "decoder/output/bias": np.asarray(self.b, np.float32)})

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw n data points x: [n, D]."""
        D, L = self.W.shape
        z = rng.standard_normal((n, L))
        return z @ self.W.T + self.b + self.sigma * rng.standard_normal((n, D))


def gaussian_kl(m1, c1, m2, c2) -> jnp.ndarray:
    """KL(N(m1, c1) || N(m2, c2)); means [n, L] or [L], covariances [L, L]. -> [n]."""
    L = c1.shape[-1]
    c2_inv = jnp.linalg.inv(c2)
    diff = jnp.atleast_2d(m2) - jnp.atleast_2d(m1)
    _, logdet1 = jnp.linalg.slogdet(c1)
    _, logdet2 = jnp.linalg.slogdet(c2)
    return 0.5 * (jnp.trace(c2_inv @ c1) + jnp.einsum("ni,ij,nj->n", diff, c2_inv, diff) - L + logdet2 - logdet1)


def _mvn_logpdf(x, mean, cov):
    D = cov.shape[-1]
    chol = jnp.linalg.cholesky(cov)
    y = jnp.linalg.solve(chol, (x - mean).T).T
    return -0.5 * jnp.sum(y**2, -1) - jnp.sum(jnp.log(jnp.diag(chol))) - 0.5 * D * math.log(2 * math.pi)


__all__ = ["LinearGaussian", "gaussian_kl"]
