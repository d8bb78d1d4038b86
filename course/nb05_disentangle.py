"""Helpers for notebook 05 (β-VAE and disentanglement against known factors):
latent traversals, the sprite study's model and training settings, and MIG tables.

The Mutual Information Gap itself (``mig``, ``mig_ceiling``, ``model_mig``,
``match_latents`` and the variant it computes) lives in :mod:`vae_core.metrics`;
this module only tabulates it for the notebook and ``benchmarks/mig.py``.

  traversal_codes, traversal_grid, plot_traversal   decode and draw one latent moved at a time
  sprite_model_config, sprite_train_config          the conv β-VAE trained on sprites
  mig_table, format_mig_table                       MIG of every (β, seed) model, as text
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from vae_core.evaluate import decode_mean
from vae_core.metrics import N_BINS, model_mig
from vae_core.models import VAE, ModelConfig
from vae_core.plots import format_table, tile_images
from vae_core.train import TrainConfig


# ----------------------------------------------------------------------------- traversals
def traversal_codes(base_code, dims: Sequence[int], values) -> np.ndarray:
    """Codes for a traversal grid: row r sets dim dims[r] to each of values, others = base.

    base_code [L]; values [m] -> codes [len(dims) * m, L] (row-major: dim, then value).
    """
    base = np.asarray(base_code, np.float32).reshape(-1)
    values = np.asarray(values, np.float32).reshape(-1)
    dims = [int(d) for d in dims]
    if any(d < 0 or d >= len(base) for d in dims):
        raise ValueError(f"dims must lie in [0, {len(base)}), got {dims}")
    codes = np.tile(base, (len(dims), len(values), 1))
    for r, d in enumerate(dims):
        codes[r, :, d] = values
    return codes.reshape(-1, len(base))


def traversal_grid(model: VAE, base_code=None, dims: Sequence[int] | None = None,
                   values=np.linspace(-3, 3, 7)) -> np.ndarray:
    """Decoded traversals: images [len(dims), len(values), D] (pixel means).

    base_code defaults to zeros (the prior mean); dims to every latent.
    """
    L = model.cfg.latent_dim
    base = np.zeros(L, np.float32) if base_code is None else np.asarray(base_code, np.float32)
    dims = list(range(L)) if dims is None else list(dims)
    codes = traversal_codes(base, dims, values)
    images = np.asarray(decode_mean(model, codes))
    return images.reshape(len(dims), len(np.ravel(values)), -1)


def plot_traversal(images, image_shape, *, row_labels=None, values=None, ax=None, title=None):
    """Show a traversal grid [rows, cols, D]: one row per latent, one column per value."""
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    rows, cols = images.shape[:2]
    H, W = image_shape
    if ax is None:
        fig, ax = plt.subplots(figsize=(0.75 * cols + 1.8, 0.75 * rows + 0.6))
    else:
        fig = ax.figure
    canvas = tile_images(images.reshape(rows * cols, -1), cols, image_shape, pad=2, gap_value=0.3)  # grey grid
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=1)
    ax.set_yticks([r * (H + 2) + H / 2 for r in range(rows)])
    ax.set_yticklabels(row_labels if row_labels is not None else [f"z{r}" for r in range(rows)], fontsize=8)
    ax.set_xticks([c * (W + 2) + W / 2 for c in range(cols)])
    ax.set_xticklabels([f"{v:+.1f}" for v in values] if values is not None else range(cols), fontsize=8)
    ax.set_xlabel("value of the traversed latent")
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


# ----------------------------------------------------------------------------- the sprite study
# One definition of the sprite models, shared by notebook 05, benchmarks/mig.py and
# benchmarks/sprite_trials.py, so all of them train (or load from the cache) the very
# same checkpoints.
def sprite_model_config(size: int = 32, latent_dim: int = 10) -> ModelConfig:
    """The convolutional beta-VAE used on sprites: four 4x4 stride-2 convs, Dense 128, 10 latents.

    Channels (16, 16, 32, 32), half the usual dSprites net's (32, 32, 64, 64): on a 2-core
    CPU it trains about 2.5x faster (``benchmarks/conv_speed.py``, BENCHMARKS.md), and in
    single-seed trials (``benchmarks/sprite_trials.py``) doubling the epochs moved MIG
    by less than 0.01, so the smaller net
    spends the CPU budget better. On a GPU use (32, 32, 64, 64) and 64x64 images.
    """
    return ModelConfig(latent_dim=latent_dim, hidden=(128,), architecture="conv", image_shape=(size, size),
                       conv_channels=(16, 16, 32, 32), likelihood="bernoulli")


def sprite_train_config(beta: float, seed: int, epochs: int, *, objective: str = "elbo",
                        capacity_max: float = 12.0, gamma: float = 5.0) -> TrainConfig:
    """Training settings for the sprite models (binary images: no binarization, batch 64).

    objective='capacity' raises C linearly to capacity_max over 80% of training. The
    defaults suit 32x32 sprites on a CPU budget: C up to 12 nats (the factor grid holds
    log 737280 = 13.5) and gamma 5; with gamma 100 a trial run (``benchmarks/sprite_trials.py``)
    met the KL target with uninformative mean shifts and never learned to reconstruct
    (notebook 05, section 6). The test history scores the first 2,000 test images given.
    """
    return TrainConfig(epochs=epochs, batch_size=64, learning_rate=1e-3, objective=objective, beta=float(beta),
                       capacity_max=capacity_max, capacity_epochs=max(1.0, epochs * 0.8), gamma=gamma,
                       binarize=False, seed=seed, eval_images=2000)


# ----------------------------------------------------------------------------- MIG tables
def mig_table(results: dict, images, factors, n_bins: int = N_BINS) -> list[dict]:
    """MIG of every trained model. results: {(beta, seed): TrainResult} -> rows
    {'beta', 'seed', 'mig', 'per_factor' [K], 'kl' (final test KL, nats)}, sorted."""
    rows = []
    for (beta, seed), r in sorted(results.items()):
        res = model_mig(r.model, images, factors, n_bins)
        rows.append({"beta": beta, "seed": seed, "mig": res.score, "per_factor": res.per_factor,
                     "kl": float(r.history["test_kl"][-1])})
    return rows


def format_mig_table(rows: list[dict], factor_names: Sequence[str]) -> str:
    """Two plain-text tables (``vae_core.plots.format_table``): one line per model (MIG,
    final test KL, each factor's normalised gap), then mean, std, min and max of MIG per beta."""
    names = [n[:6] for n in factor_names]
    models = [{"beta": r["beta"], "seed": r["seed"], "mig": r["mig"], "kl": r["kl"],
               **{f"f{k}": float(v) for k, v in enumerate(r["per_factor"])}} for r in rows]
    columns = [("beta", "beta", "g"), ("seed", "seed", "d"), ("mig", "MIG", ".3f"), ("kl", "KL", ".2f")]
    columns += [(f"f{k}", name, ".3f") for k, name in enumerate(names)]
    summary = []
    for beta in sorted({r["beta"] for r in rows}):
        m = np.array([r["mig"] for r in rows if r["beta"] == beta])
        summary.append({"beta": beta, "n": len(m), "mean": m.mean(), "std": m.std(ddof=1) if len(m) > 1 else 0.0,
                        "min": m.min(), "max": m.max()})
    summary_columns = [("beta", "beta", "g"), ("n", "n", "d"), ("mean", "MIG mean", ".3f"), ("std", "std", ".3f"),
                       ("min", "min", ".3f"), ("max", "max", ".3f")]
    return format_table(models, columns) + "\n\n" + format_table(summary, summary_columns)


__all__ = ["traversal_codes", "traversal_grid", "plot_traversal", "sprite_model_config", "sprite_train_config",
           "mig_table", "format_mig_table"]
