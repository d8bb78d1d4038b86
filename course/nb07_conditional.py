"""Helpers for notebook 07: conditional VAEs (generation on demand, completion) and M2 (learning from 100 labels).

The models and their training live in :mod:`vae_core.conditional`; this module holds what
only notebook 07 needs:

* the data of its three tasks: :func:`label_draw` (10 labelled images per digit, a fixed
  seed per draw) and :func:`m2_data`;
* training one M2 model per label draw through the model cache and the shipped models
  (:func:`train_m2_draw`), and the labels-only baseline with the same classifier
  (:func:`labels_only_error`);
* pictures: :func:`style_grid` (one style code decoded as every digit), :func:`completion_grid`
  (observed half, truth, the regression's answer and several conditional-VAE completions);
* the checkers of the notebook's exercises (``check_*``, each returning a
  :class:`vae_core.exercises.Verdict`), which recompute their expected answers from the
  objects they are given, so they judge smoke runs, full runs and the tests' stand-ins alike.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from vae_core.checkpoint import load_shipped_conditional, train_or_load_conditional
from vae_core.conditional import (ConditionalConfig, build_conditional, classify, decode_conditional, join_images,
                                  label_bounds, one_hot, train_classifier, train_m2)
from vae_core.exercises import Verdict, check_close, check_then_choose, is_blank
from vae_core.train import TrainConfig

__all__ = ["label_draw", "m2_data", "train_m2_draw", "labels_only_error", "style_grid", "completion_grid",
           "pixel_spread", "shipped_model", "check_hardest_digit", "check_generative_classifier", "GENERATIVE_OPTIONS",
           "check_disagreement", "DISAGREEMENT_OPTIONS"]


# ----------------------------------------------------------------------------- data
def label_draw(y_train, per_class: int = 10, seed: int = 0) -> np.ndarray:
    """Indices of ``per_class`` training images of each digit, drawn without replacement with
    ``numpy.random.default_rng(seed)``: the labelled set of one M2 run. y_train: [n] ints -> [10 * per_class]."""
    y = np.asarray(y_train)
    rng = np.random.default_rng(seed)
    picks = []
    for digit in range(10):
        pool = np.flatnonzero(y == digit)
        if len(pool) < per_class:
            raise ValueError(f"only {len(pool)} training images of digit {digit}, need {per_class}")
        picks.append(rng.choice(pool, per_class, replace=False))
    return np.concatenate(picks)


def m2_data(x_train, y_train, draw: int, per_class: int = 10, n_unlabelled: int | None = None):
    """(x_lab [10 * per_class, 784], y_lab, x_unl [n_unlabelled, 784]) for label draw ``draw``:
    the labelled images of :func:`label_draw` (seed = draw) and the first n_unlabelled training
    images (default all) as unlabelled data. With all of them, as in Kingma et al., the labelled
    images are also among the unlabelled ones (their labels are simply not used there)."""
    idx = label_draw(y_train, per_class, seed=draw)
    x_unl = x_train if n_unlabelled is None else x_train[:n_unlabelled]
    return x_train[idx], np.asarray(y_train)[idx], x_unl


# ----------------------------------------------------------------------------- M2 and its baseline
def train_m2_draw(x_train, y_train, x_test, y_test, draw: int, config: ConditionalConfig, train_config: TrainConfig,
                  *, alpha: float, labelled_weight: float = 1.0, per_class: int = 10,
                  n_unlabelled: int | None = None):
    """The M2 model of one label draw: shipped (full mode), cached, or trained with
    :func:`vae_core.conditional.train_m2` and cached as ``07_m2_draw<draw>``. Returns its
    ConditionalResult. x_test, y_test: the test set its card's numbers are measured on when shipped."""
    x_lab, y_lab, x_unl = m2_data(x_train, y_train, draw, per_class, n_unlabelled)
    spec = {"task": "label", "alpha": alpha, "labelled_weight": labelled_weight, "labels": len(y_lab), "draw": draw}
    fit = lambda: train_m2(build_conditional(config, draw, data_mean=x_unl.mean(0)), train_config,  # noqa: E731
                           x_lab, y_lab, x_unl, alpha=alpha, labelled_weight=labelled_weight,
                           desc=f"M2, label draw {draw}")
    return train_or_load_conditional(f"07_m2_draw{draw}", config, train_config, fit, data=(x_lab, y_lab, x_unl),
                                     spec=spec, test=(x_test, y_test))


def labels_only_error(x_train, y_train, x_test_bin, y_test, draw: int, config: ConditionalConfig,
                      train_config: TrainConfig, per_class: int = 10) -> float:
    """Test error of the baseline: the M2 model's classifier (same network, same initial
    weights as draw ``draw``'s M2) trained on the labelled images of the draw alone
    (:func:`vae_core.conditional.train_classifier`). x_test_bin: [n, 784] binary test images."""
    idx = label_draw(y_train, per_class, seed=draw)
    result = train_classifier(build_conditional(config, draw), train_config, x_train[idx], np.asarray(y_train)[idx],
                              progress=False)
    return float(np.mean(classify(result.model, x_test_bin) != np.asarray(y_test)))


# ----------------------------------------------------------------------------- pictures
def style_grid(model, codes, *, title: str = "", row_labels=None):
    """Each code z [n, L] (a row) decoded under each of the ten digit labels (a column): Bernoulli
    means, ink dark on white. Returns the figure."""
    codes = np.asarray(codes, np.float32)
    n, K = len(codes), model.cfg.cond_dim
    eye = np.eye(K, dtype=np.float32)
    images = decode_conditional(model, np.repeat(codes, K, axis=0), np.tile(eye, (n, 1))).reshape(n, K, 28, 28)
    fig, axes = plt.subplots(n, K, figsize=(0.9 * K, 0.95 * n + 0.4), squeeze=False, layout="constrained")
    for i in range(n):
        for j in range(K):
            ax = axes[i, j]
            ax.imshow(images[i, j], cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(f"as {j}", fontsize=9)
        if row_labels is not None:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=8, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def completion_grid(seen, truth, regression, samples, mask, *, title: str = ""):
    """One row per test image: the observed part alone, the whole true digit, the regression's
    completion, then each conditional-VAE completion. seen: [n, S] observed pixels, truth:
    [n, 784], regression: [n, T] Bernoulli means of the missing part, samples: [n, m, T]
    completions of the missing part; mask: [784] bool, True where the pixel is observed."""
    seen, truth = np.asarray(seen), np.asarray(truth)
    n, m = np.shape(samples)[:2]
    blank = np.full((n, int((~mask).sum())), np.nan, np.float32)  # the missing part, left empty
    columns = [("seen", join_images(seen, blank, mask)), ("truth", truth),
               ("regression", join_images(seen, regression, mask))]
    columns += [(f"CVAE {j + 1}", join_images(seen, np.asarray(samples)[:, j], mask)) for j in range(m)]
    fig, axes = plt.subplots(n, len(columns), figsize=(0.9 * len(columns), 0.95 * n + 0.4), squeeze=False,
                             layout="constrained")
    cmap = plt.get_cmap("gray_r").with_extremes(bad="#f4d9b0")  # the hidden part of the 'seen' column, tinted
    for j, (name, images) in enumerate(columns):
        for i in range(n):
            ax = axes[i, j]
            ax.imshow(np.ma.masked_invalid(images[i].reshape(28, 28)), cmap=cmap, vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def pixel_spread(samples) -> float:
    """Mean over images and pixels of the standard deviation across completions. samples: [n, m, T]."""
    return float(np.mean(np.std(np.asarray(samples, np.float64), axis=1)))


# ----------------------------------------------------------------------------- exercises
def check_hardest_digit(rates, hardest, model, judge, *, per_digit: int, seed: int) -> Verdict:
    """Exercise 1: ``rates`` {digit: share of its samples the judge reads as that digit} for
    ``per_digit`` prior samples z ~ N(0, I) per digit (key ``jax.random.PRNGKey(seed)``, decoded as
    Bernoulli means under each label), and ``hardest``, the digit with the lowest rate."""
    hint = ("Draw z = jax.random.normal(jax.random.PRNGKey(seed), (10 * per_digit, L)), give the first per_digit "
            "codes label 0, the next label 1, ..., decode them with decode_conditional(model, z, one_hot(labels, 10)) "
            "and compare judge.classify(images)[1] with the labels, digit by digit.")
    if is_blank(rates) or is_blank(hardest):
        return Verdict(False, "rates and hardest are still empty.", hint)
    labels = np.repeat(np.arange(10), per_digit)
    z = jax.random.normal(jax.random.PRNGKey(seed), (10 * per_digit, model.cfg.latent_dim))
    predicted = judge.classify(decode_conditional(model, z, one_hot(labels, 10)))[1]
    expected = {d: float(np.mean(predicted[labels == d] == d)) for d in range(10)}
    try:
        given = [float(rates[d]) for d in range(10)]
    except (KeyError, TypeError, ValueError, IndexError):
        return Verdict(False, "rates must be a dict {digit: rate} with the ten digits 0..9 as keys.", hint)
    numbers = check_close(given, [expected[d] for d in range(10)], hint=hint, atol=1e-9)
    if not numbers:
        return numbers
    lowest = [d for d in range(10) if expected[d] == min(expected.values())]
    if hardest not in lowest:
        return Verdict(False, f"The rates are right, but digit {hardest!r} does not have the lowest one.",
                       "Take the digit whose rate is smallest (min(rates, key=rates.get)).")
    return Verdict(True, f"Digit {hardest} is the hardest to draw on demand for this model: "
                         f"{expected[hardest]:.0%} of its samples are read as {hardest}.")


GENERATIVE_OPTIONS = {
    "a": "the generative model is the better classifier: its own posterior exp L(x, y) already knows the digits",
    "b": "the classifier q(y|x) is better: the generative model's labels only have to help explain the pixels, "
         "so the label it prefers is often not the digit",
    "c": "both are the same: M2's bound makes q(y|x) equal to the generative model's posterior",
}


def check_generative_classifier(error, why, model, x_bin, y, *, seed: int) -> Verdict:
    """Exercise 2: ``error`` is the test error of M2's *generative* classifier, argmax_y L(x, y)
    (:func:`vae_core.conditional.label_bounds` with key ``jax.random.PRNGKey(seed)``, one call on
    all of x_bin [n, 784]), and ``why`` the option of :data:`GENERATIVE_OPTIONS` that the numbers support."""
    hint = ("bounds = label_bounds(m2[0].model, jnp.asarray(x_bin), jax.random.PRNGKey(seed)) gives L(x, y) for the "
            "ten labels [n, 10]; its argmax over the labels is the generative model's guess.")
    bounds = np.asarray(label_bounds(model, jnp.asarray(x_bin, jnp.float32), jax.random.PRNGKey(seed)))
    expected = float(np.mean(bounds.argmax(axis=1) != np.asarray(y)))
    own = float(np.mean(classify(model, x_bin) != np.asarray(y)))
    correct = "b" if own < expected else ("a" if expected < own else "c")
    return check_then_choose(check_close(error, expected, hint=hint, atol=1e-9), why, correct,
                             options=GENERATIVE_OPTIONS,
                             hint=f"Compare your error with the classifier's own, {own:.3f}, on the same images.",
                             right_so_far=f"Your error is right ({expected:.1%}; the classifier's own: {own:.1%}); "
                                          "the reading:")


DISAGREEMENT_OPTIONS = {
    "a": "negative: where the CVAE's completions disagree, the regression's single answer fits the truth worse",
    "b": "about zero: the two models find different images hard",
    "c": "positive: where the CVAE's completions disagree, the regression's answer fits the truth best",
}


def check_disagreement(spread, corr, reading, model, top, ll_regression, *, seed: int, n_draws: int = 8) -> Verdict:
    """Exercise 3: ``spread`` [n], each image's pixel standard deviation across ``n_draws``
    completions (codes ``jax.random.normal(jax.random.PRNGKey(seed), (n_draws, n, L))``, decoded
    as Bernoulli means given ``top`` [n, 392]), averaged over the missing pixels; ``corr`` its
    correlation with ``ll_regression`` [n]; ``reading`` the option of :data:`DISAGREEMENT_OPTIONS`
    (a below -0.1, c above 0.1, b between)."""
    hint = ("Stack the n_draws decoded completions on axis 1 ([n, n_draws, 392]), take .std(axis=1).mean(axis=1), "
            "then np.corrcoef(spread, ll_regression)[0, 1].")
    top = np.asarray(top, np.float32)
    z = jax.random.normal(jax.random.PRNGKey(seed), (n_draws, len(top), model.cfg.latent_dim))
    draws = np.stack([decode_conditional(model, z[j], top) for j in range(n_draws)], axis=1)
    expected_spread = draws.std(axis=1).mean(axis=1)
    expected_corr = float(np.corrcoef(expected_spread, np.asarray(ll_regression))[0, 1])
    numbers = check_close(spread, expected_spread, hint=hint, rtol=1e-4, atol=1e-6)
    if numbers:
        numbers = check_close(corr, expected_corr, hint=hint, atol=1e-6)
    correct = "a" if expected_corr < -0.1 else ("c" if expected_corr > 0.1 else "b")
    return check_then_choose(numbers, reading, correct, options=DISAGREEMENT_OPTIONS,
                             hint="Read the sign and size of your correlation.",
                             right_so_far=f"Your numbers are right (correlation {expected_corr:.2f}); the reading:")


def shipped_model(name: str):
    """The model of the shipped conditional model ``name`` (e.g. '07_m2_draw0'), SHA-256 checked:
    what the notebook's checked cells judge in both modes."""
    return load_shipped_conditional(name).model
