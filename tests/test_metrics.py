"""vae_core.metrics on inputs whose answer is known: MIG on synthetic codes, k-NN
accuracy, trustworthiness and active units."""
import numpy as np
import pytest

from vae_core import metrics as M
from vae_core import sprites as S
from vae_core.models import ModelConfig, build_model, model_from_arrays, params_to_arrays

N = 10_000


@pytest.fixture(scope="module")
def factors():
    rng = np.random.default_rng(0)
    return np.stack([rng.integers(0, n, N) for n in (3, 6, 10, 16)], 1)


def perfect_code(factors, rng, extra=2):
    """Each factor copied (with tiny noise) into its own latent, plus `extra` noise latents."""
    return np.concatenate([factors + rng.normal(0, 0.01, factors.shape), rng.normal(size=(len(factors), extra))], 1)


# --------------------------------------------------------------------------- MIG
def test_perfectly_disentangled_code_scores_one(factors):
    rng = np.random.default_rng(1)
    res = M.mig(perfect_code(factors, rng), factors)
    assert res.score > 0.98
    assert res.per_factor.shape == (4,) and res.mi.shape == (6, 4)
    assert list(res.ranking[:, 0]) == [0, 1, 2, 3]


def test_order_and_scale_of_latents_do_not_matter(factors):
    rng = np.random.default_rng(2)
    codes = perfect_code(factors, rng)
    perm = rng.permutation(codes.shape[1])
    a = M.mig(codes, factors).score
    b = M.mig(codes[:, perm] * 7.0 - 3.0, factors).score
    assert abs(a - b) < 1e-9


def test_shuffled_code_scores_zero(factors):
    rng = np.random.default_rng(3)
    codes = perfect_code(factors, rng)
    shuffled = np.stack([rng.permutation(c) for c in codes.T], 1)
    assert M.mig(shuffled, factors).score < 0.02


def test_factor_copied_into_two_latents_has_zero_gap(factors):
    rng = np.random.default_rng(4)
    codes = perfect_code(factors, rng)
    dup = np.concatenate([codes, codes[:, :1] * 2.0], 1)
    res = M.mig(dup, factors)
    assert res.per_factor[0] < 0.01           # two latents carry the shape: no gap
    assert np.all(res.per_factor[1:] > 0.98)


def test_mixed_code_scores_lower(factors):
    rng = np.random.default_rng(5)
    codes = perfect_code(factors, rng)
    z = (factors - factors.mean(0)) / factors.std(0)
    rot = np.linalg.qr(rng.normal(size=(4, 4)))[0]
    mixed = np.concatenate([z @ rot, codes[:, 4:]], 1)
    assert M.mig(mixed, factors).score < 0.5 * M.mig(codes, factors).score


def collapsed_code(factors, rng, inactive=3, noise=1e-3):
    """Factors 0 and 1 copied into latents 0 and 1, plus `inactive` latents that are a constant
    with tiny noise (variance 1e-6, far below the 0.01 threshold), as a collapsed VAE latent is."""
    active = factors[:, :2] + rng.normal(0, 0.01, (len(factors), 2))
    return np.concatenate([active, 0.3 + noise * rng.normal(size=(len(factors), inactive))], 1)


def test_active_only_mig_ignores_the_binned_noise_of_collapsed_latents():
    # 500 codes: the plug-in MI of a collapsed latent's noise cut into 20 bins is visibly above 0
    # (its bias is about (bins - 1)(values - 1) / 2n nats, ~0.28 for the 16-valued factor 0), and
    # the all-latents MIG subtracts it as if a second latent carried factor 0; over the active
    # latents the runner-up is latent 1, which takes 4 values and scores ~0.05 nats.
    # Seeds 7..16: factor 0's gap 0.886..0.905 over all latents, 0.973..0.986 over active ones.
    rng = np.random.default_rng(7)
    f = np.stack([rng.integers(0, 16, 500), rng.integers(0, 4, 500)], 1)
    codes = collapsed_code(f, rng)
    every, active = M.mig(codes, f), M.mig(codes, f, active_only=True)
    assert list(every.active) == [True] * 5 and list(active.active) == [True, True, False, False, False]
    assert every.ranking[0, 1] in (2, 3, 4) and np.all(every.mi[2:, 0] > 0.2)  # noise as the runner-up
    assert list(active.ranking[0]) == [0, 1]
    assert active.per_factor[0] > every.per_factor[0] + 0.05
    assert np.all(active.per_factor >= every.per_factor) and active.score > every.score + 0.02
    np.testing.assert_array_equal(active.mi, every.mi)     # the MI matrix itself does not change
    # the gaps by hand: (I(z_j1; v_k) - I(z_j2; v_k)) / H(v_k) over the active latents 0 and 1
    by_hand = [(every.mi[k, k] - every.mi[1 - k, k]) / every.entropy[k] for k in (0, 1)]
    np.testing.assert_allclose(active.per_factor, by_hand)


def test_active_only_mig_equals_mig_when_every_latent_is_active(factors):
    rng = np.random.default_rng(8)
    codes = perfect_code(factors, rng)                     # noise latents of variance 1: active
    a, b = M.mig(codes, factors), M.mig(codes, factors, active_only=True)
    assert a.score == b.score and np.array_equal(a.per_factor, b.per_factor)
    assert np.array_equal(a.ranking, b.ranking) and b.active.all()


def test_active_only_mig_with_fewer_than_two_active_latents():
    rng = np.random.default_rng(9)
    f = rng.integers(0, 8, (400, 1))
    codes = collapsed_code(np.concatenate([f, f], 1), rng)[:, [0, 2, 3]]  # one active latent
    res = M.mig(codes, f, active_only=True)
    assert list(res.ranking[0]) == [0, -1]                 # no runner-up: it counts as I = 0
    assert res.score == pytest.approx(res.mi[0, 0] / res.entropy[0]) and res.score > 0.99
    none = M.mig(codes, f, active_only=True, threshold=1e6)  # nothing active: no gap at all
    assert list(none.ranking[0]) == [-1, -1] and none.score == 0.0


def test_discretize_matches_histogram_bins():
    x = np.linspace(0, 1, 101)[:, None]
    d = M.discretize(x, 20)
    assert d.min() == 1 and d.max() == 20
    assert np.all(np.diff(d[:, 0]) >= 0)
    assert len(np.unique(d)) == 20


def test_entropy_of_uniform_factor():
    f = np.repeat(np.arange(8), 100)[:, None]
    assert M.factor_entropy(f)[0] == pytest.approx(np.log(8))


def test_ceiling_below_one_on_dsprites_grid():
    f = S.sample_factors(N, seed=0)
    res = M.mig_ceiling(f)
    # shape (3) and scale (6) fit in 20 bins; orientation (40) and positions (32) do not
    assert res.per_factor[0] > 0.98 and res.per_factor[1] > 0.98
    assert np.all(res.per_factor[2:] < 0.9)
    assert 0.8 < res.score < 0.95


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="L >= 2"):
        M.mig(np.zeros((10, 1)), np.zeros((10, 1), int))
    with pytest.raises(ValueError, match="rows"):
        M.mig(np.zeros((10, 3)), np.zeros((9, 1), int))
    with pytest.raises(ValueError, match="NaN"):
        M.discretize(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="varies"):
        M.mig(np.random.default_rng(0).normal(size=(10, 3)), np.zeros((10, 2), int))


def test_match_latents_names_best_factor(factors):
    rng = np.random.default_rng(6)
    res = M.mig(perfect_code(factors, rng), factors)
    m = M.match_latents(res.mi, res.entropy, ["a", "b", "c", "d"])
    assert m.name == ["a", "b", "c", "d", "none", "none"]
    assert list(m.factor) == [0, 1, 2, 3, -1, -1]
    assert m.label[0].startswith("z0: a (") and m.label[4] == "z4: none"
    with pytest.raises(ValueError, match="factor names"):
        M.match_latents(res.mi, res.entropy, ["a", "b"])


def test_model_mig_reads_the_encoder_means():
    cfg = ModelConfig(latent_dim=3, hidden=(16,), image_shape=(32, 32), architecture="conv",
                      conv_channels=(4, 4, 4, 4))
    model = build_model(cfg, 0)
    sp = S.make_sprites(200, 32, seed=1)
    res = M.model_mig(model, sp.images, sp.factors)
    assert 0.0 <= res.score <= 1.0 and res.mi.shape == (3, 5)
    from vae_core.evaluate import encode

    means = np.asarray(encode(model, sp.images).mean)
    assert res.score == M.mig(means, sp.factors).score
    assert M.model_mig(model, sp.images, sp.factors, active_only=True, threshold=1e-4).score == \
        M.mig(means, sp.factors, active_only=True, threshold=1e-4).score


# --------------------------------------------------------------------------- neighbours
def blobs(n_per=60, classes=3, dims=10, spread=0.3, seed=0):
    """Well separated Gaussian clusters: x [n, dims], labels [n]."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=5.0, size=(classes, dims))
    labels = np.repeat(np.arange(classes), n_per)
    return centres[labels] + spread * rng.normal(size=(len(labels), dims)), labels


def test_knn_accuracy_separates_structure_from_noise():
    x, y = blobs()
    assert M.knn_accuracy(x, y) == pytest.approx(1.0)
    shuffled = np.random.default_rng(1).permutation(y)  # labels unrelated to position
    assert M.knn_accuracy(x, shuffled) < 0.6


def test_knn_accuracy_matches_a_hand_count():
    # two tight groups of 50 far apart, each with one mislabelled point: with k=3 the
    # other two neighbours outvote it, so exactly those 2 of 100 points are misclassified
    # (whichever folds they fall in: 2 errors over two folds of 50 average to 0.98).
    x = np.concatenate([np.zeros((50, 2)), np.full((50, 2), 100.0)]) + \
        np.random.default_rng(0).normal(scale=0.01, size=(100, 2))
    y = np.array([0] * 49 + [1] + [1] * 49 + [0])
    assert M.knn_accuracy(x, y, k=3, folds=2) == pytest.approx(98 / 100)


def test_trustworthiness_is_one_for_an_isometry_and_low_for_noise():
    x, _ = blobs(dims=2)
    rot = np.array([[0.6, -0.8], [0.8, 0.6]])
    assert M.trustworthiness(x, x @ rot + 3.0) == pytest.approx(1.0)
    random_map = np.random.default_rng(0).normal(size=(len(x), 2))
    assert M.trustworthiness(x, random_map) < 0.8


@pytest.mark.parametrize("k", [1, 5, 10, 30])
def test_trustworthiness_equals_scikit_learns(k):
    from sklearn.manifold import trustworthiness as sklearn_trustworthiness

    rng = np.random.default_rng(k)
    x = rng.normal(size=(700, 12))
    for coords in (x[:, :2] + 0.3 * rng.normal(size=(700, 2)), rng.normal(size=(700, 2))):
        ours = M.trustworthiness(x, coords, k=k, block=64)  # several blocks, the last one short
        assert ours == pytest.approx(sklearn_trustworthiness(x, coords, n_neighbors=k), abs=1e-12)
        # translating the data changes no distance, so nothing (the centring keeps the precision)
        assert M.trustworthiness(x + 1e8, coords, k=k) == pytest.approx(ours, abs=1e-12)
    with pytest.raises(ValueError, match="same n"):
        M.trustworthiness(x, x[:10, :2])
    with pytest.raises(ValueError, match="below n/2"):
        M.trustworthiness(x[:10], x[:10, :2], k=5)


# --------------------------------------------------------------------------- active units
def test_active_units_counts_latents_whose_mean_varies():
    cfg = ModelConfig(latent_dim=4, hidden=())  # the encoder is one linear map: mean = x W + b
    model = build_model(cfg, 0)
    arrays = params_to_arrays(model)
    kernel = np.array(arrays["encoder/head/linear/kernel"])  # a writable copy
    assert kernel.shape == (784, 8)  # 4 means, then 4 log-variances
    kernel[:, 2:4] = 0.0             # latents 2 and 3: a constant mean for every image
    kernel[:, 1] *= 1e-3             # latent 1: varies, but far below the threshold
    model = model_from_arrays(cfg, {**arrays, "encoder/head/linear/kernel": kernel})
    x = (np.random.default_rng(0).random((500, 784)) < 0.3).astype(np.float32)
    count, variances = M.active_units(model, x)
    assert variances.shape == (4,) and count == 1
    assert variances[0] > 0.01 > variances[1] and variances[2] == variances[3] == 0.0
    assert M.active_units(model, x, threshold=0.0)[0] == 2


# ----------------------------------------------------------------------------- DigitJudge
def _two_pattern_data(n=200, seed=0):
    """Images [n, 16] of two classes: ink on the left half (0) or the right half (1)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.uniform(0.0, 0.2, (n, 16))
    x[y == 0, :8] += 0.7
    x[y == 1, 8:] += 0.7
    return x.astype(np.float32), y


def test_digit_judge_distances_and_confidence():
    x, y = _two_pattern_data()
    judge = M.DigitJudge(x, x, y, n_components=None)
    np.testing.assert_allclose(judge.nearest_distance(x[:5]), 0.0, atol=1e-3)
    shifted = np.clip(x[:5] + 0.1, 0, 1)
    assert np.all(judge.nearest_distance(shifted) > 0.01)
    assert judge.accuracy(x, y) == 1.0
    conf, pred = judge.classify(x[:20])
    np.testing.assert_array_equal(pred, y[:20])
    assert conf.min() > 0.9
    # a blend of the two classes is far less certain than either pattern
    blend = 0.5 * (x[y == 0][:1] + x[y == 1][:1])
    assert judge.classify(blend)[0][0] < conf.min()


def test_digit_judge_score_ratio_and_summary():
    x, y = _two_pattern_data()
    judge = M.DigitJudge(x, x, y, n_components=4)
    probe = np.clip(x[:10] + 0.05, 0, 1)
    s = judge.score(probe, reference=0.05)
    np.testing.assert_allclose(s.ratio, s.nearest / 0.05)
    summ = s.summary(far=1.5, sure=0.9)
    assert summ["median_ratio"] == pytest.approx(float(np.median(s.ratio)))
    assert 0.0 <= summ["frac_far"] <= 1.0 and 0.0 <= summ["frac_unsure"] <= 1.0
    with pytest.raises(ValueError):
        judge.score(probe, reference=0.0)
    with pytest.raises(ValueError):
        judge.nearest_distance(np.zeros((2, 15)))
