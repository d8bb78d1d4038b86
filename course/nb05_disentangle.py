"""Helpers for notebook 05 (β-VAE and disentanglement against known factors):
latent traversals, the sprite study's model and training settings, and MIG tables.

The Mutual Information Gap itself (``mig``, ``mig_ceiling``, ``model_mig``,
``match_latents`` and the variant it computes) lives in :mod:`vae_core.metrics`;
this module only tabulates it for the notebook and ``benchmarks/mig.py``.

  traversal_codes, traversal_grid, plot_traversal   decode and draw one latent moved at a time
  sprite_model_config, sprite_train_config          the conv β-VAE trained on sprites
  mig_table, format_mig_table                       MIG of every (β, seed) model, as text
  check_negative_elbo, check_mig_codes, check_low_mig   the exercises' checkers
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from vae_core.evaluate import decode_mean
from vae_core.exercises import Verdict, check_choice, check_close, is_blank
from vae_core.metrics import N_BINS, mig, mig_ceiling, model_mig
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


# ----------------------------------------------------------------------------- exercises
ELBO_OPTIONS = {
    "a": "The ELBO scores a model as a density model of the data; beta > 1 gives up some ELBO on purpose "
         "to buy a smaller, more factorised code. A model can be a worse density model and a better "
         "representation at the same time: they are different goals.",
    "b": "A beta-VAE's ELBO has to be computed with beta times the KL; with that correction the beta > 1 "
         "models have the best ELBO.",
    "c": "The beta > 1 models lose ELBO only on test images; on the training images their ELBO is the best.",
    "d": "A larger beta raises the rate, and a higher rate always means a better ELBO.",
}


def check_negative_elbo(neg_elbo, best_beta, why, rd: dict) -> Verdict:
    """Exercise 1: neg_elbo = {beta: negative ELBO (nats)} for every beta in ``rd`` (the notebook's
    ``evaluate`` results, each with mean 'rec' = E log p(x|z) and 'kl'); best_beta = the beta whose
    ELBO is largest; why = one key of :data:`ELBO_OPTIONS`.

    The checker recomputes -ELBO = distortion + rate = -rec + kl from ``rd`` (rtol 1e-5, atol 1e-3 nats).
    """
    hint = ("rd[beta]['rec'] is the mean log p(x|z) and rd[beta]['kl'] the mean KL, in nats. The ELBO is "
            "E log p(x|z) - KL whatever beta the model was trained with (beta weights the KL only in the training "
            "loss). The best ELBO is the largest ELBO, i.e. the smallest negative ELBO.")
    expected = {float(b): float(-np.asarray(r["rec"]) + np.asarray(r["kl"])) for b, r in rd.items()}
    if is_blank(neg_elbo):
        return check_close(None, 0.0, hint=hint)
    if not isinstance(neg_elbo, dict) or sorted(float(b) for b in neg_elbo) != sorted(expected):
        return Verdict(False, f"give a dict {{beta: negative ELBO}} with one entry for each beta in rd "
                              f"({[f'{b:g}' for b in sorted(expected)]}).", hint)
    got = {float(b): v for b, v in neg_elbo.items()}
    betas = sorted(expected)
    verdict = check_close([got[b] for b in betas], [expected[b] for b in betas], rtol=1e-5, atol=1e-3, hint=hint,
                          what="your negative ELBOs (in increasing beta)")
    if not verdict:
        return verdict
    best = min(expected, key=expected.get)
    if is_blank(best_beta):
        return Verdict(False, "Your negative ELBOs are right; best_beta is still empty.", hint)
    try:
        right = float(best_beta) == best
    except (TypeError, ValueError):
        return Verdict(False, f"best_beta should be one of the betas, got {best_beta!r}.", hint)
    if not right:
        return Verdict(False, f"Your negative ELBOs are right, but beta = {best_beta} does not have the best ELBO.",
                       hint)
    return check_choice(why, "a", options=ELBO_OPTIONS,
                        hint="your numbers are right. For the reason: what does the ELBO measure, and what "
                             "does a beta > 1 model trade it for?")


def _codes(z, n: int, name: str, hint: str):
    """z as a float [n, L >= 2] array without NaN, or a Verdict saying what is wrong with it."""
    try:
        arr = np.asarray(z, np.float64)
    except (TypeError, ValueError):
        return Verdict(False, f"{name} should be an array of numbers, got {type(z).__name__}.", hint)
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < 2:
        return Verdict(False, f"{name} should have shape [{n}, L] with L >= 2 latents (one row per sprite of "
                              f"the factors given), got {arr.shape}.", hint)
    if not np.all(np.isfinite(arr)):
        return Verdict(False, f"{name} contains NaN or infinity.", hint)
    return arr


def _top_share(result, k: int) -> float:
    """Largest I(z_j; v_k) / H(v_k) over the latents of a MIGResult."""
    return float(result.mi[:, k].max() / result.entropy[k])


POSX = 3  # column of posX in the sprites' factors (vae_core.sprites.FACTOR_NAMES)


def check_mig_codes(z_all, z_little, factors) -> Verdict:
    """Exercise 2: two codes [n, L] for the sprites' factors [n, 5], scored with ``vae_core.metrics.mig``.

    z_all: some latent shares as much of posX's entropy as a copy of posX does (within 0.01; the
    copy's share is below 1 with 20 bins), yet posX's normalised gap is at most 0.01.
    z_little: no latent shares more than a third of posX's entropy, yet posX's gap is at least 0.1.
    """
    hint_all = ("MIG rewards the gap between the best and the second-best latent, not the information itself: "
                "what happens to the gap when two latents know exactly the same thing?")
    hint_little = ("the gap is divided by H(posX) = log 32 nats, so a coarse summary of posX that only one latent "
                   "holds still leaves a gap. How few values of posX does a latent need to tell apart?")
    factors = np.asarray(factors)
    if is_blank(z_all):
        return check_close(None, 0.0, hint=hint_all)
    arr = _codes(z_all, len(factors), "z_all", hint_all)
    if isinstance(arr, Verdict):
        return arr
    res, ceiling = mig(arr, factors), mig_ceiling(factors)
    copy = float(ceiling.mi[POSX, POSX] / ceiling.entropy[POSX])   # the ceiling's latent POSX is posX itself
    share, gap = _top_share(res, POSX), float(res.per_factor[POSX])
    if share < copy - 0.01:
        return Verdict(False, f"z_all: its best latent shares {share:.3f} of posX's entropy, a copy of posX "
                              f"shares {copy:.3f}: it does not carry all the information.", hint_all)
    if gap > 0.01:
        return Verdict(False, f"z_all carries posX, but posX's gap is {gap:.3f}, not 0.", hint_all)
    if is_blank(z_little):
        return Verdict(False, "z_all is right; z_little is still empty.", hint_little)
    arr = _codes(z_little, len(factors), "z_little", hint_little)
    if isinstance(arr, Verdict):
        return arr
    res = mig(arr, factors)
    share_l, gap_l = _top_share(res, POSX), float(res.per_factor[POSX])
    if share_l > 1 / 3:
        return Verdict(False, f"z_all is right. z_little: a latent shares {share_l:.3f} of posX's entropy, more "
                              "than a third.", hint_little)
    if gap_l < 0.1:
        return Verdict(False, f"z_all is right. z_little: posX's gap is {gap_l:.3f}, below 0.1.", hint_little)
    return Verdict(True, f"z_all: full information ({share:.3f} of H, like a copy), gap {gap:.3f}. z_little: "
                         f"{share_l:.3f} of H, gap {gap_l:.3f}. MIG measures exclusiveness, not information.")


LOW_MIG_OPTIONS = {
    "a": "Twenty equal-width bins cannot resolve posX, posY (32 values) or orientation (40), so even a copy "
         "shares less than all of their entropy; and a factor no latent captures (here orientation) adds a gap "
         "of 0 to the average over five factors.",
    "b": "MIG is computed from the decoder's traversals, and a decoder blurs what even a perfect code says.",
    "c": "The plug-in estimate of I(z; v) for a copied factor is always half of H(v).",
    "d": "MIG subtracts each latent's KL, and a latent that copies a factor has a large KL.",
}


def check_low_mig(z_ideal, reason, factors, *, tolerance: float = 0.05) -> Verdict:
    """Exercise 3: z_ideal [n, L] is perfectly disentangled except that no latent carries orientation;
    reason = one key of :data:`LOW_MIG_OPTIONS`.

    Checked with ``vae_core.metrics.mig`` on ``factors`` [n, 5]: shape, scale, posX and posY each
    have a gap within ``tolerance`` of the ideal code's (:func:`vae_core.metrics.mig_ceiling`),
    and no latent shares more than 0.1 of orientation's entropy.
    """
    hint = ("give each of shape, scale, posX and posY a latent of its own (a copy of that factor column), let no "
            "latent depend on orientation (column 2), and fill the remaining latents with noise or constants.")
    factors = np.asarray(factors)
    if is_blank(z_ideal):
        return check_close(None, 0.0, hint=hint)
    arr = _codes(z_ideal, len(factors), "z_ideal", hint)
    if isinstance(arr, Verdict):
        return arr
    res, ceiling = mig(arr, factors), mig_ceiling(factors)
    names = ("shape", "scale", "orientation", "posX", "posY")
    for k in (0, 1, 3, 4):
        if res.per_factor[k] < ceiling.per_factor[k] - tolerance:
            return Verdict(False, f"{names[k]}'s gap is {res.per_factor[k]:.3f}; an ideal code's is "
                                  f"{ceiling.per_factor[k]:.3f}.", hint)
    orient = _top_share(res, 2)
    if orient > 0.1:
        return Verdict(False, f"a latent shares {orient:.3f} of orientation's entropy: the code should ignore "
                              "orientation.", hint)
    verdict = check_choice(reason, "a", options=LOW_MIG_OPTIONS,
                           hint=f"your code is right (MIG {res.score:.3f}, the ceiling is {ceiling.score:.3f}). "
                                "For the reason: look at its per-factor gaps, and at section 4.")
    if not verdict:
        return verdict
    return Verdict(True, f"Your code scores MIG {res.score:.3f} against the ceiling {ceiling.score:.3f}, per "
                         f"factor {np.round(res.per_factor, 3).tolist()}. {LOW_MIG_OPTIONS['a']}")


__all__ = ["traversal_codes", "traversal_grid", "plot_traversal", "sprite_model_config", "sprite_train_config",
           "mig_table", "format_mig_table", "ELBO_OPTIONS", "check_negative_elbo", "POSX", "check_mig_codes",
           "LOW_MIG_OPTIONS", "check_low_mig"]
