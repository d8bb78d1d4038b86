import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from vae_core import embedding  # noqa: E402

FAST = dict(early_exaggeration_iter=100, n_iter=150)  # 250 iterations: scikit-learn's minimum


def blobs(n_per=60, classes=3, dims=10, spread=0.3, seed=0):
    """Well separated Gaussian clusters: x [n, dims], labels [n]."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=5.0, size=(classes, dims))
    labels = np.repeat(np.arange(classes), n_per)
    return centres[labels] + spread * rng.normal(size=(len(labels), dims)), labels


def test_knn_accuracy_separates_structure_from_noise():
    x, y = blobs()
    assert embedding.knn_accuracy(x, y) == pytest.approx(1.0)
    shuffled = np.random.default_rng(1).permutation(y)  # labels unrelated to position
    assert embedding.knn_accuracy(x, shuffled) < 0.6


def test_knn_accuracy_matches_a_hand_count():
    # two tight groups of 50 far apart, each with one mislabelled point: with k=3 the
    # other two neighbours outvote it, so exactly those 2 of 100 points are misclassified
    # (whichever folds they fall in: 2 errors over two folds of 50 average to 0.98).
    x = np.concatenate([np.zeros((50, 2)), np.full((50, 2), 100.0)]) + \
        np.random.default_rng(0).normal(scale=0.01, size=(100, 2))
    y = np.array([0] * 49 + [1] + [1] * 49 + [0])
    assert embedding.knn_accuracy(x, y, k=3, folds=2) == pytest.approx(98 / 100)


def test_trustworthiness_is_one_for_an_isometry_and_low_for_noise():
    x, _ = blobs(dims=2)
    rot = np.array([[0.6, -0.8], [0.8, 0.6]])
    assert embedding.trustworthiness(x, x @ rot + 3.0) == pytest.approx(1.0)
    random_map = np.random.default_rng(0).normal(size=(len(x), 2))
    assert embedding.trustworthiness(x, random_map) < 0.8


@pytest.mark.parametrize("method", embedding.TSNE_METHODS)
def test_tsne_keeps_clusters_apart(method):
    x, y = blobs()
    m = embedding.tsne(x, method=method, perplexity=10, **FAST)
    assert m.coords.shape == (len(x), 2) and np.all(np.isfinite(m.coords))
    assert m.method == method and m.perplexity == 10
    assert m.seconds > 0 and m.cpu_seconds > 0
    assert embedding.knn_accuracy(m.coords, y) > 0.95
    # within a blob the points are isotropic 10-d noise, so no 2-d map keeps their
    # neighbourhoods exactly; a random map scores far lower
    random_map = np.random.default_rng(0).normal(size=(len(x), 2))
    assert embedding.trustworthiness(x, m.coords) > max(0.8, embedding.trustworthiness(x, random_map) + 0.2)


def test_tsne_is_reproducible_with_a_seed():
    x, _ = blobs(n_per=40)
    a = embedding.tsne(x, perplexity=10, seed=3, **FAST).coords
    b = embedding.tsne(x, perplexity=10, seed=3, **FAST).coords
    np.testing.assert_allclose(a, b)


@pytest.mark.parametrize("method", ["opentsne-fft", "sklearn-bh"])
def test_random_initialization_depends_on_the_seed(method):
    x, y = blobs(n_per=40)
    runs = {(init, seed): embedding.tsne(x, method=method, perplexity=10, seed=seed, initialization=init,
                                         **FAST).coords
            for init in ("pca", "random") for seed in (0, 1)}
    assert np.abs(runs["random", 0] - runs["random", 1]).max() > 1.0
    assert all(embedding.knn_accuracy(c, y) > 0.95 for c in runs.values())


def test_tsne_rejects_bad_arguments():
    x, _ = blobs(n_per=10)
    with pytest.raises(ValueError, match="method"):
        embedding.tsne(x, method="umap")
    with pytest.raises(ValueError, match="perplexity"):
        embedding.tsne(x, perplexity=10)  # 3 * 10 >= 30 points
    with pytest.raises(ValueError, match="initialization"):
        embedding.tsne(x, perplexity=2, initialization="spectral")
    with pytest.raises(ValueError, match="2-d"):
        embedding.tsne(x[:, :, None])


def test_pca_projects_test_points_with_the_training_fit():
    rng = np.random.default_rng(0)
    # variance concentrated in the first two axes
    x_fit = rng.normal(size=(500, 6)) * np.array([10, 5, 0.1, 0.1, 0.1, 0.1])
    z = embedding.pca(x_fit, x_fit[:50], 2)
    assert z.shape == (50, 2)
    assert np.var(z[:, 0]) > np.var(z[:, 1]) > 1.0
    # two components capture almost all of the variance
    assert np.var(z, axis=0).sum() == pytest.approx(np.var(x_fit[:50], axis=0).sum(), rel=0.05)


def test_summarize_and_format_table():
    x, y = blobs()
    m = embedding.Map2D(x[:, :2].copy(), "given", 1.25, 2.5)
    row = embedding.summarize("blobs", x, m, y, kl=12.345, active=7)
    assert list(row) == ["model", "dims", "knn_latent", "knn_map", "trust", "tsne_s", "cpu_s", "kl", "active"]
    assert row["dims"] == 10 and row["knn_latent"] == pytest.approx(1.0) and row["tsne_s"] == 1.25
    assert row["cpu_s"] == 2.5
    text = embedding.format_table([row, dict(row, model="other", kl=None)])
    lines = text.splitlines()
    assert len(lines) == 4 and lines[0].startswith("| model | dims | 10-NN acc (latent)")
    assert "| 1.2 | 2.5 |" in lines[2] and "| 12.3 |" in lines[2] and "| 1.000 |" in lines[2]
    assert "| - |" in lines[3]
    assert "| 1.1e-04 |" in embedding.format_table([{"sigma": 0.000108}])
    with pytest.raises(ValueError):
        embedding.format_table([])


def test_plots_label_every_panel():
    x, y = blobs(dims=2)
    fig = embedding.plot_maps({"a": x, "b": -x, "c": 2 * x, "d": x}, y, ncols=3)
    used = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in used] == ["a", "b", "c", "d"]
    assert all(ax.get_xlabel() == "t-SNE 1" and ax.get_ylabel() == "t-SNE 2" for ax in used)
    assert len(fig.axes) == 6 and len(fig.legends) == 1
    plt.close(fig)
    sweep = {5: embedding.Map2D(x, "m", 1.0, 1.0, 5), 20: embedding.Map2D(x, "m", 2.0, 2.0, 20)}
    fig = embedding.plot_perplexity(sweep, y)
    assert [ax.get_title() for ax in fig.axes] == ["perplexity 5  (1 s)", "perplexity 20  (2 s)"]
    plt.close(fig)


def test_code_scale_reads_prior_like_codes_and_noise():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(20_000, 8))  # codes distributed like the N(0, I) prior
    stats = embedding.code_scale(z, np.full_like(z, np.log(0.25)))  # sigma = 0.5 everywhere
    assert stats["rms"] == pytest.approx(1.0, abs=0.01) and stats["sigma"] == pytest.approx(0.5)
    assert embedding.code_scale(3 * z)["rms"] == pytest.approx(3.0, abs=0.03)
    assert embedding.code_scale(z)["sigma"] is None
