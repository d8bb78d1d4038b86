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
* what the decoder makes of a point:  :class:`DigitJudge`, which scores decoded
  images against real ones with two stated metrics:

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
"""
from __future__ import annotations

import dataclasses

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline

__all__ = ["code_grid", "line_path", "fitted_gaussian_samples", "inside_ellipse", "nearest_code_distance",
           "code_spacing", "empty_fraction", "digit_coverage", "DigitJudge", "GapScores"]


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


# ----------------------------------------------------------------------------- what the decoder makes of it
@dataclasses.dataclass
class GapScores:
    """Scores of a set of decoded images (see :meth:`DigitJudge.score`).

    nearest:     [n] RMS pixel distance to the nearest real training image.
    ratio:       [n] nearest / the reference distance of the model's reconstructions.
    confidence:  [n] largest class probability of the logistic regression.
    predicted:   [n] the digit it predicts.
    """

    nearest: np.ndarray
    ratio: np.ndarray
    confidence: np.ndarray
    predicted: np.ndarray

    def summary(self, far: float = 1.5, sure: float = 0.9) -> dict:
        """Medians and shares: 'far' = ratio above ``far``, 'unsure' = confidence below ``sure``."""
        return {
            "median_ratio": float(np.median(self.ratio)),
            "frac_far": float(np.mean(self.ratio > far)),
            "mean_confidence": float(np.mean(self.confidence)),
            "frac_unsure": float(np.mean(self.confidence < sure)),
        }


class DigitJudge:
    """Judges decoded images against real MNIST digits.

    x_ref:    real images [n, D] in [0, 1] searched for the nearest digit.
    x_clf, y_clf: images and labels that train the logistic regression (grey pixels).
    n_components: principal components the classifier sees (None: raw pixels).
    max_iter: L-BFGS iterations of the logistic regression.
    """

    def __init__(self, x_ref, x_clf, y_clf, *, n_components: int | None = 50, max_iter: int = 300,
                 C: float = 1.0):
        x_ref = np.asarray(x_ref, np.float32)
        x_clf = np.asarray(x_clf, np.float32)
        y_clf = np.asarray(y_clf)
        if x_ref.ndim != 2 or x_clf.ndim != 2 or x_ref.shape[1] != x_clf.shape[1]:
            raise ValueError(f"x_ref and x_clf must be [n, D] with the same D, got {x_ref.shape}, {x_clf.shape}")
        if y_clf.shape != (len(x_clf),):
            raise ValueError(f"y_clf must have shape [{len(x_clf)}], got {y_clf.shape}")
        self.dim = x_ref.shape[1]
        self.nn = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(x_ref)
        logreg = LogisticRegression(max_iter=max_iter, C=C)
        self.clf = (make_pipeline(PCA(n_components, random_state=0), logreg) if n_components else logreg)
        self.clf.fit(x_clf, y_clf)

    def nearest_distance(self, images) -> np.ndarray:
        """RMS pixel distance of each image [n, D] to its nearest reference image -> [n]."""
        images = self._check(images)
        dist, _ = self.nn.kneighbors(images)
        return dist[:, 0] / np.sqrt(self.dim)

    def classify(self, images) -> tuple[np.ndarray, np.ndarray]:
        """(confidence [n], predicted digit [n]) of the logistic regression."""
        proba = self.clf.predict_proba(self._check(images))
        return proba.max(axis=1), self.clf.classes_[proba.argmax(axis=1)]

    def accuracy(self, images, labels) -> float:
        """Share of images [n, D] classified as their labels [n] (the classifier's own check)."""
        return float(np.mean(self.clf.predict(self._check(images)) == np.asarray(labels)))

    def score(self, images, reference: float) -> GapScores:
        """Score decoded images [n, D]; ``reference`` is the typical nearest-digit distance
        of the same model's reconstructions (e.g. the median of :meth:`nearest_distance`
        of decoded test codes)."""
        if not reference > 0:
            raise ValueError(f"reference must be a positive distance, got {reference}")
        nearest = self.nearest_distance(images)
        conf, pred = self.classify(images)
        return GapScores(nearest, nearest / reference, conf, pred)

    def _check(self, images) -> np.ndarray:
        images = np.asarray(images, np.float32).reshape(len(images), -1)
        if images.shape[1] != self.dim:
            raise ValueError(f"images have {images.shape[1]} pixels, expected {self.dim}")
        if not np.all(np.isfinite(images)):
            raise ValueError("images contain NaN or inf values")
        return images
