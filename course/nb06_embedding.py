"""Helpers for notebook 06: 2-d maps of latent codes (t-SNE, PCA) and the numbers that judge them.

A t-SNE picture is easy to over-read, so every map here comes with numbers (the metrics
live in :mod:`vae_core.metrics`):

  knn_accuracy      k-NN (k = 10) digit classification accuracy, estimated by stratified
                    5-fold cross-validation on the points themselves (in the latent space
                    or in the 2-d map).
  trustworthiness   trustworthiness with 10 neighbours (scikit-learn's number, computed
                    faster): 1.0 when every point's 10 nearest neighbours in the map were
                    also near it in the input space; it penalises "false neighbours" made
                    by the map.
  seconds           the wall time of the embedding itself (neighbour search included).

:func:`summarize` makes one table row per map; :func:`table_columns` gives the columns
for ``vae_core.plots.format_table(rows, table_columns(...), markdown=True)``.

t-SNE runs through openTSNE (FFT-interpolated or Barnes-Hut gradients) or scikit-learn
(Barnes-Hut). All three use 250 early-exaggeration iterations followed by 500 normal
ones, PCA initialisation and the "auto" learning rate of their library, so timings
compare like with like. ``benchmarks/tsne_speed.py`` times them on the same 10k points.

The notebook's exercises are checked by :func:`check_knn_by_k`, :func:`check_random_starts`
and :func:`check_active_latents`: each recomputes the expected answer from the codes,
maps or model it is given, so the same check works in smoke mode, full mode and tests.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np

from vae_core.evaluate import encode
from vae_core.exercises import Verdict, check_close, check_then_choose, is_blank
from vae_core.metrics import active_units, knn_accuracy, trustworthiness

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


def perplexity_sweep(x, perplexities, *, reuse=(), **tsne_kwargs) -> dict[float, Map2D]:
    """One t-SNE map per perplexity (same data, same seed): {perplexity: Map2D}.

    reuse: maps already made of this same x with these same tsne_kwargs (e.g. the
    perplexity-30 map drawn earlier); one whose perplexity and method are in the sweep is
    taken as it is instead of being computed again. A map of a different number of
    points raises ValueError.
    """
    method = tsne_kwargs.get("method", DEFAULT_METHOD)
    known = {}
    for m in reuse:
        if len(m.coords) != len(x):
            raise ValueError(f"a reused map has {len(m.coords)} points, x has {len(x)}: not a map of x")
        if m.method == method:
            known[m.perplexity] = m
    return {p: known[p] if p in known else tsne(x, perplexity=p, **tsne_kwargs) for p in perplexities}


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


# --------------------------------------------------------------------------- exercise checkers
ACCURACY_ATOL = 5e-4  # an accuracy given to 3 decimals still counts as the computed one
EX1_MODELS = ("VAE β=1", "β-VAE β=4")
EX1_KS = (1, 10, 50)

_PRESERVED = {
    "a": "The distances between islands: two digits whose islands touch in the map have codes that are "
         "close to each other in the latent space.",
    "b": "Who is whose near neighbour: each code keeps (mostly) the same neighbours and the 2-d k-NN "
         "accuracy hardly moves, while where each island lands is partly chance.",
    "c": "The sizes of the islands: a small, tight island means that digit's codes are tightly packed.",
    "d": "Nothing reliable: with another seed a code's neighbours change as much as the layout does.",
}
_INACTIVE = {
    "a": "It drops clearly: the switched-off latents still carried part of the digit's identity.",
    "b": "It stays (almost) the same: a switched-off latent's mean is (almost) the same for every image, "
         "so it adds (almost) nothing to any distance between two codes.",
    "c": "It rises clearly: the switched-off latents were noise that swamped the distances.",
}


def _by_key(answer, keys, what):
    """answer[key] for each key as a list of floats, or an error message (str)."""
    if isinstance(answer, dict):
        missing = [k for k in keys if k not in answer]
        if missing:
            return f"{what} has no entry for {missing[0]!r}: its keys should be {list(keys)}."
        values = [answer[k] for k in keys]
    elif isinstance(answer, (list, tuple, np.ndarray)) and len(answer) == len(keys):
        values = list(answer)
    else:
        return f"{what} should be a dict with keys {list(keys)}, got {type(answer).__name__}."
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        return f"every value of {what} should be a number."


def check_knn_by_k(accuracies, order_flips, codes: dict, labels) -> Verdict:
    """Exercise 1: k-NN accuracy of two models' codes for k = 1, 10 and 50, and whether their order flips.

    accuracies: {model name: {k: accuracy}} for the names in ``EX1_MODELS`` and the k in
    ``EX1_KS`` (a list of the three accuracies in that k order is accepted too);
    order_flips: True when the model ahead at one k is strictly behind at another.
    codes: {model name: codes [n, d]} (the notebook's dict), labels [n]. The expected values
    are ``knn_accuracy(codes[name], labels, k=k)``; each may be off by 5e-4 (3 decimals).
    """
    hint = ("for each of the two models and each k, call knn_accuracy(codes[name], y_test, k=k) "
            "(the same 5-fold cross-validation as the table); keep the values unrounded or to 3 decimals.")
    if is_blank(accuracies):
        return check_close(accuracies, 0.0, hint=hint)
    if not isinstance(accuracies, dict):
        return Verdict(False, f"accuracies should be a dict {{model name: {{k: accuracy}}}}, "
                              f"got {type(accuracies).__name__}.", hint)
    expected, given = [], []
    for name in EX1_MODELS:
        if name not in accuracies:
            return Verdict(False, f"accuracies has no entry for {name!r}: its keys should be {list(EX1_MODELS)}.",
                           hint)
        row = _by_key(accuracies[name], EX1_KS, f"accuracies[{name!r}]")
        if isinstance(row, str):
            return Verdict(False, row, hint)
        given.append(row)
        expected.append([knn_accuracy(codes[name], labels, k=k) for k in EX1_KS])
    verdict = check_close(given, expected, hint=hint, rtol=1e-6, atol=ACCURACY_ATOL,
                          what=f"the accuracies (rows {', '.join(EX1_MODELS)}; columns k = 1, 10, 50)")
    if not verdict:
        return verdict
    gaps = np.subtract(*expected)
    flips = bool(gaps.max() > 0 > gaps.min())
    flip_hint = ("compare the two models column by column: order_flips is True only if the model that is "
                 "ahead at one k is strictly behind at another k (a tie is neither ahead nor behind).")
    if is_blank(order_flips):
        return Verdict(False, "The accuracies are right; order_flips is still empty.", flip_hint)
    if not isinstance(order_flips, (bool, np.bool_)):
        return Verdict(False, f"order_flips should be True or False, got {order_flips!r}.", flip_hint)
    if bool(order_flips) != flips:
        return Verdict(False, f"The accuracies are right, but order_flips={bool(order_flips)} does not "
                              "match them.", flip_hint)
    said = ("the order of the two models changes with k" if flips
            else "neither model overtakes the other as k changes")
    return Verdict(True, f"All six accuracies match, and {said}.")


def _coords(m):
    return np.asarray(getattr(m, "coords", m), dtype=np.float64)


def check_random_starts(runs, map_accuracy, preserved, labels) -> Verdict:
    """Exercise 2: two t-SNE maps from random starts, their 2-d 10-NN accuracy, what t-SNE keeps.

    runs: {seed: Map2D (or coords [n, 2])} for seeds 0 and 1; map_accuracy: {seed: accuracy},
    checked against ``knn_accuracy(runs[seed].coords, labels)`` to within 5e-4 (3 decimals);
    preserved: "a"-"d", what a t-SNE map keeps from one random start to another. The maps
    must have one row per label and must not be identical (two seeds, random starts).
    """
    hint = ("nb06.tsne takes seed= and initialization= keyword arguments; embed codes['autoencoder'] with "
            "the notebook's **tsne_kw once per seed and keep the maps in a dict keyed by the seed.")
    if is_blank(runs):
        return check_close(runs, 0.0, hint=hint)
    if not isinstance(runs, dict) or sorted(runs, key=str) != [0, 1]:
        keys = sorted(runs, key=str) if isinstance(runs, dict) else type(runs).__name__
        return Verdict(False, f"runs should be a dict with the seeds 0 and 1 as keys, got {keys}.", hint)
    maps = {}
    for seed in (0, 1):
        try:
            maps[seed] = _coords(runs[seed])
        except (TypeError, ValueError):
            return Verdict(False, f"runs[{seed}] should be what nb06.tsne returns.", hint)
        if maps[seed].shape != (len(labels), 2):
            return Verdict(False, f"runs[{seed}] has coordinates of shape {maps[seed].shape}, expected "
                                  f"{(len(labels), 2)}: one 2-d point per test code.", hint)
    if np.allclose(maps[0], maps[1]):
        return Verdict(False, "The two maps are identical.",
                       "a map from a random start depends on the seed: pass initialization='random' and "
                       "a different seed to each call.")
    acc_hint = ("map_accuracy[seed] is knn_accuracy of that map's 2-d coordinates (runs[seed].coords) "
                "and y_test, with the default k = 10; unrounded or to 3 decimals.")
    if is_blank(map_accuracy):
        return Verdict(False, "The maps are fine; map_accuracy is still empty.", acc_hint)
    given = _by_key(map_accuracy, (0, 1), "map_accuracy")
    if isinstance(given, str):
        return Verdict(False, given, acc_hint)
    expected = [knn_accuracy(maps[seed], labels) for seed in (0, 1)]
    verdict = check_close(given, expected, hint=acc_hint, rtol=1e-6, atol=ACCURACY_ATOL,
                          what="the 2-d 10-NN accuracies (seed 0, seed 1)")
    return check_then_choose(verdict, preserved, "b", options=_PRESERVED,
                             hint="put the two maps side by side: which changed from one seed to the other, "
                                  "and which of the numbers you computed did not?",
                             right_so_far="The maps and their accuracies are right; preserved:")


def check_active_latents(kept, accuracy, why, model, x, labels, *, threshold: float = 0.01) -> Verdict:
    """Exercise 3: the codes restricted to the active latents, their 10-NN accuracy, and why.

    kept: the posterior means of x [n, n_active] in the columns whose variance over x exceeds
    ``threshold`` (``vae_core.metrics.active_units``), compared with the model's own codes to
    1e-5; accuracy: checked against ``knn_accuracy`` of those columns to within 5e-4
    (3 decimals); why: "a"-"c", what dropping switched-off latents does to the accuracy.
    """
    hint = ("active_units(model, x_test) returns the count and each latent's variance; keep the columns of "
            "codes['β-VAE β=4'] whose variance is above 0.01 (a boolean mask as the column index).")
    if is_blank(kept):
        return check_close(kept, 0.0, hint=hint)
    _, variances = active_units(model, x, threshold=threshold)
    want = np.asarray(encode(model, x).mean, np.float64)[:, variances > threshold]
    verdict = check_close(kept, want, hint=hint, rtol=1e-5, atol=1e-5, what="kept")
    if not verdict:
        return verdict
    acc_hint = "apply knn_accuracy to kept and y_test (default k = 10); unrounded or to 3 decimals."
    if is_blank(accuracy):
        return Verdict(False, "kept is right; accuracy_kept is still empty.", acc_hint)
    if want.shape[1] == 0:
        return Verdict(False, "This model has no active latent, so there is nothing to classify with.", acc_hint)
    expected = knn_accuracy(want, labels)
    verdict = check_close(accuracy, expected, hint=acc_hint, rtol=1e-6, atol=ACCURACY_ATOL, what="accuracy_kept")
    verdict = Verdict(True, f"{want.shape[1]} active latents, 10-NN accuracy {expected:.3f} with them.") if verdict \
        else verdict
    return check_then_choose(verdict, why, "b", options=_INACTIVE,
                             hint="compare accuracy_kept with the 20-d accuracy of the same codes, then ask how "
                                  "much a latent whose mean barely varies can add to a distance between two codes.",
                             right_so_far="kept and its accuracy are right; why:")


__all__ = ["Map2D", "TSNE_METHODS", "DEFAULT_METHOD", "tsne", "pca", "perplexity_sweep", "code_scale", "summarize",
           "COLUMNS", "three_digits", "table_columns", "plot_maps", "plot_perplexity", "ACCURACY_ATOL",
           "EX1_MODELS", "EX1_KS", "check_knn_by_k", "check_random_starts", "check_active_latents"]
