"""Disentanglement against known factors: the Mutual Information Gap, latent-to-factor
matching, and latent traversals.

MIG (Chen et al. 2018), in the variant of disentanglement_lib (Locatello et al. 2019):

* the representation is the encoder's **mean** mu(x) (not a sample z ~ q(z|x));
* each latent dimension is discretised into **20 equal-width bins** over its observed
  range (``np.histogram`` edges, ``np.digitize``);
* I(z_j; v_k) is the plug-in mutual information of the discretised code and the
  factor's integer value (``sklearn.metrics.mutual_info_score``, nats), and H(v_k) the
  plug-in entropy of the factor;
* MIG = (1/K) sum_k [ I(z_(1); v_k) - I(z_(2); v_k) ] / H(v_k), where z_(1), z_(2) are
  the latents with the largest and second-largest MI with factor k.

Consequences worth knowing (the tests pin them down): a code that copies each factor
into its own latent scores 1 only if every factor has at most 20 values; with 20 bins,
dSprites' 32 positions and 40 orientations cannot be resolved fully, so even a perfect
code scores below 1 (:func:`mig_ceiling` computes the ceiling). A factor copied into two
latents scores 0: MIG rewards one latent per factor, not just information.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
from sklearn.metrics import mutual_info_score

N_BINS = 20


class MIGResult(NamedTuple):
    """score: the MIG; per_factor [K]: normalised gap of each factor; mi [L, K] (nats);
    entropy [K] (nats); ranking [K, 2]: the latents with the largest and second-largest MI."""

    score: float
    per_factor: np.ndarray
    mi: np.ndarray
    entropy: np.ndarray
    ranking: np.ndarray


def discretize(codes, n_bins: int = N_BINS) -> np.ndarray:
    """Equal-width histogram bin of every value, per latent. codes [n, L] -> int [n, L].

    As disentanglement_lib's ``histogram_discretize``: bins span each dimension's
    observed [min, max]; a constant dimension falls into a single bin.
    """
    codes = np.asarray(codes, np.float64)
    if codes.ndim != 2:
        raise ValueError(f"codes must be [n_samples, n_latents], got shape {codes.shape}")
    if not np.all(np.isfinite(codes)):
        raise ValueError("codes contain NaN or inf")
    out = np.zeros(codes.shape, np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram(codes[:, j], n_bins)[1]
        out[:, j] = np.digitize(codes[:, j], edges[:-1])
    return out


def mutual_information(codes_discrete, factors) -> np.ndarray:
    """Plug-in MI (nats) of every discretised latent with every factor. -> [L, K]."""
    codes_discrete, factors = np.asarray(codes_discrete), np.asarray(factors)
    L, K = codes_discrete.shape[1], factors.shape[1]
    mi = np.zeros((L, K))
    for j in range(L):
        for k in range(K):
            mi[j, k] = mutual_info_score(factors[:, k], codes_discrete[:, j])
    return mi


def factor_entropy(factors) -> np.ndarray:
    """Plug-in entropy H(v_k) in nats of each integer factor. [n, K] -> [K]."""
    factors = np.asarray(factors)
    return np.array([mutual_info_score(factors[:, k], factors[:, k]) for k in range(factors.shape[1])])


def mig(codes, factors, n_bins: int = N_BINS) -> MIGResult:
    """Mutual Information Gap of codes [n, L] (encoder means) against factors [n, K].

    factors: integer (or discrete) factor values. Factors that do not vary in the
    sample (entropy 0) are left out of the average. Needs at least 2 latents.
    """
    codes = np.asarray(codes)
    factors = np.asarray(factors)
    if factors.ndim != 2 or len(factors) != len(codes):
        raise ValueError(f"factors must be [n, K] with n = {len(codes)} rows, got shape {factors.shape}")
    if codes.ndim != 2 or codes.shape[1] < 2:
        raise ValueError(f"MIG needs codes [n, L] with L >= 2 latents, got shape {codes.shape}")
    mi = mutual_information(discretize(codes, n_bins), factors)
    entropy = factor_entropy(factors)
    ranking = np.argsort(-mi, axis=0, kind="stable")[:2].T  # [K, 2]
    top = np.take_along_axis(mi, ranking.T[:1], 0)[0]
    second = np.take_along_axis(mi, ranking.T[1:2], 0)[0]
    varies = entropy > 0
    if not varies.any():
        raise ValueError("no factor varies in this sample")
    per_factor = np.full(len(entropy), np.nan)
    per_factor[varies] = (top[varies] - second[varies]) / entropy[varies]
    return MIGResult(float(np.mean(per_factor[varies])), per_factor, mi, entropy, ranking)


def mig_ceiling(factors, n_bins: int = N_BINS) -> MIGResult:
    """MIG of the ideal code (latent k = factor k, plus a constant latent) on these factors.

    With n_bins equal-width bins a factor with more than n_bins values loses
    information, so this is below 1 on dSprites' grid: the best score this variant can
    give on that sample.
    """
    factors = np.asarray(factors, np.float64)
    codes = np.concatenate([factors, np.zeros((len(factors), 1))], axis=1)
    return mig(codes, factors.astype(np.int64), n_bins)


def mig_of_model(model, params, images, factors, n_bins: int = N_BINS) -> MIGResult:
    """MIG of a trained VAE: encode images [n, D] to their posterior means, then :func:`mig`."""
    from .evaluate import encode

    means = np.asarray(encode(model, params, images).mean)
    return mig(means, factors, n_bins)


class LatentMatch(NamedTuple):
    """For each latent j: factor [L] (index of its best factor, -1 if none), name [L],
    score [L] (I(z_j; v_k)/H(v_k) for that factor), label [L] (short text)."""

    factor: np.ndarray
    name: list
    score: np.ndarray
    label: list


def match_latents(mi, entropy, factor_names: Sequence[str], *, threshold: float = 0.05) -> LatentMatch:
    """Name the factor each latent carries most information about (normalised MI).

    A latent whose best normalised MI is below threshold is labelled 'none'.
    """
    mi, entropy = np.asarray(mi), np.asarray(entropy)
    if mi.shape[1] != len(factor_names) or len(entropy) != len(factor_names):
        raise ValueError(f"mi has {mi.shape[1]} factor columns, entropy {len(entropy)}, "
                         f"but {len(factor_names)} factor names were given")
    norm = mi / np.where(entropy > 0, entropy, np.inf)
    best = np.argmax(norm, axis=1)
    score = norm[np.arange(len(norm)), best]
    factor = np.where(score >= threshold, best, -1)
    names = [factor_names[k] if k >= 0 else "none" for k in factor]
    labels = [f"z{j}: {n} ({s:.2f})" if n != "none" else f"z{j}: none"
              for j, (n, s) in enumerate(zip(names, score))]
    return LatentMatch(factor, names, score, labels)


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


def traversal_grid(model, params, base_code=None, dims: Sequence[int] | None = None,
                   values=np.linspace(-3, 3, 7)) -> np.ndarray:
    """Decoded traversals: images [len(dims), len(values), D] (pixel means).

    base_code defaults to zeros (the prior mean); dims to every latent.
    """
    from .evaluate import decode

    L = model.cfg.latent_dim
    base = np.zeros(L, np.float32) if base_code is None else np.asarray(base_code, np.float32)
    dims = list(range(L)) if dims is None else list(dims)
    codes = traversal_codes(base, dims, values)
    images = np.asarray(decode(model, params, codes))
    return images.reshape(len(dims), len(np.ravel(values)), -1)


def plot_traversal(images, image_shape, *, row_labels=None, values=None, ax=None, title=None):
    """Show a traversal grid [rows, cols, D]: one row per latent, one column per value."""
    import matplotlib.pyplot as plt

    from .plots import tile_images

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


__all__ = ["N_BINS", "MIGResult", "LatentMatch", "discretize", "mutual_information", "factor_entropy", "mig",
           "mig_ceiling", "mig_of_model", "match_latents", "traversal_codes", "traversal_grid",
           "plot_traversal", "sprite_model_config", "sprite_train_config", "mig_table", "format_mig_table"]


# ----------------------------------------------------------------------------- the sprite study
# One definition of the sprite models, shared by notebook 05 and benchmarks/mig.py, so
# both train (or load from the cache) the very same checkpoints.
def sprite_model_config(size: int = 32, latent_dim: int = 10):
    """The convolutional beta-VAE used on sprites: four 4x4 stride-2 convs, Dense 128, 10 latents.

    Channels (16, 16, 32, 32), half the usual dSprites net's (32, 32, 64, 64): on a 2-core
    CPU it trains about 2.5x faster (``benchmarks/conv_speed.py``, BENCHMARKS.md), and in
    single-seed trials (``benchmarks/sprite_trials.py``) doubling the epochs moved MIG
    by less than 0.01, so the smaller net
    spends the CPU budget better. On a GPU use (32, 32, 64, 64) and 64x64 images.
    """
    from .models import ModelConfig

    return ModelConfig(latent_dim=latent_dim, hidden=(128,), architecture="conv", image_shape=(size, size),
                       conv_channels=(16, 16, 32, 32), likelihood="bernoulli")


def sprite_train_config(beta: float, seed: int, epochs: int, *, objective: str = "elbo",
                        capacity_max: float = 12.0, gamma: float = 5.0):
    """Training settings for the sprite models (binary images: no binarization, batch 64).

    objective='capacity' raises C linearly to capacity_max over 80% of training. The
    defaults suit 32x32 sprites on a CPU budget: C up to 12 nats (the factor grid holds
    log 737280 = 13.5) and gamma 5; with gamma 100 a trial run (``benchmarks/sprite_trials.py``)
    met the KL target with uninformative mean shifts and never learned to reconstruct
    (notebook 05, section 6).
    """
    from .train import TrainConfig

    return TrainConfig(epochs=epochs, batch_size=64, learning_rate=1e-3, objective=objective, beta=float(beta),
                       capacity_max=capacity_max, capacity_epochs=max(1.0, epochs * 0.8), gamma=gamma,
                       binarize=False, seed=seed, eval_samples=2000)


def mig_table(results: dict, images, factors, n_bins: int = N_BINS) -> list[dict]:
    """MIG of every trained model. results: {(beta, seed): TrainResult} -> rows
    {'beta', 'seed', 'mig', 'per_factor' [K], 'kl' (final test KL, nats)}, sorted."""
    rows = []
    for (beta, seed), r in sorted(results.items()):
        res = mig_of_model(r.model, r.params, images, factors, n_bins)
        rows.append({"beta": beta, "seed": seed, "mig": res.score, "per_factor": res.per_factor,
                     "kl": float(r.history["test_kl"][-1])})
    return rows


def format_mig_table(rows: list[dict], factor_names: Sequence[str]) -> str:
    """Plain-text table: one line per model, then mean +- std of MIG per beta."""
    head = f"{'beta':>6} {'seed':>4} {'MIG':>7} {'KL':>7}  " + " ".join(f"{n[:6]:>6}" for n in factor_names)
    lines = [head]
    for r in rows:
        lines.append(f"{r['beta']:>6g} {r['seed']:>4d} {r['mig']:7.3f} {r['kl']:7.2f}  "
                     + " ".join(f"{v:6.3f}" for v in r["per_factor"]))
    lines.append("")
    lines.append(f"{'beta':>6} {'n':>4} {'MIG mean':>9} {'std':>6} {'min':>6} {'max':>6}")
    for beta in sorted({r["beta"] for r in rows}):
        m = np.array([r["mig"] for r in rows if r["beta"] == beta])
        lines.append(f"{beta:>6g} {len(m):>4d} {m.mean():9.3f} {m.std(ddof=1) if len(m) > 1 else 0:6.3f} "
                     f"{m.min():6.3f} {m.max():6.3f}")
    return "\n".join(lines)
