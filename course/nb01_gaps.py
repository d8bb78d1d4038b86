"""Measuring the gaps in a 2-d latent space (notebook 01).

A plain autoencoder only has to place each training image somewhere its decoder can
find it again; nothing asks the space *between* the codes to decode to anything
sensible. This module turns "there are gaps" into numbers:

* where to look:  :func:`code_grid` (a regular grid over the box the codes span),
  :func:`line_path` (a straight line between two codes), :func:`fitted_gaussian_samples`
  (samples from a Gaussian matched to the codes' mean and covariance);
* empty space in z:  :func:`nearest_code_distance`, :func:`empty_fraction` -- how
  far probe points are from the nearest code of a real image, in units of the codes'
  own spacing, so the number means the same for differently scaled spaces;
  :func:`inside_ellipse` keeps only probes inside the codes' own 2-sigma ellipse, so
  the corners of a square grid around a round cloud do not count as gaps;
* generating:  :func:`digit_coverage` -- which digits the decoded samples of a prior
  are recognised as, and how evenly (entropy of that histogram / log 10);
* what the decoder makes of a point:  :class:`vae_core.metrics.DigitJudge` (in the
  engine, as notebook 07 uses it too), which scores decoded images against real ones
  with two stated metrics:

  - *nearest-digit distance*: RMS pixel distance to the nearest real training image
    (scikit-learn ``NearestNeighbors``), reported as a ratio to the same distance for
    the model's own reconstructions of test images, so a blurry decoder is not
    penalised for being blurry -- only for leaving the region its reconstructions
    occupy;
  - *classifier confidence*: the largest class probability that a multinomial
    logistic regression (scikit-learn ``LogisticRegression`` on the pixels projected
    to their first 50 principal components, which makes L-BFGS converge in seconds)
    gives the decoded image.

All functions take and return NumPy arrays; codes are ``[n, L]``, images ``[n, D]``.

The checkers of the notebook's exercises (``check_*``, each returning a
:class:`vae_core.exercises.Verdict`) recompute their expected answers from the objects
they are given, so they judge smoke runs, full runs and the tests' small stand-ins alike.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from sklearn.neighbors import NearestNeighbors

from vae_core.evaluate import decode_mean
from vae_core.exercises import Verdict, check_close, check_then_choose, is_blank
from vae_core.metrics import DigitJudge, GapScores  # the engine's judge, used here and by notebook 07

__all__ = ["code_grid", "line_path", "fitted_gaussian_samples", "inside_ellipse", "nearest_code_distance",
           "code_spacing", "empty_fraction", "digit_coverage", "DigitJudge", "GapScores",
           "replay_prior_samples", "path_probabilities", "REPLAY_OPTIONS",
           "check_bigger_bottleneck", "check_replay_prior", "check_path_crossing"]


# ----------------------------------------------------------------------------- where to look
def code_grid(codes, n: int = 15, quantile: float = 0.01):
    """A regular n x n grid over the box spanned by 2-d codes.

    The box runs from the ``quantile`` to the ``1 - quantile`` quantile of each
    coordinate (so a handful of far outliers do not stretch it). Rows run from high z2
    (top) to low z2 (bottom) and columns from low z1 to high z1, so the decoded grid,
    tiled row by row, has the same orientation as a scatter plot of the codes.

    Returns (grid [n*n, 2], z1 values [n], z2 values [n], top to bottom).
    """
    codes = np.asarray(codes, np.float64)
    if codes.ndim != 2 or codes.shape[1] != 2:
        raise ValueError(f"codes must have shape [n, 2], got {codes.shape}")
    if not 0 <= quantile < 0.5:
        raise ValueError(f"quantile must lie in [0, 0.5), got {quantile}")
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    lo = np.quantile(codes, quantile, axis=0)
    hi = np.quantile(codes, 1 - quantile, axis=0)
    z1 = np.linspace(lo[0], hi[0], n)
    z2 = np.linspace(hi[1], lo[1], n)
    g2, g1 = np.meshgrid(z2, z1, indexing="ij")
    grid = np.stack([g1.ravel(), g2.ravel()], axis=1).astype(np.float32)
    return grid, z1.astype(np.float32), z2.astype(np.float32)


def line_path(z_a, z_b, steps: int = 10) -> np.ndarray:
    """Points (1 - t) z_a + t z_b for t = 0, 1/(steps-1), ..., 1 -> [steps, L]."""
    z_a = np.asarray(z_a, np.float32).reshape(-1)
    z_b = np.asarray(z_b, np.float32).reshape(-1)
    if z_a.shape != z_b.shape:
        raise ValueError(f"z_a and z_b must have the same shape, got {z_a.shape} and {z_b.shape}")
    if steps < 2:
        raise ValueError(f"steps must be >= 2 (both ends), got {steps}")
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    return (1 - t) * z_a + t * z_b


def fitted_gaussian_samples(codes, n: int, seed: int = 0) -> np.ndarray:
    """n samples from N(mean, covariance) of the codes -> [n, L] float32.

    For an autoencoder, whose codes need not look like N(0, I), this is the fairest
    "prior" one could pick after training: it has the codes' own location and spread.
    """
    codes = np.asarray(codes, np.float64)
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal(codes.mean(0), np.cov(codes, rowvar=False), size=n).astype(np.float32)


def inside_ellipse(points, codes, radius: float = 2.0) -> np.ndarray:
    """Mask [m]: points whose Mahalanobis distance from the codes' mean (under the codes'
    covariance) is at most ``radius`` -- the codes' own "radius-sigma" ellipse."""
    points = np.asarray(points, np.float64)
    codes = np.asarray(codes, np.float64)
    diff = points - codes.mean(0)
    prec = np.linalg.inv(np.atleast_2d(np.cov(codes, rowvar=False)))
    return np.einsum("ni,ij,nj->n", diff, prec, diff) <= radius ** 2


# ----------------------------------------------------------------------------- empty space in z
def nearest_code_distance(points, codes) -> np.ndarray:
    """Euclidean distance from each point [m, L] to its nearest code in codes [n, L] -> [m]."""
    nn = NearestNeighbors(n_neighbors=1).fit(np.asarray(codes, np.float64))
    dist, _ = nn.kneighbors(np.asarray(points, np.float64))
    return dist[:, 0]


def code_spacing(codes, quantile: float = 0.99) -> float:
    """The ``quantile`` of the distances from each code to its nearest other code.

    A scale for "near" that comes from the codes themselves: 99 % of real codes have a
    neighbour closer than this.
    """
    codes = np.asarray(codes, np.float64)
    nn = NearestNeighbors(n_neighbors=2).fit(codes)
    dist, _ = nn.kneighbors(codes)
    return float(np.quantile(dist[:, 1], quantile))


def empty_fraction(points, codes, quantile: float = 0.99) -> float:
    """Fraction of points [m, L] farther from every code than :func:`code_spacing`.

    Because the radius is the codes' own spacing, the number does not depend on how
    the space is scaled: it is the share of the probed area where no real image lives.
    """
    radius = code_spacing(codes, quantile)
    return float(np.mean(nearest_code_distance(points, codes) > radius))


def digit_coverage(predicted, n_classes: int = 10) -> tuple[np.ndarray, float]:
    """Histogram of predicted digits [n_classes] (shares summing to 1) and its evenness.

    Evenness is the entropy of the histogram divided by log(n_classes): 1.0 when every
    digit is generated equally often, 0.0 when only one digit ever appears.
    """
    predicted = np.asarray(predicted).astype(int).ravel()
    if predicted.size == 0:
        raise ValueError("predicted is empty")
    if predicted.min() < 0 or predicted.max() >= n_classes:
        raise ValueError(f"predicted digits must lie in [0, {n_classes}), got {predicted.min()}..{predicted.max()}")
    hist = np.bincount(predicted, minlength=n_classes) / predicted.size
    nz = hist[hist > 0]
    return hist, float(-np.sum(nz * np.log(nz)) / np.log(n_classes))


# ----------------------------------------------------------------------------- exercises
def check_bigger_bottleneck(gain, ae20, ae) -> Verdict:
    """Exercise 1: ``gain`` is the 20-d AE's test reconstruction term minus the 2-d AE's.

    ae20, ae: what ``train_or_load`` returned for the 20-d and the 2-d autoencoder. ae20
    must differ from ae only in its code size (same layers, likelihood and training
    settings). The expected gain is recomputed from the two histories,
    ``ae20.history['test_rec'][-1] - ae.history['test_rec'][-1]`` (nats per image);
    tolerance 0.01 nats, so a difference of the two printed two-decimal values passes.
    """
    hint = ("Train the 20-d autoencoder with train_or_load, the notebook's net settings with latent_dim=20 and "
            "deterministic=True, and the notebook's train_cfg; each result's test reconstruction term per "
            "epoch is in its history['test_rec'].")
    if is_blank(ae20):
        return Verdict(False, "ae20 is still empty: train the 20-d autoencoder first.", hint)
    cfg, other = getattr(ae20, "model_config", None), getattr(ae, "model_config", None)
    if cfg is None or not hasattr(ae20, "history"):
        return Verdict(False, f"ae20 should be the result train_or_load returns, got {type(ae20).__name__}.", hint)
    if cfg.latent_dim != 20:
        return Verdict(False, f"ae20 has a {cfg.latent_dim}-d code, not a 20-d one.", hint)
    if not cfg.deterministic:
        return Verdict(False, "ae20 is a VAE (deterministic=False); the exercise compares autoencoders.", hint)
    if dataclasses.replace(cfg, latent_dim=other.latent_dim) != other:
        return Verdict(False, "ae20's layers or likelihood differ from the 2-d AE's: change only latent_dim.", hint)
    if ae20.train_config != ae.train_config:
        return Verdict(False, "ae20 was trained with other settings than the 2-d AE: use the notebook's train_cfg.",
                       hint)
    expected = float(ae20.history["test_rec"][-1]) - float(ae.history["test_rec"][-1])
    return check_close(gain, expected, rtol=0.0, atol=0.01, what="The gain in test log p(x|z) (nats per image)",
                       hint="gain = (20-d AE's last test_rec) - (2-d AE's last test_rec), both from the models' "
                            "history; it is positive when the bigger code reconstructs better (tolerance 0.01 nats).")


def replay_prior_samples(codes, n: int, seed: int = 0, noise: float = 0.3) -> np.ndarray:
    """n codes drawn by "replaying" the data: a random code plus noise * code_spacing * N(0, I).

    The indices are drawn first, then the noise, from ``np.random.default_rng(seed)``.
    Returns [n, L] float32.
    """
    codes = np.asarray(codes, np.float64)
    rng = np.random.default_rng(seed)
    picked = codes[rng.integers(0, len(codes), n)]
    return (picked + noise * code_spacing(codes) * rng.normal(size=picked.shape)).astype(np.float32)


REPLAY_OPTIONS = {
    "a": "The noise is too large: most decoded images stop looking like digits.",
    "b": "It needs the stored code of every test image and can only replay near-copies of them; "
         "it says nothing about the space between the codes.",
    "c": "The AE's decoder can only decode the exact codes of real images.",
    "d": "It uses the test labels, which a generator is not allowed to see.",
}


def check_replay_prior(evenness, why, ae, codes, judge: DigitJudge, *, n: int = 5000, seed: int = 0,
                       tol: float = 0.02) -> Verdict:
    """Exercise 2: the evenness of the digits the "replay" prior generates, and why it is no real prior.

    evenness: the student's evenness (entropy / log 10 of the classifier's digit histogram)
      of 1000 decoded codes z = (random test code) + 0.3 * code_spacing * N(0, I).
    why: one key of :data:`REPLAY_OPTIONS` (the right one is "b").
    ae: the AE's training result (its ``model`` decodes); codes: the AE's test codes [n, 2];
    judge: the notebook's :class:`DigitJudge`.
    The reference evenness comes from ``n`` = 5000 replay draws of its own; a 1000-draw
    estimate has a standard error of about 0.005 (measured over seeds on the course's
    models), so the tolerance, 0.02, is about 3.5 standard errors of the difference and any
    seed passes.
    """
    hint = ("Draw 1000 indices into codes['AE'] and add 0.3 * gaps.code_spacing(codes['AE']) times standard "
            "normal noise; decode with decode_mean(ae.model, z), name the digits with judge.classify and take "
            "the evenness from gaps.digit_coverage. Any seed passes: the tolerance is 0.02, about 3.5 "
            "standard errors.")
    z = replay_prior_samples(codes, n, seed)
    _, predicted = judge.classify(np.asarray(decode_mean(ae.model, z)))
    expected = digit_coverage(predicted)[1]
    verdict = check_close(evenness, expected, rtol=0.0, atol=tol, what="The evenness", hint=hint)
    verdict = Verdict(True, f"Evenness about {expected:.3f}.") if verdict else verdict
    return check_then_choose(verdict, why, "b", options=REPLAY_OPTIONS,
                             hint="Ask what you must keep to draw from this prior, and what it can ever produce.",
                             right_so_far="The evenness is right; the reason")


def path_probabilities(model, z_a, z_b, judge: DigitJudge, digits=(1, 7), steps: int = 50):
    """Decode ``steps`` points of the straight line from z_a to z_b with ``model`` and return
    (t [steps], probabilities [steps, len(digits)]) the judge's classifier gives each digit."""
    line = line_path(z_a, z_b, steps=steps)
    proba = judge.clf.predict_proba(np.asarray(decode_mean(model, line)))
    classes = list(judge.clf.classes_)
    columns = [classes.index(d) for d in digits]
    return np.linspace(0.0, 1.0, steps), proba[:, columns]


def check_path_crossing(t_cross, lowest, models, paths, judge: DigitJudge, *, steps: int = 50) -> Verdict:
    """Exercise 3: where the classifier's p(1) and p(7) cross along each model's 1 -> 7 path.

    t_cross: {model name: the first t on the ``steps``-point grid t = linspace(0, 1, steps)
      at which p(7) >= p(1)}, np.nan for a model where that never happens;
    lowest: {model name: the smallest p(1) + p(7) along the path}.
    models: {name: training result}; paths: {name: the path's codes, start to end};
    judge: the notebook's :class:`DigitJudge`. Recomputed with :func:`path_probabilities`.
    Tolerances: t within one grid step, 1 / (steps - 1), so a linearly interpolated
    crossing passes too; lowest within 0.001.
    """
    hint = ("For each model decode gaps.line_path(paths[name][0], paths[name][-1], steps=50) with decode_mean, "
            "get the class probabilities from judge.clf.predict_proba (its columns follow judge.clf.classes_), "
            "and put each image at t = np.linspace(0, 1, 50).")
    for label, answer in (("t_cross", t_cross), ("lowest", lowest)):
        if is_blank(answer) or (isinstance(answer, dict) and any(is_blank(v) for v in answer.values())):
            return Verdict(False, f"{label} is still empty: fill in one value per model and run the cell again.", hint)
        if not isinstance(answer, dict) or set(answer) != set(models):
            return Verdict(False, f"{label} should be a dict with one value for each of {sorted(models)}.", hint)
    step = 1.0 / (steps - 1)
    for name, r in models.items():
        t, p = path_probabilities(r.model, paths[name][0], paths[name][-1], judge, steps=steps)
        after = np.flatnonzero(p[:, 1] >= p[:, 0])
        want = float(t[after[0]]) if after.size else float("nan")
        try:
            got = float(t_cross[name])
        except (TypeError, ValueError):
            return Verdict(False, f"t_cross[{name!r}] should be a number, got {t_cross[name]!r}.", hint)
        if np.isnan(want) != np.isnan(got) or (not np.isnan(want) and abs(got - want) > step + 1e-9):
            if np.isnan(want) or np.isnan(got):
                side = "p(7) never reaches p(1) on this line" if np.isnan(want) else "the curves do cross on this line"
            else:
                side = "too late" if got > want else "too early"
            return Verdict(False, f"t_cross[{name!r}] is {got:.3g}: {side}.", hint)
        verdict = check_close(lowest[name], float(np.min(p.sum(1))), rtol=0.0, atol=1e-3,
                              what=f"lowest[{name!r}]", hint=hint)
        if not verdict:
            return verdict
    summary = ", ".join(f"{n}: t = {float(t_cross[n]):.2f}, lowest p(1) + p(7) = {float(lowest[n]):.2f}"
                        for n in models)
    return Verdict(True, summary)
