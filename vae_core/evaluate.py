"""Evaluation of a trained model: ELBO on a data set, importance-sampled log p(x),
active units, and the encode/decode helpers the notebooks and widgets use.

Everything runs in fixed-size jitted chunks (``lax.map`` over batches, ``lax.scan``
over importance samples), so memory stays bounded: log p(x) with k = 5000 on the
10,000 test images holds only ``batch_size x k_chunk`` decoder outputs at once.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .models import VAE
from .objectives import elbo_terms, log_importance_weights


def check_images(x, name: str, input_dim: int | None = None, *, binary: bool = False) -> None:
    """Raise ValueError naming ``name`` unless x is a finite float [n, D] array in [0, 1].

    binary=True also requires every value to be exactly 0 or 1 (targets of a Bernoulli
    decoder when no binarization is applied).
    """
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != 2:
        raise ValueError(f"{name} must be a 2-d array [n_images, n_pixels], got shape {shape}; "
                         "flatten images with x.reshape(len(x), -1).")
    if input_dim is not None and shape[1] != input_dim:
        raise ValueError(f"{name} has {shape[1]} pixels per image but the model expects {input_dim}.")
    dtype = np.dtype(x.dtype)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"{name} has dtype {dtype}; use float32 in [0, 1] (e.g. uint8 images / 255).")
    arr = np.asarray(x)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf values.")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0 or hi > 1:
        raise ValueError(f"{name} has values in [{lo:g}, {hi:g}]; pixel values must lie in [0, 1].")
    if binary and not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"{name} must be binary (0/1) for a Bernoulli decoder without binarization; "
                         "binarize it (vae_core.data.binarize) or train with binarize=True.")


def _pad_batches(x, batch_size):
    n = x.shape[0]
    n_batches = -(-n // batch_size)
    pad = n_batches * batch_size - n
    xp = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
    return xp.reshape(n_batches, batch_size, *x.shape[1:]), n


@partial(jax.jit, static_argnums=(0, 4))
def _elbo_all(model, params, x, key, batch_size, beta):
    batches, n = _pad_batches(x, batch_size)
    keys = jax.random.split(key, batches.shape[0])
    terms = jax.lax.map(lambda b: elbo_terms(model, params, b[0], b[1], beta), (batches, keys))
    return jax.tree_util.tree_map(lambda a: a.reshape(-1, *a.shape[2:])[:n], terms)


def evaluate(model: VAE, params, x, key, *, beta: float = 1.0, batch_size: int = 500,
             check: bool = True) -> dict:
    """Mean one-sample ELBO terms over a data set x: [n, D] (already binarized if binary).

    Returns {'elbo', 'rec', 'kl': scalars, 'kl_per_dim': [L]} in nats per image.
    """
    if check:
        check_images(x, "x", model.cfg.input_dim)
    terms = _elbo_all(model, params, jnp.asarray(x), key, min(batch_size, len(x)), beta)
    return {k: jnp.mean(v, axis=0) for k, v in terms.items()}


def elbo_per_example(model: VAE, params, x, key, *, beta: float = 1.0, batch_size: int = 500) -> dict:
    """Like :func:`evaluate` but per image: {'elbo','rec','kl': [n], 'kl_per_dim': [n, L]}."""
    check_images(x, "x", model.cfg.input_dim)
    return _elbo_all(model, params, jnp.asarray(x), key, min(batch_size, len(x)), beta)


@partial(jax.jit, static_argnums=(0, 4, 5, 6))
def _log_likelihood(model, params, x, key, k, k_chunk, batch_size):
    batches, n = _pad_batches(x, batch_size)
    n_chunks = k // k_chunk

    def one_batch(args):
        xb, kb = args

        def add_chunk(acc, kc):  # running logsumexp over chunks of importance samples
            logw = log_importance_weights(model, params, xb, kc, k_chunk)
            return jnp.logaddexp(acc, jax.nn.logsumexp(logw, axis=0)), None

        init = jnp.full(xb.shape[0], -jnp.inf, xb.dtype)
        total, _ = jax.lax.scan(add_chunk, init, jax.random.split(kb, n_chunks))
        return total - jnp.log(k)

    out = jax.lax.map(one_batch, (batches, jax.random.split(key, batches.shape[0])))
    return out.reshape(-1)[:n]


def log_likelihood(model: VAE, params, x, key, *, k: int = 5000, k_chunk: int = 500,
                   batch_size: int = 100, progress: bool = False) -> jax.Array:
    """Importance-sampled estimate of log p(x) per image, L_k with k samples. -> [n].

    x: [n, D] binary images (the test set binarized once). k is split into chunks of
    k_chunk samples (k must be a multiple of k_chunk when larger), so memory holds
    batch_size * k_chunk decoder outputs at a time. With progress=True a tqdm bar
    counts the batches of images.
    """
    check_images(x, "x", model.cfg.input_dim)
    if k < 1:
        raise ValueError(f"k must be >= 1 importance samples, got {k}")
    k_chunk = min(k_chunk, k)
    if k % k_chunk:
        raise ValueError(f"k={k} must be a multiple of k_chunk={k_chunk}")
    x = jnp.asarray(x)
    if not progress:
        return _log_likelihood(model, params, x, key, k, k_chunk, min(batch_size, len(x)))
    from tqdm.auto import tqdm

    step = batch_size * 10
    parts = []
    for i, start in enumerate(tqdm(range(0, len(x), step), desc=f"log p(x), k={k}", unit="block")):
        xs = x[start:start + step]
        parts.append(_log_likelihood(model, params, xs, jax.random.fold_in(key, i), k, k_chunk,
                                     min(batch_size, len(xs))))
    return jnp.concatenate(parts)


@partial(jax.jit, static_argnums=(0, 3))
def _encode_all(model, params, x, batch_size):
    batches, n = _pad_batches(x, batch_size)
    post = jax.lax.map(lambda b: model.apply(params, b, method=VAE.encode), batches)
    return jax.tree_util.tree_map(lambda a: a.reshape(-1, *a.shape[2:])[:n], post)


def encode(model: VAE, params, x, *, batch_size: int = 1000):
    """Posterior parameters for every image. x: [n, D] -> Posterior (mean [n, L], logvar [n, L])."""
    check_images(x, "x", model.cfg.input_dim)
    return _encode_all(model, params, jnp.asarray(x), min(batch_size, len(x)))


@partial(jax.jit, static_argnums=(0,))
def decode(model: VAE, params, z):
    """Pixel means for codes z: [n, L] -> [n, D] in [0, 1] (sigmoid of Bernoulli logits)."""
    out = model.apply(params, z, method=VAE.decode)
    return jax.nn.sigmoid(out) if model.cfg.likelihood == "bernoulli" else out


def active_units(model: VAE, params, x, *, threshold: float = 0.01) -> tuple[int, np.ndarray]:
    """Burda et al.'s active units: latents whose posterior mean varies across data.

    A_u = Var_x(E_q[z_u|x]) > threshold. x: [n, D]. Returns (count, variances [L]).
    """
    means = np.asarray(encode(model, params, x).mean)
    variances = means.var(axis=0)
    return int(np.sum(variances > threshold)), variances
