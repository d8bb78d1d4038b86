import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course import nb06_embedding as embedding  # noqa: E402
from vae_core.metrics import active_units, knn_accuracy, trustworthiness  # noqa: E402
from vae_core.plots import format_table  # noqa: E402

FAST = dict(early_exaggeration_iter=100, n_iter=150)  # 250 iterations: scikit-learn's minimum


def blobs(n_per=60, classes=3, dims=10, spread=0.3, seed=0):
    """Well separated Gaussian clusters: x [n, dims], labels [n]."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=5.0, size=(classes, dims))
    labels = np.repeat(np.arange(classes), n_per)
    return centres[labels] + spread * rng.normal(size=(len(labels), dims)), labels


@pytest.mark.parametrize("method", embedding.TSNE_METHODS)
def test_tsne_keeps_clusters_apart(method):
    x, y = blobs()
    m = embedding.tsne(x, method=method, perplexity=10, **FAST)
    assert m.coords.shape == (len(x), 2) and np.all(np.isfinite(m.coords))
    assert m.method == method and m.perplexity == 10
    assert m.seconds > 0 and m.cpu_seconds > 0
    assert knn_accuracy(m.coords, y) > 0.95
    # within a blob the points are isotropic 10-d noise, so no 2-d map keeps their
    # neighbourhoods exactly; a random map scores far lower
    random_map = np.random.default_rng(0).normal(size=(len(x), 2))
    assert trustworthiness(x, m.coords) > max(0.8, trustworthiness(x, random_map) + 0.2)


def test_tsne_is_reproducible_with_a_seed():
    # the Barnes-Hut gradient: on a few hundred points openTSNE's FFT grid costs far more per
    # iteration, and test_tsne_keeps_clusters_apart already runs the FFT method (CI time)
    x, _ = blobs(n_per=40)
    a = embedding.tsne(x, method="opentsne-bh", perplexity=10, seed=3, **FAST).coords
    b = embedding.tsne(x, method="opentsne-bh", perplexity=10, seed=3, **FAST).coords
    np.testing.assert_allclose(a, b)


@pytest.mark.parametrize("method", ["opentsne-bh", "sklearn-bh"])  # openTSNE's seeding, either gradient
def test_random_initialization_depends_on_the_seed(method):
    x, y = blobs(n_per=40)
    runs = {(init, seed): embedding.tsne(x, method=method, perplexity=10, seed=seed, initialization=init,
                                         **FAST).coords
            for init in ("pca", "random") for seed in (0, 1)}
    assert np.abs(runs["random", 0] - runs["random", 1]).max() > 1.0
    assert all(knn_accuracy(c, y) > 0.95 for c in runs.values())


def test_perplexity_sweep_reuses_a_map_it_already_has():
    x, y = blobs(n_per=40)
    done = embedding.tsne(x, method="opentsne-bh", perplexity=10, **FAST)
    sweep = embedding.perplexity_sweep(x, (5, 10), reuse=[done], method="opentsne-bh", **FAST)
    assert list(sweep) == [5, 10] and sweep[10] is done
    assert sweep[5].perplexity == 5 and knn_accuracy(sweep[5].coords, y) > 0.95
    # a map made with another method is made again; one of other points is refused
    other = embedding.perplexity_sweep(x, (10,), reuse=[done], method="sklearn-bh", **FAST)
    assert other[10] is not done and other[10].method == "sklearn-bh"
    with pytest.raises(ValueError, match="points"):
        embedding.perplexity_sweep(x[:50], (5,), reuse=[done], **FAST)


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


def test_summarize_and_the_markdown_table():
    x, y = blobs()
    m = embedding.Map2D(x[:, :2].copy(), "given", 1.25, 2.5)
    row = embedding.summarize("blobs", x, m, y, kl=12.345, active=7)
    assert list(row) == ["model", "dims", "knn_latent", "knn_map", "trust", "tsne_s", "cpu_s", "kl", "active"]
    assert row["dims"] == 10 and row["knn_latent"] == pytest.approx(1.0) and row["tsne_s"] == 1.25
    assert row["cpu_s"] == 2.5
    assert row["knn_map"] == knn_accuracy(x[:, :2], y) and row["trust"] == trustworthiness(x, x[:, :2])
    text = format_table([row, dict(row, model="other", kl=None)], embedding.table_columns(row), markdown=True)
    lines = text.splitlines()
    assert len(lines) == 4 and lines[0].startswith("| model | dims | 10-NN acc (latent)")
    assert lines[1] == "|" + "|".join(["---"] * 9) + "|"
    assert lines[2].startswith("| blobs | 10 | 1.000 |")
    assert "| 1.2 | 2.5 |" in lines[2] and "| 12.3 |" in lines[2] and lines[2].endswith("| 7 |")
    assert "| - |" in lines[3]
    sigma = format_table([{"sigma": 0.000108, "rms": 0.0}], embedding.table_columns(["sigma", "rms"]), markdown=True)
    assert sigma.splitlines()[0] == "| median σ of q(z|x) | code RMS |"
    assert sigma.splitlines()[2] == "| 1.1e-04 | 0.000 |"
    assert embedding.table_columns(["other"]) == [("other", "other", "")]


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


# --------------------------------------------------------------------------- exercises
@pytest.fixture(scope="module")
def standins():
    """The notebook's objects, small: 200 MNIST test images, PCA codes and a tiny untrained
    VAE whose last two latents are switched off (their mean does not depend on the image)."""
    from vae_core.data import load_mnist
    from vae_core.evaluate import encode
    from vae_core.models import ModelConfig, build_model

    mnist = load_mnist()
    x_test, y_test = mnist.x_test[:200], np.asarray(mnist.y_test[:200])
    model = build_model(ModelConfig(latent_dim=6, hidden=(32,)), 0)
    kernel = model.encoder.head.linear.kernel
    kernel[...] = kernel[...].at[:, :4].multiply(4.0).at[:, 4:6].set(0.0)  # 4 clearly active, 2 off
    codes = {"autoencoder": embedding.pca(mnist.x_train[:1000], x_test, 8),
             "VAE β=1": embedding.pca(mnist.x_train[:1000], x_test, 4),
             "β-VAE β=4": np.asarray(encode(model, x_test).mean)}
    return dict(x_test=x_test, y_test=y_test, codes=codes, model=model)


def test_check_knn_by_k(standins):
    codes, y = standins["codes"], standins["y_test"]
    right = {name: {k: knn_accuracy(codes[name], y, k=k) for k in embedding.EX1_KS} for name in embedding.EX1_MODELS}
    gaps = np.subtract(*[[right[n][k] for k in embedding.EX1_KS] for n in embedding.EX1_MODELS])
    flips = bool(gaps.max() > 0 > gaps.min())
    verdict = embedding.check_knn_by_k(right, flips, codes, y)
    assert verdict.passed and str(verdict).startswith("Correct.")
    rounded = {n: [round(a, 3) for a in by_k.values()] for n, by_k in right.items()}  # a list in k order
    assert embedding.check_knn_by_k(rounded, flips, codes, y).passed
    all_k10 = {n: {k: by_k[10] for k in by_k} for n, by_k in right.items()}
    wrong = [embedding.check_knn_by_k(None, None, codes, y), embedding.check_knn_by_k(right, None, codes, y),
             embedding.check_knn_by_k(all_k10, flips, codes, y), embedding.check_knn_by_k(right, not flips, codes, y),
             embedding.check_knn_by_k(right, "no", codes, y),
             embedding.check_knn_by_k({"VAE β=1": right["VAE β=1"]}, flips, codes, y),
             embedding.check_knn_by_k({n: {1: 0.5} for n in right}, flips, codes, y)]
    for verdict in wrong:
        assert not verdict.passed and verdict.hint and str(verdict).startswith("Not yet.")


def test_check_random_starts(standins):
    y = standins["y_test"]
    rng = np.random.default_rng(0)
    runs = {s: embedding.Map2D(rng.normal(size=(len(y), 2)) + 3 * y[:, None], "given", 1.0, 1.0) for s in (0, 1)}
    acc = {s: knn_accuracy(m.coords, y) for s, m in runs.items()}
    verdict = embedding.check_random_starts(runs, acc, "b", y)
    assert verdict.passed and str(verdict).startswith("Correct.")
    assert embedding.check_random_starts({s: m.coords for s, m in runs.items()}, acc, "B", y).passed
    twice = {0: runs[0], 1: runs[0]}
    wrong = [embedding.check_random_starts(None, None, None, y),
             embedding.check_random_starts(twice, {0: acc[0], 1: acc[0]}, "b", y),
             embedding.check_random_starts({"seed 0": runs[0], "seed 1": runs[1]}, acc, "b", y),
             embedding.check_random_starts({0: runs[0], 1: runs[1].coords[:10]}, acc, "b", y),
             embedding.check_random_starts(runs, None, "b", y),
             embedding.check_random_starts(runs, {0: acc[1], 1: acc[0] - 0.01}, "b", y),
             embedding.check_random_starts(runs, acc, None, y),
             embedding.check_random_starts(runs, acc, "a", y),
             embedding.check_random_starts(runs, acc, "e", y)]
    for verdict in wrong:
        assert not verdict.passed and verdict.hint and str(verdict).startswith("Not yet.")


def test_check_active_latents(standins):
    codes, model, x, y = standins["codes"]["β-VAE β=4"], standins["model"], standins["x_test"], standins["y_test"]
    n_active, variances = active_units(model, x)
    assert n_active == 4 and np.all(variances[4:] == 0)
    kept = codes[:, :4]
    acc = knn_accuracy(kept, y)
    verdict = embedding.check_active_latents(kept, acc, "b", model, x, y)
    assert verdict.passed and "4 active latents" in str(verdict)
    assert embedding.check_active_latents(kept, round(acc, 3), "b", model, x, y).passed
    wrong = [embedding.check_active_latents(None, None, None, model, x, y),
             embedding.check_active_latents(codes, knn_accuracy(codes, y), "b", model, x, y),  # all columns
             embedding.check_active_latents(codes[:, 2:6], acc, "b", model, x, y),
             embedding.check_active_latents(kept, None, "b", model, x, y),
             embedding.check_active_latents(kept, acc + 0.02, "b", model, x, y),
             embedding.check_active_latents(kept, acc, "a", model, x, y),
             embedding.check_active_latents(kept, acc, None, model, x, y)]
    for verdict in wrong:
        assert not verdict.passed and verdict.hint and str(verdict).startswith("Not yet.")


def test_exercises_check_themselves(standins):
    from types import SimpleNamespace

    from exercise_tools import check_exercises

    def namespace():
        return dict(np=np, plt=plt, nb06=embedding, knn_accuracy=knn_accuracy, active_units=active_units,
                    codes=dict(standins["codes"]), x_test=standins["x_test"], y_test=standins["y_test"],
                    results={"β-VAE β=4": SimpleNamespace(model=standins["model"])},
                    # Barnes-Hut is the faster method on 200 points; short runs
                    tsne_kw=dict(method="opentsne-bh", early_exaggeration_iter=50, n_iter=100))

    assert check_exercises("06_tsne_latent_clusters.ipynb", namespace) == 3
    plt.close("all")
