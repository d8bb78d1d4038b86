"""Numbers that judge a trained model or its codes.

  active_units      Burda et al.'s count of latents whose posterior mean varies with x
  mig               the Mutual Information Gap against known factors (Chen et al. 2018),
                    in disentanglement_lib's variant (Locatello et al. 2019) or over active
                    latents only; mig_ceiling, match_latents and the pieces it is built from
  knn_accuracy      k-NN label accuracy of a set of points, by stratified cross-validation
  trustworthiness   trustworthiness of a 2-d map (scikit-learn's number, computed faster)
  DigitJudge        an independent judge of decoded digits: nearest real image and a
                    logistic-regression classifier (GapScores: its scores of a set)

MIG, as computed here:

* the representation is the encoder's **mean** mu(x) (not a sample z ~ q(z|x));
* each latent dimension is discretised into **20 equal-width bins** over its observed
  range (``np.histogram`` edges, ``np.digitize``);
* I(z_j; v_k) is the plug-in mutual information of the discretised code and the
  factor's integer value (``sklearn.metrics.mutual_info_score``, nats), and H(v_k) the
  plug-in entropy of the factor;
* MIG = (1/K) sum_k [ I(z_(1); v_k) - I(z_(2); v_k) ] / H(v_k), where z_(1), z_(2) are
  the latents with the largest and second-largest MI with factor k;
* ``mig(..., active_only=True)`` is the variant over **active latents** only: a latent
  whose mean's variance over the sample is at most ``threshold`` (0.01, as
  :func:`active_units`) cannot be z_(1) or z_(2). With 20 bins spanning each latent's own
  range, a collapsed latent's tiny noise fills all 20 bins and scores a small spurious
  MI (the plug-in estimator's upward bias), which the default variant subtracts as if
  it were information.

Consequences worth knowing (the tests pin them down): a code that copies each factor
into its own latent scores 1 only if every factor has at most 20 values; with 20 bins,
dSprites' 32 positions and 40 orientations cannot be resolved fully, so even a perfect
code scores below 1 (:func:`mig_ceiling` computes the ceiling). A factor copied into two
latents scores 0: MIG rewards one latent per factor, not just information.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple, Sequence

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline

from .evaluate import encode
from .models import VAE

KNN_K = 10
CV_FOLDS = 5


def active_units(model: VAE, x, *, threshold: float = 0.01) -> tuple[int, np.ndarray]:
    """Burda et al.'s active units: latents whose posterior mean varies across data.

    A_u = Var_x(E_q[z_u|x]) > threshold. x: [n, D]. Returns (count, variances [L]).
    """
    means = np.asarray(encode(model, x).mean)
    variances = means.var(axis=0)
    return int(np.sum(variances > threshold)), variances


# --------------------------------------------------------------------------- MIG
N_BINS = 20


class MIGResult(NamedTuple):
    """score: the MIG; per_factor [K]: normalised gap of each factor; mi [L, K] (nats, all
    latents); entropy [K] (nats); ranking [K, 2]: the latents with the largest and
    second-largest MI (-1 where fewer than two latents competed); active [L]: the
    latents that competed (all of them unless active_only)."""

    score: float
    per_factor: np.ndarray
    mi: np.ndarray
    entropy: np.ndarray
    ranking: np.ndarray
    active: np.ndarray | None = None


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


def mig(codes, factors, n_bins: int = N_BINS, *, active_only: bool = False,
        threshold: float = 0.01) -> MIGResult:
    """Mutual Information Gap of codes [n, L] (encoder means) against factors [n, K].

    MIG = (1/K) sum_k (I(z_j1; v_k) - I(z_j2; v_k)) / H(v_k), with j1, j2 the latents of
    largest and second-largest I(z_j; v_k); I is the plug-in MI of the code cut into
    n_bins equal-width bins over each latent's observed range (:func:`discretize`) and
    the integer factor, H the factor's plug-in entropy (nats). j1, j2 range over all
    latents (default, disentanglement_lib's MIG) or, with active_only=True, over the
    active latents only: those with Var_n(codes[:, j]) > threshold (as
    :func:`active_units`); a missing j2 (or j1) counts as I = 0.

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
    active = (np.var(np.asarray(codes, np.float64), axis=0) > threshold) if active_only \
        else np.ones(codes.shape[1], bool)
    competing = np.where(active[:, None], mi, -np.inf)  # inactive latents can be neither j1 nor j2
    ranking = np.argsort(-competing, axis=0, kind="stable")[:2].T  # [K, 2]
    ranked = np.take_along_axis(competing, ranking.T, 0)  # [2, K]
    ranking = np.where(np.isfinite(ranked).T, ranking, -1)
    top, second = np.where(np.isfinite(ranked), ranked, 0.0)
    varies = entropy > 0
    if not varies.any():
        raise ValueError("no factor varies in this sample")
    per_factor = np.full(len(entropy), np.nan)
    per_factor[varies] = (top[varies] - second[varies]) / entropy[varies]
    return MIGResult(float(np.mean(per_factor[varies])), per_factor, mi, entropy, ranking, active)


def mig_ceiling(factors, n_bins: int = N_BINS) -> MIGResult:
    """MIG of the ideal code (latent k = factor k, plus a constant latent) on these factors.

    With n_bins equal-width bins a factor with more than n_bins values loses
    information, so this is below 1 on dSprites' grid: the best score this variant can
    give on that sample.
    """
    factors = np.asarray(factors, np.float64)
    codes = np.concatenate([factors, np.zeros((len(factors), 1))], axis=1)
    return mig(codes, factors.astype(np.int64), n_bins)


def model_mig(model: VAE, images, factors, n_bins: int = N_BINS, *, active_only: bool = False,
              threshold: float = 0.01) -> MIGResult:
    """MIG of a trained VAE: encode images [n, D] to their posterior means, then :func:`mig`
    (active_only, threshold: its variant over active latents)."""
    return mig(np.asarray(encode(model, images).mean), factors, n_bins, active_only=active_only,
               threshold=threshold)


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


# --------------------------------------------------------------------------- neighbours
def knn_accuracy(x, labels, *, k: int = KNN_K, folds: int = CV_FOLDS, seed: int = 0) -> float:
    """k-NN classification accuracy of labels from points x: [n, d], stratified k-fold CV.

    Each fold's points are classified by a majority vote of their k nearest neighbours
    among the other folds' points (Euclidean); the mean accuracy over the folds is
    returned. A high value means points of the same digit sit next to each other.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    x = np.asarray(x, np.float64)
    labels = np.asarray(labels)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(np.mean(cross_val_score(KNeighborsClassifier(n_neighbors=k), x, labels, cv=cv)))


def trustworthiness(x, coords, *, k: int = KNN_K, block: int = 256) -> float:
    """Trustworthiness of a map coords [n, 2] of x [n, d] with k neighbours (Venna & Kaski).

    1 - 2 / (n k (2n - 3k - 1)) * sum over points i of sum over the map's k nearest
    neighbours j of i that are not among i's k nearest in x of (rank of j among i's
    neighbours in x - k). In [0, 1]; 1 is best: no point is a near neighbour in the map
    without being one in x.

    The same number as ``sklearn.manifold.trustworthiness`` (tested), computed without
    sorting every row of the n x n distance matrix: a rank is the count of points closer
    to i than j, taken block by block of rows (memory ~ block * n * k bytes; time
    ~ n^2 (d + k)). Points tied in distance share the lowest rank (scikit-learn orders
    ties arbitrarily); with continuous data there are none. ``benchmarks/tsne_speed.py``
    times both on 10,000 codes.
    """
    from sklearn.neighbors import NearestNeighbors

    x = np.asarray(x, np.float64)
    coords = np.asarray(coords, np.float64)
    n = len(x)
    x = x - x.mean(axis=0) if x.ndim == 2 else x  # centred: the expanded distances below keep their precision
    if x.ndim != 2 or coords.ndim != 2 or len(coords) != n:
        raise ValueError(f"x must be [n, d] and coords [n, 2] with the same n, got {x.shape} and {coords.shape}")
    if not 0 < k < n / 2:
        raise ValueError(f"k={k} must be positive and below n/2 = {n / 2}")
    map_nn = NearestNeighbors(n_neighbors=k).fit(coords).kneighbors(return_distance=False)  # [n, k], no self
    sq = np.einsum("ij,ij->i", x, x)
    penalty = 0
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        d2 = sq[rows, None] + sq[None, :] - 2.0 * (x[rows] @ x.T)   # [b, n] squared distances
        d2[np.arange(d2.shape[0]), np.arange(rows.start, rows.stop)] = -np.inf  # i itself: rank 0
        limit = np.take_along_axis(d2, map_nn[rows], axis=1)          # [b, k] distance to each map neighbour
        rank = (d2[:, None, :] < limit[:, :, None]).sum(-1)           # [b, k]: 1 + points strictly closer, self aside
        over = rank - k
        penalty += int(over[over > 0].sum())
    return float(1.0 - penalty * (2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))))


# ----------------------------------------------------------------------------- judging decoded digits
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


__all__ = ["active_units", "N_BINS", "MIGResult", "discretize", "mutual_information", "factor_entropy", "mig",
           "mig_ceiling", "model_mig", "LatentMatch", "match_latents", "KNN_K", "CV_FOLDS", "knn_accuracy",
           "trustworthiness", "GapScores", "DigitJudge"]
