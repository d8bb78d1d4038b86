"""Helpers for notebook 06: 2-d maps of latent codes (t-SNE, PCA) and the numbers that judge them.

A t-SNE picture is easy to over-read, so every map here comes with numbers (the metrics
live in :mod:`vae_core.metrics`):

  knn_accuracy      k-NN (k = 10) digit classification accuracy, estimated by stratified
                    5-fold cross-validation on the points themselves (in the latent space
                    or in the 2-d map).
  trustworthiness   scikit-learn's trustworthiness with 10 neighbours: 1.0 when every
                    point's 10 nearest neighbours in the map were also near it in the
                    input space; it penalises "false neighbours" made by the map.
  seconds           the wall time of the embedding itself (neighbour search included).

:func:`summarize` makes one table row per map; :func:`table_columns` gives the columns
for ``vae_core.plots.format_table(rows, table_columns(...), markdown=True)``.

t-SNE runs through openTSNE (FFT-interpolated or Barnes-Hut gradients) or scikit-learn
(Barnes-Hut). All three use 250 early-exaggeration iterations followed by 500 normal
ones, PCA initialisation and the "auto" learning rate of their library, so timings
compare like with like. ``benchmarks/tsne_speed.py`` times them on the same 10k points.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np

from vae_core.metrics import knn_accuracy, trustworthiness

TSNE_METHODS = ("opentsne-fft", "opentsne-bh", "sklearn-bh")
DEFAULT_METHOD = "opentsne-fft"


@dataclass
class Map2D:
    """A 2-d embedding: coords [n, 2], how it was made, and how long it took.

    seconds: wall-clock time; cpu_seconds: CPU time of this process over the same span
    (all threads), which is less sensitive to other jobs sharing the cores.
    """

    coords: np.ndarray
    method: str
    seconds: float
    cpu_seconds: float
    perplexity: float | None = None


# --------------------------------------------------------------------------- embeddings
def tsne(x, *, perplexity: float = 30.0, method: str = DEFAULT_METHOD, seed: int = 0, n_jobs: int = 2,
         ints_in_interval: int = 2, early_exaggeration_iter: int = 250, n_iter: int = 500,
         initialization: str = "pca") -> Map2D:
    """t-SNE of x: [n, d] -> Map2D with coords [n, 2], timed with a wall clock.

    method: 'opentsne-fft' (openTSNE, FFT-interpolated repulsive forces; the fastest here),
    'opentsne-bh' (openTSNE, Barnes-Hut) or 'sklearn-bh' (scikit-learn's Barnes-Hut).
    ints_in_interval: openTSNE FFT only; points per interpolation interval. 2 halves the
    number of intervals of the default 1 (coarser grid, measured ~3x faster on 10k points
    here at the same k-NN accuracy).
    initialization: 'pca' (start from the first two principal components, rescaled: the
    large-scale layout then changes little from seed to seed) or 'random' (a small random
    cloud drawn from the seed: the islands land in different places for each seed).
    Raises ValueError for an unknown method or initialization or a perplexity too large for n points
    (t-SNE needs 3 * perplexity < n neighbours).
    """
    if method not in TSNE_METHODS:
        raise ValueError(f"method must be one of {TSNE_METHODS}, got {method!r}")
    if initialization not in ("pca", "random"):
        raise ValueError(f"initialization must be 'pca' or 'random', got {initialization!r}")
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must be a 2-d array [n_points, n_features], got shape {x.shape}")
    n = len(x)
    if not 0 < perplexity or 3 * perplexity >= n:
        raise ValueError(f"perplexity={perplexity} needs 0 < 3 * perplexity < n_points = {n}")
    start, cpu_start = time.perf_counter(), time.process_time()
    if method.startswith("opentsne"):
        from openTSNE import TSNE

        kwargs = dict(negative_gradient_method="fft", ints_in_interval=ints_in_interval) \
            if method == "opentsne-fft" else dict(negative_gradient_method="bh")
        coords = TSNE(n_components=2, perplexity=perplexity, initialization=initialization,
                      early_exaggeration_iter=early_exaggeration_iter, n_iter=n_iter,
                      n_jobs=n_jobs, random_state=seed, verbose=False, **kwargs).fit(x)
    else:
        from sklearn.manifold import TSNE

        coords = TSNE(n_components=2, perplexity=perplexity, init=initialization, learning_rate="auto",
                      max_iter=early_exaggeration_iter + n_iter, method="barnes_hut",
                      random_state=seed, n_jobs=n_jobs).fit_transform(x)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return Map2D(np.asarray(coords, dtype=np.float64), method, seconds, cpu_seconds, perplexity)


def pca(x_fit, x, n_components: int, *, seed: int = 0) -> np.ndarray:
    """Principal components of x_fit applied to x: [n, D] -> [n, n_components].

    The baseline "encoder" with no training beyond a linear fit: fit on the training
    images, project the test images.
    """
    from sklearn.decomposition import PCA

    model = PCA(n_components=n_components, random_state=seed).fit(np.asarray(x_fit, np.float64))
    return model.transform(np.asarray(x, np.float64))


def perplexity_sweep(x, perplexities, **tsne_kwargs) -> dict[float, Map2D]:
    """One t-SNE map per perplexity (same data, same seed): {perplexity: Map2D}."""
    return {p: tsne(x, perplexity=p, **tsne_kwargs) for p in perplexities}


# --------------------------------------------------------------------------- numbers
def code_scale(mean, logvar=None) -> dict:
    """How large the codes are and how noisy the encoder is: what the KL term acts on.

    mean: posterior means [n, L]; logvar: posterior log-variances [n, L] (a diagonal
    posterior's ``Posterior.log_diag``) or None (a plain autoencoder has no noise). Returns {'rms': root mean square of all code values
    (1.0 for codes drawn from the N(0, I) prior), 'sigma': median posterior standard
    deviation over images and latents (None without logvar)}. t-SNE and k-NN are blind
    to both: multiplying all codes by a constant changes neither.
    """
    mean = np.asarray(mean, np.float64)
    rms = float(np.sqrt(np.mean(mean ** 2)))
    sigma = None if logvar is None else float(np.median(np.exp(0.5 * np.asarray(logvar, np.float64))))
    return {"rms": rms, "sigma": sigma}


def summarize(name: str, codes, map2d: Map2D, labels, **extra) -> dict:
    """One table row: k-NN accuracy in the codes and in the map, trustworthiness, t-SNE
    wall and CPU time.

    Extra keyword arguments (e.g. test KL, active units, training seconds) are added as
    further columns, in the order given.
    """
    row = {"model": name, "dims": int(np.shape(codes)[1]),
           "knn_latent": knn_accuracy(codes, labels), "knn_map": knn_accuracy(map2d.coords, labels),
           "trust": trustworthiness(codes, map2d.coords), "tsne_s": float(map2d.seconds),
           "cpu_s": float(map2d.cpu_seconds)}
    row.update(extra)
    return row


def three_digits(value: float) -> str:
    """A score or scale with 3 decimals; values below 0.01 (but not 0) in scientific notation."""
    return f"{value:.1e}" if 0 < abs(value) < 0.01 else f"{value:.3f}"


# key -> (header, format spec) of every column summarize() and the notebook put in a row
COLUMNS = {"model": ("model", ""), "dims": ("dims", "d"), "knn_latent": ("10-NN acc (latent)", three_digits),
           "knn_map": ("10-NN acc (2-d map)", three_digits), "trust": ("trustworthiness", three_digits),
           "tsne_s": ("t-SNE s", ".1f"), "cpu_s": ("CPU s", ".1f"), "kl": ("test KL (nats)", ".1f"),
           "active": ("active units", "d"), "rms": ("code RMS", three_digits),
           "sigma": ("median σ of q(z|x)", three_digits), "train_s": ("training s", ".1f"),
           "method": ("method", ""), "n": ("points", "d")}


def table_columns(keys) -> list[tuple]:
    """Columns (key, header, spec) for ``vae_core.plots.format_table`` from row keys.

    Seconds and KL print with 1 decimal, scores and scales with 3 (below 0.01 in
    scientific notation), counts as integers; an unknown key prints as it is.
    """
    return [(k, *COLUMNS.get(k, (k, ""))) for k in keys]


# --------------------------------------------------------------------------- plots
def _draw_map(ax, coords, labels, title, s):
    coords = np.asarray(coords)
    labels = np.asarray(labels)
    ax.scatter(coords[:, 0], coords[:, 1], c=labels, cmap="tab10", vmin=-0.5, vmax=9.5, s=s,
               alpha=0.6, linewidths=0, rasterized=True)
    for digit in np.unique(labels):  # the digit's name at the median of its points
        cx, cy = np.median(coords[labels == digit], axis=0)
        ax.text(cx, cy, str(digit), fontsize=11, weight="bold", ha="center", va="center",
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.7))
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.set_xticks([])
    ax.set_yticks([])


def _digit_legend(fig):
    cmap = plt.get_cmap("tab10")
    handles = [plt.Line2D([], [], marker="o", ls="", color=cmap(d), label=str(d)) for d in range(10)]
    fig.legend(handles=handles, title="digit", loc="center right", frameon=False)


def plot_maps(maps: dict, labels, *, ncols: int = 3, s: float = 2.0, suptitle: str | None = None):
    """Side-by-side maps coloured by digit. maps: {panel title: coords [n, 2]}."""
    n = len(maps)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols + 0.8, 3.6 * nrows), squeeze=False)
    for ax, (title, coords) in zip(axes.flat, maps.items()):
        _draw_map(ax, coords, labels, title, s)
    for ax in list(axes.flat)[n:]:
        ax.set_axis_off()
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout(rect=(0, 0, 1 - 0.7 / fig.get_figwidth(), 1))
    _digit_legend(fig)
    return fig


def plot_perplexity(sweep: dict, labels, *, s: float = 2.0, suptitle: str | None = None):
    """Small multiples of one model's codes at several perplexities: sweep {perplexity: Map2D}."""
    maps = {f"perplexity {p:g}  ({m.seconds:.0f} s)": m.coords for p, m in sweep.items()}
    return plot_maps(maps, labels, ncols=len(maps), s=s, suptitle=suptitle)


__all__ = ["Map2D", "TSNE_METHODS", "DEFAULT_METHOD", "tsne", "pca", "perplexity_sweep", "code_scale", "summarize",
           "COLUMNS", "three_digits", "table_columns", "plot_maps", "plot_perplexity"]
