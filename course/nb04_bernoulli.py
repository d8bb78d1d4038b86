"""Helpers for notebook 04 (a Bernoulli VAE on MNIST, trained and explored).

Small, tested functions the notebook calls so that it holds no model or metric code:

  order_by_kl            latent dimensions sorted by their average KL, most used first
  normal_grid            a grid of 2-d codes through the Gaussian's inverse CDF (Kingma & Welling)
  prior_samples          vae_core.evaluate.sample_prior, plus one Bernoulli draw of each mean
  mean_abs_error         per-image distance between two image sets
  denoising_scores       a model's ELBO of clean digits from corrupted inputs, and its pixel errors
  fit_posterior          the best q(z|x) of a family per image, decoder fixed (the inference gaps)
  log_weights, elbo_estimate   the ELBO per image under a given q (log p(x) under a given q:
                         vae_core.evaluate.log_marginal_likelihood(..., post=q))
  mean_and_se            a mean over images and its standard error
  gaussian_decoder_report   ELBO, KL, active units, squared error and sigma of a Gaussian-decoder VAE
  log_likelihood_cached  vae_core.evaluate.log_marginal_likelihood, memoised on disk
  ModelTracker           train_or_load that counts trained vs cached models and records
                         the notebook's cold-cache and cached wall times
  paper_footing          shipped models' NLL (k = 5,000, all 10,000 test images) from their
                         cards, in rows beside a published number
  check_*                the exercises' checkers (each returns a vae_core.exercises.Verdict)

Reconstructions, tables and metrics come from the engine: ``vae_core.evaluate.reconstruct``,
``vae_core.plots.format_table``, ``vae_core.metrics.active_units``.
"""
from __future__ import annotations

import hashlib
import io
import itertools
import json
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from scipy.stats import norm

from vae_core import shipped
from vae_core.checkpoint import cache_dir, train_or_load
from vae_core.config import mode_name
from vae_core.data import binarize, flip_noise, mask_patches  # noqa: F401  (re-exported for notebook 04)
from vae_core.evaluate import evaluate, log_marginal_likelihood, reconstruct, sample_prior
from vae_core.exercises import Verdict, attempt, check_close, is_blank
from vae_core.files import atomic_write
from vae_core.metrics import active_units
from vae_core.models import VAE, Posterior, n_offdiag, params_to_arrays
from vae_core.objectives import bernoulli_log_likelihood, kl_per_dim, log_importance_weights


# ----------------------------------------------------------------------------- published numbers
PAPER_FOOTING = "NLL, k = 5,000, all 10,000 test images"


def paper_footing(names, paper: dict, cards: dict | None = None) -> list[dict]:
    """Rows comparing shipped models with a published NLL on the same footing.

    names: shipped models; each row comes from its card (``vae_core.shipped``), measured on
    the stored weights: the network, epochs and batch, where and how long it trained, the
    one-sample test ELBO and NLL = -log p(x) with k = 5,000 importance samples on all
    10,000 test images (None where it has not been measured). paper: the published row,
    e.g. {"model": "IWAE paper, VAE", "nll": 86.76}, appended last.
    """
    cards = shipped.load_cards() if cards is None else cards
    rows = []
    for name in names:
        c = cards[name]
        m, t = c["model_config"], c["train_config"]
        hidden = "-".join(str(h) for h in m["hidden"])
        on_footing = c.get("logpx_k") == 5000 and c.get("logpx_images") == 10000
        rows.append({"model": name, "network": f"{c['train_shape'][1]}-{hidden}-{m['latent_dim']} {m['activation']}",
                     "training": f"{c['epochs']:,} epochs, batch {t['batch_size']}",
                     "trained on": f"{c['device']}, {c['train_minutes'] / 60:.1f} h" if c["train_minutes"] >= 60
                     else f"{c['device']}, {c['train_minutes']:.0f} min",
                     "elbo": c["test_elbo"],
                     "nll": -c["test_logpx"] if on_footing else None,
                     "nll_se": c["test_logpx_stderr"] if on_footing else None})
    return rows + [{"elbo": None, "nll_se": None, **paper}]


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


# ----------------------------------------------------------------------------- errors
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


def denoising_scores(model: VAE, x_in, clean_bin, clean_grey, key, mask=None) -> dict:
    """How well a model repairs corrupted inputs x_in: [n, D] whose clean versions are known.

    elbo:   mean one-sample ELBO of the clean binary digits clean_bin [n, D] with the
            corrupted ones as the encoder's input (``evaluate(..., target=clean_bin)``), nats
    error:  mean |reconstruction - clean_grey| per image, averaged over images
    error_in_mask: the same inside the blanked square (mask [n, D]), NaN without a mask
    recon:  the reconstructions (decoded posterior means) [n, D]
    """
    recon = reconstruct(model, x_in)
    in_mask = float(np.nanmean(mean_abs_error(recon, clean_grey, mask))) if mask is not None else float("nan")
    return {"elbo": float(evaluate(model, x_in, key, target=clean_bin)["elbo"]),
            "error": float(mean_abs_error(recon, clean_grey).mean()), "error_in_mask": in_mask, "recon": recon}


# ----------------------------------------------------------------------------- Gaussian decoders
def gaussian_decoder_report(model: VAE, x, key) -> dict:
    """What a Gaussian-decoder VAE does with grey images x: [n, D] in [0, 1].

    elbo, kl: mean one-sample test ELBO and KL (nats; a density of continuous pixel values,
              so not comparable with a Bernoulli model's nats)
    kl_per_dim: [L] mean KL of each latent, largest first
    active:   active latents (vae_core.metrics.active_units, threshold 0.01)
    mse:      mean squared error of the reconstructions (decoded posterior means), per pixel
    sigma_median, sigma_min: the decoder's standard deviation over pixels (fixed or learned)
    """
    if model.cfg.likelihood != "gaussian":
        raise ValueError(f"expected a Gaussian-decoder model, got likelihood={model.cfg.likelihood!r}")
    ev = evaluate(model, x, key)
    sigma = np.exp(np.asarray(model.obs_log_std(), np.float64))
    return {"elbo": float(ev["elbo"]), "kl": float(ev["kl"]), "active": active_units(model, x)[0],
            "kl_per_dim": np.sort(np.asarray(ev["kl_per_dim"], np.float64))[::-1],
            "mse": float(np.mean((reconstruct(model, x) - np.asarray(x)) ** 2)),
            "sigma_median": float(np.median(sigma)), "sigma_min": float(sigma.min())}


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


def card_log_likelihood(result) -> tuple[float, float, str] | None:
    """A shipped Bernoulli model's test log p(x) from its card: (mean, standard error, 'k = 5000,
    10,000 images'), measured on the stored weights with all the test images (binarized once
    with ``vae_core.shipped.TEST_BINARIZATION_SEED``) when it was shipped; None for a trained
    or cached model, a card without one, or a Gaussian decoder's card (a density)."""
    card = result.extra if getattr(result, "source", None) == "shipped" else {}
    if "test_logpx" not in card or shipped.logpx_is_density(card):
        return None  # nothing measured, or a Gaussian decoder's density of grey pixels (not binary nats)
    return (float(card["test_logpx"]), float(card.get("test_logpx_stderr", float("nan"))),
            f"k = {card['logpx_k']}, {card['logpx_images']:,} images")


def sweep_log_likelihood(result, x, key, *, n: int, k: int) -> tuple[float, str]:
    """log p(x) of one model of a sweep and where it comes from: the card's (all the test
    images, k = 5,000; see :func:`card_log_likelihood`) for a shipped model, else estimated
    here on the first n images of x: [N, 784] binary with k samples (cached on disk)."""
    card = card_log_likelihood(result)
    if card is not None:
        return card[0], f"the model card ({card[2]})"
    ll = log_likelihood_cached(result.model, x[:n], key, k=k, k_chunk=min(500, k))
    return float(ll.mean()), f"estimated here (k = {k}, {min(n, len(x)):,} images)"


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


# ----------------------------------------------------------------------------- inference gaps
def fit_posterior(model: VAE, x, key, *, family: str = "diagonal", steps: int = 2000, n_samples: int = 16,
                  learning_rate: float = 1e-2, init: Posterior | None = None) -> Posterior:
    """The best Gaussian q(z|x) of a family for each image, the decoder held fixed.

    Cremer, Li & Duvenaud (2018)'s q*: each image's own mean and covariance factors are
    optimised by Adam on its one-image ELBO (n_samples reparameterized draws a step), with no
    encoder in between. x: [n, D] binary; family: 'diagonal' or 'full' (a Cholesky factor);
    init: the starting Posterior (default: the model's encoder output, off-diagonals 0).
    Returns a Posterior with [n, L] fields (and offdiag [n, L(L-1)/2] for 'full').
    """
    if family not in ("diagonal", "full"):
        raise ValueError(f"family must be 'diagonal' or 'full', got {family!r}")
    x = jnp.asarray(x, jnp.float32)
    start = model.encode(x) if init is None else init
    offdiag = None
    if family == "full":
        offdiag = (start.offdiag if start.offdiag is not None
                   else jnp.zeros((len(x), n_offdiag(start.mean.shape[-1])), jnp.float32))
    params = Posterior(start.mean, start.log_diag, offdiag)
    graphdef, state = nnx.split(model)
    tx = optax.adam(learning_rate)

    def loss(post, k):  # the images' ELBOs are independent, so their sum gives each its own gradient
        logw = log_importance_weights(nnx.merge(graphdef, state), x, k, n_samples, post=post)  # [n_samples, n]
        return -jnp.sum(jnp.mean(logw, axis=0))

    @jax.jit
    def run(params, key):
        def step(carry, k):
            params, opt = carry
            updates, opt = tx.update(jax.grad(loss)(params, k), opt, params)
            return (optax.apply_updates(params, updates), opt), None

        (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), jax.random.split(key, steps))
        return params

    return run(params, key)


@partial(jax.jit, static_argnums=(0, 5, 6))
def _log_weights(graphdef, state, x, post, key, n_chunks, chunk):
    model = nnx.merge(graphdef, state)
    return jax.lax.map(lambda k: log_importance_weights(model, x, k, chunk, post=post), jax.random.split(key, n_chunks))


def log_weights(model: VAE, x, post: Posterior, key, n: int, chunk: int = 100) -> np.ndarray:
    """log w_s = log p(x, z_s) - log q(z_s|x) for n draws z_s ~ q, q given (not the encoder's).

    x: [batch, D], post: [batch, L] -> [n, batch]; drawn chunk at a time (n a multiple of chunk).
    Their mean is the ELBO under q; their log-mean-exp estimates log p(x) with q as proposal.
    """
    n, chunk = int(n), min(int(chunk), int(n))
    if n < 1 or n % chunk:
        raise ValueError(f"n={n} must be a positive multiple of chunk={chunk}")
    w = _log_weights(*nnx.split(model), jnp.asarray(x, jnp.float32), post, key, n // chunk, chunk)
    return np.asarray(w, np.float64).reshape(n, -1)


def elbo_estimate(model: VAE, x, post: Posterior, key, n_samples: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Each image's ELBO under a given q (x: [n, D], post: [n, L]) from n_samples draws:
    (mean [n], Monte Carlo standard error [n]) in nats."""
    w = log_weights(model, x, post, key, n_samples)
    return w.mean(0), w.std(0, ddof=1) / np.sqrt(len(w))


def mean_and_se(values) -> tuple[float, float]:
    """Mean over images and its standard error: values [n] -> (mean, std / sqrt(n))."""
    v = np.asarray(values, np.float64)
    if v.ndim != 1 or len(v) < 2:
        raise ValueError(f"need a 1-d array of at least 2 values, got shape {v.shape}")
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v)))


# ----------------------------------------------------------------------------- exercises
def check_elbo(my_elbo, model, x, key) -> Verdict:
    """Exercise "write the loss yourself": my_elbo(model, x, key) -> [batch] one-sample ELBO per image.

    ``model`` is the notebook's hand-written VAE: ``model.encode(x) -> (mu, log_var)`` and
    ``model.decode(z) -> logits``. The reference uses the engine's Bernoulli log-likelihood and
    analytic KL on the same reparameterized draw (eps = jax.random.normal(key, mu.shape)).
    """
    hint = ("encode x into (mu, log_var); z = mu + exp(log_var / 2) * eps with eps = jax.random.normal(key, mu.shape); "
            "log p(x|z) sums x * logits - softplus(logits) over the pixels; subtract the analytic KL, "
            "1/2 sum(mu^2 + exp(log_var) - 1 - log_var) over the latents. Return one number per image.")
    answer = attempt(my_elbo, model, x, key)
    mu, log_var = model.encode(x)
    z = mu + jnp.exp(0.5 * log_var) * jax.random.normal(key, mu.shape)
    expected = bernoulli_log_likelihood(model.decode(z), x) - jnp.sum(kl_per_dim(mu, log_var), -1)
    return check_close(answer, expected, rtol=1e-5, atol=1e-3, hint=hint, what="your ELBO per image")


def subset_average(log_w, m: int) -> float:
    """Mean over all m-element subsets I of log((1/m) sum_{i in I} w_i), for one row log_w: [k]."""
    log_w = np.asarray(log_w, np.float64)
    values = [float(jax.scipy.special.logsumexp(log_w[list(idx)]) - np.log(m))
              for idx in itertools.combinations(range(len(log_w)), m)]
    return float(np.mean(values))


def check_subset_average(my_subset_average) -> Verdict:
    """Exercise "L_k cannot decrease": my_subset_average(log_w [k], m) -> float, the mean over all
    m-subsets of the log of the subset's mean weight. Checked on random weights for m = 1..k;
    it must also come out <= log of the mean of all k weights (Jensen)."""
    hint = ("loop over itertools.combinations(range(len(log_w)), m); for each subset take "
            "logsumexp(log_w[list(subset)]) - log(m); return the mean over subsets.")
    rng = np.random.default_rng(4)
    log_w = rng.normal(0.0, 2.0, size=6)
    for m in (1, 2, 3, 6):
        verdict = check_close(attempt(my_subset_average, log_w, m), subset_average(log_w, m), rtol=1e-6, atol=1e-8,
                              hint=hint, what=f"your subset average for m = {m}")
        if not verdict:
            return verdict
    return Verdict(True, "It rises with m and reaches log-mean-exp of all six weights at m = 6: "
                         "E[L_m] <= E[L_k] for m <= k.")


def check_iwae_curve(bounds, model: VAE, x, *, n_sigma: float = 4.0) -> Verdict:
    """Exercise "how tight does L_k get": bounds = {k: mean of L_k over the images x} for k in 1, 10, 100, 1000.

    The checker estimates each L_k twice with its own keys; a student's value passes when it is
    within n_sigma standard errors of the first estimate (the standard error of the difference of
    two independent means, estimated from the checker's own two draws, image by image).
    """
    hint = ("for each k call log_marginal_likelihood(model, x, key, k=k) on the same images and take the mean "
            "over images; L_1 should be close to the one-sample ELBO, and every step in k should raise it.")
    if not is_blank(bounds) and (not isinstance(bounds, dict) or sorted(bounds) != [1, 10, 100, 1000]):
        return Verdict(False, "give a dict {1: ..., 10: ..., 100: ..., 1000: ...} of mean bounds.", hint)
    if is_blank(bounds) or any(is_blank(v) for v in bounds.values()):
        return check_close(None, 0.0, hint=hint)
    for k in (1, 10, 100, 1000):
        a, b = (np.asarray(log_marginal_likelihood(model, x, jax.random.PRNGKey(seed), k=k, k_chunk=min(k, 500)))
                for seed in (2024 + k, 4048 + k))
        se = float(np.std(a - b) / np.sqrt(2 * len(a)))  # one mean's standard error
        verdict = check_close(bounds[k], float(a.mean()), rtol=0.0, atol=n_sigma * np.sqrt(2) * se + 1e-3,
                              hint=hint, what=f"your L_{k}")
        if not verdict:
            return verdict
    return Verdict(True, f"every L_k agrees with the checker's estimate within {n_sigma:g} standard errors.")


def train_test_gap(result) -> float:
    """Train ELBO (minibatch mean of the last epoch) minus test ELBO (last epoch) of a TrainResult, in nats."""
    return float(-result.history["train_loss"][-1] - result.history["test_elbo"][-1])


def check_overfitting_gaps(gaps, dynamic, static) -> Verdict:
    """Exercise "static binarization": gaps = {'dynamic': ..., 'static': ...}, each the last epoch's
    train ELBO minus test ELBO (nats) of the two TrainResults."""
    hint = ("the train ELBO of the last epoch is -result.history['train_loss'][-1]; the test ELBO is "
            "result.history['test_elbo'][-1]; give train minus test for each run.")
    if not is_blank(gaps) and (not isinstance(gaps, dict) or sorted(gaps) != ["dynamic", "static"]):
        return Verdict(False, "give a dict {'dynamic': ..., 'static': ...}.", hint)
    if is_blank(gaps) or any(is_blank(v) for v in gaps.values()) or static is None:
        return check_close(None, 0.0, hint=hint)
    expected = [train_test_gap(dynamic), train_test_gap(static)]
    return check_close([gaps["dynamic"], gaps["static"]], expected, rtol=1e-4, atol=1e-3, hint=hint,
                       what="your two gaps [dynamic, static]")


def check_masked_errors(errors, model: VAE, masked, clean_grey, mask) -> Verdict:
    """Exercise "denoising proxy": errors = (whole-image error, error inside the square) of the
    model's reconstructions of the masked digits, each a mean over images of mean_abs_error."""

    hint = ("reconstruct(model, masked), then mean_abs_error(recon, clean_grey).mean() for the whole image and "
            "np.nanmean(mean_abs_error(recon, clean_grey, mask)) inside the square.")
    if is_blank(errors) or model is None:
        return check_close(None, 0.0, hint=hint)
    if np.shape(errors) != (2,):
        return Verdict(False, "give two numbers: (whole image, inside the square).", hint)
    recon = reconstruct(model, masked)
    expected = [float(mean_abs_error(recon, clean_grey).mean()), float(np.nanmean(mean_abs_error(recon, clean_grey, mask)))]
    return check_close(errors, expected, rtol=1e-4, atol=1e-5, hint=hint, what="your two errors")


__all__ = ["PAPER_FOOTING", "paper_footing", "order_by_kl", "normal_grid", "prior_samples", "mean_abs_error", "denoising_scores",
           "fit_posterior", "log_weights", "elbo_estimate", "mean_and_se",
           "gaussian_decoder_report", "log_likelihood_cached", "card_log_likelihood", "sweep_log_likelihood", "ModelTracker", "check_elbo", "subset_average", "check_subset_average",
           "check_iwae_curve", "train_test_gap", "check_overfitting_gaps", "check_masked_errors"]
