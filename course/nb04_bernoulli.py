"""Helpers for notebook 04 (a Bernoulli VAE on MNIST, trained and explored).

Small, tested functions the notebook calls so that it holds no model or metric code:

  order_by_kl            latent dimensions sorted by their average KL, most used first
  normal_grid            a grid of 2-d codes through the Gaussian's inverse CDF (Kingma & Welling)
  prior_samples          vae_core.evaluate.sample_prior, plus one Bernoulli draw of each mean
  flip_noise, mask_patches   corrupt images for the denoising section
  mean_abs_error         per-image distance between two image sets
  log_likelihood_cached  vae_core.evaluate.log_marginal_likelihood, memoised on disk
  ModelTracker           train_or_load that counts trained vs cached models and records
                         the notebook's cold-cache and cached wall times

Reconstructions, tables and metrics come from the engine: ``vae_core.evaluate.reconstruct``,
``vae_core.plots.format_table``, ``vae_core.metrics.active_units``.
"""
from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import norm

from vae_core.checkpoint import cache_dir, train_or_load
from vae_core.config import mode_name
from vae_core.data import binarize
from vae_core.evaluate import log_marginal_likelihood, sample_prior
from vae_core.files import atomic_write
from vae_core.models import VAE, params_to_arrays


# ----------------------------------------------------------------------------- latents
def order_by_kl(kl_per_dim) -> np.ndarray:
    """Indices of the latent dimensions sorted by average KL, largest first. kl_per_dim: [L] -> [L].

    Ties keep index order (stable sort), so the result is deterministic.
    """
    kl = np.asarray(kl_per_dim, dtype=np.float64)
    if kl.ndim != 1 or kl.size == 0:
        raise ValueError(f"kl_per_dim must be a non-empty 1-d array [L], got shape {kl.shape}")
    if not np.all(np.isfinite(kl)):
        raise ValueError("kl_per_dim contains NaN or inf values")
    return np.argsort(-kl, kind="stable")


def normal_grid(n: int, p_low: float = 0.05, p_high: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """An n x n grid of 2-d codes evenly spaced in probability under N(0, I).

    Each axis takes the values Phi^{-1}(p) for n probabilities p evenly spaced in
    [p_low, p_high] (Kingma & Welling's Fig. 4 uses this construction), so the grid is
    dense where the prior has its mass. Returns (codes [n*n, 2], values [n]). Codes run
    row by row, top row first: row r has z2 = values[n-1-r] (largest z2 on top, as on a
    plot's y axis) and column c has z1 = values[c], so ``tile_images(decode_mean(model, codes), n)``
    lines up with a scatter of the codes.
    """
    if int(n) < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    if not 0.0 < p_low < p_high < 1.0:
        raise ValueError(f"need 0 < p_low < p_high < 1, got p_low={p_low}, p_high={p_high}")
    values = norm.ppf(np.linspace(p_low, p_high, int(n)))
    z1, z2 = np.meshgrid(values, values[::-1])
    return np.stack([z1.ravel(), z2.ravel()], axis=1).astype(np.float32), values.astype(np.float32)


def prior_samples(model: VAE, key, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw z ~ N(0, I) and decode: (Bernoulli means [n, D], one Bernoulli draw of each [n, D]).

    The means are :func:`vae_core.evaluate.sample_prior`'s; the draws flip each pixel's coin.
    """
    k_z, k_x = jax.random.split(key)
    _, means = sample_prior(model, k_z, int(n))
    return means, np.asarray(binarize(k_x, means))


# ----------------------------------------------------------------------------- corruption
def flip_noise(key, x, p: float) -> np.ndarray:
    """Flip each pixel of binary images x [n, D] with probability p (salt-and-pepper noise)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [0, 1], got {p}")
    x = jnp.asarray(x, jnp.float32)
    flips = jax.random.bernoulli(key, p, x.shape)
    return np.asarray(jnp.where(flips, 1.0 - x, x))


def mask_patches(key, x, size: int, image_shape=(28, 28), margin: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Blank one size x size square per image (pixels set to 0) at a random place.

    The square's corner is drawn uniformly so that the square lies inside the image with
    at least ``margin`` pixels to each border (where the digits are). x: [n, H*W].
    Returns (masked images [n, D], mask [n, D] with 1 where pixels were blanked).
    """
    H, W = image_shape
    size, margin = int(size), int(margin)
    if size < 1 or size + 2 * margin > min(H, W):
        raise ValueError(f"size={size} with margin={margin} does not fit a {H}x{W} image")
    x = np.asarray(x, np.float32)
    n = len(x)
    k_r, k_c = jax.random.split(key)
    rows = np.asarray(jax.random.randint(k_r, (n,), margin, H - margin - size + 1))
    cols = np.asarray(jax.random.randint(k_c, (n,), margin, W - margin - size + 1))
    mask = np.zeros((n, H, W), np.float32)
    for i in range(n):
        mask[i, rows[i]:rows[i] + size, cols[i]:cols[i] + size] = 1.0
    mask = mask.reshape(n, -1)
    return x * (1.0 - mask), mask


def mean_abs_error(a, b, mask=None) -> np.ndarray:
    """Mean absolute pixel difference per image between a and b: [n, D] -> [n].

    mask: optional [n, D] of 0/1; the mean is then taken over the pixels where mask is 1
    only (e.g. inside a blanked patch). Images with an empty mask give NaN.
    """
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    err = np.abs(a - b)
    if mask is None:
        return err.mean(axis=-1)
    mask = np.asarray(mask, np.float32)
    if mask.shape != a.shape:
        raise ValueError(f"mask has shape {mask.shape}, images have {a.shape}")
    count = mask.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (err * mask).sum(axis=-1) / count, np.nan)


# ----------------------------------------------------------------------------- caching
def _digest(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, (np.ndarray, jax.Array)):
            a = np.ascontiguousarray(np.asarray(p))
            h.update(str((a.shape, a.dtype.str)).encode())
            h.update(a.tobytes())
        else:
            h.update(repr(p).encode())
    return h.hexdigest()[:16]


def log_likelihood_cached(model: VAE, x, key, *, k: int, directory=None, **kwargs) -> np.ndarray:
    """:func:`vae_core.evaluate.log_marginal_likelihood`, stored on disk and reused.

    The file name hashes the parameters (``vae_core.models.params_to_arrays``), the
    images, the key, k and the other keyword arguments, so a changed model or setting
    computes afresh. Returns log p(x) [n].
    """
    arrays = params_to_arrays(model)
    key_data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else np.asarray(key)
    digest = _digest(model.cfg.to_dict(), sorted(arrays), *(arrays[name] for name in sorted(arrays)),
                     np.asarray(x), key_data, k, sorted(kwargs.items()))
    path = Path(directory or cache_dir()) / "loglik" / f"loglik-k{k}-{digest}.npy"
    if path.exists():
        try:
            return np.load(path)
        except (OSError, ValueError):
            pass  # unreadable: compute again
    ll = np.asarray(log_marginal_likelihood(model, x, key, k=k, **kwargs))
    buffer = io.BytesIO()
    np.save(buffer, ll)
    atomic_write(path, buffer.getvalue())
    return ll


class ModelTracker:
    """train_or_load that remembers which models it trained and which it loaded.

    ``tracker.get(name, model_cfg, train_cfg, x_train, x_test)`` returns the TrainResult
    and files the model under 'trained', 'shipped' or 'loaded' (from the cache) by the
    result's ``source``. ``tracker.finish()`` returns a summary of this run's wall time
    (since the tracker was made) and stores it in a small JSON log beside the model cache
    as this notebook's latest 'cold' run (every model trained), 'shipped' run (every model
    shipped) or 'cached' run (every model from the cache), per mode.
    """

    def __init__(self, notebook: str, directory=None, log_path=None):
        self.notebook = notebook
        self.directory = directory
        self.log_path = Path(log_path) if log_path else Path(directory or cache_dir()).parent / "run_times.json"
        self.start = time.perf_counter()
        self.trained: list[str] = []
        self.shipped: list[str] = []
        self.loaded: list[str] = []

    def get(self, name, model_cfg, train_cfg, x_train, x_test=None, **kwargs):
        result = train_or_load(name, model_cfg, train_cfg, x_train, x_test, directory=self.directory, **kwargs)
        {"trained": self.trained, "shipped": self.shipped}.get(result.source, self.loaded).append(name)
        return result

    def kind(self) -> str:
        groups = {"cold": self.trained, "shipped": self.shipped, "cached": self.loaded}
        only = [kind for kind, names in groups.items() if names and sum(map(len, groups.values())) == len(names)]
        return only[0] if only else "partial"

    def finish(self, now: float | None = None) -> dict:
        """Record and return {'seconds', 'kind', 'trained', 'shipped', 'loaded', 'log': {kind: seconds}}."""
        seconds = (time.perf_counter() if now is None else now) - self.start
        kind = self.kind()
        log = {}
        if self.log_path.exists():
            try:
                log = json.loads(self.log_path.read_text())
            except (OSError, ValueError):
                log = {}
        entry = log.setdefault(f"{self.notebook}:{mode_name()}", {})
        if kind != "partial":
            entry[kind] = round(seconds, 1)
            atomic_write(self.log_path, json.dumps(log, indent=1, sort_keys=True).encode())
        return {"seconds": seconds, "kind": kind, "trained": len(self.trained), "shipped": len(self.shipped),
                "loaded": len(self.loaded),
                "log": dict(entry)}


__all__ = ["order_by_kl", "normal_grid", "prior_samples", "flip_noise", "mask_patches", "mean_abs_error",
           "log_likelihood_cached", "ModelTracker"]
