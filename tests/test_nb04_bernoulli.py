"""Notebook 04's helpers: KL ordering, inverse-CDF grid, prior draws, errors, caches."""
from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from scipy.stats import norm

from course import nb04_bernoulli
from course.nb04_bernoulli import (ModelTracker, denoising_scores, elbo_estimate, fit_posterior, log_likelihood_cached,
                                   gaussian_decoder_report, log_weights, mean_abs_error, mean_and_se,
                                   normal_grid, order_by_kl, prior_samples)
from vae_core.data import mask_patches
from vae_core.checkpoint import save_checkpoint
from vae_core.evaluate import log_marginal_likelihood, sample_prior
from vae_core.models import ModelConfig, build_model, model_from_arrays, params_to_arrays
from vae_core.train import TrainConfig


@pytest.fixture(scope="module")
def small():
    return build_model(ModelConfig(latent_dim=3, hidden=(16,)), 0)


@pytest.fixture(scope="module")
def binary_images():
    rng = np.random.default_rng(0)
    return (rng.random((6, 784)) < 0.3).astype(np.float32)


def test_order_by_kl_largest_first_and_stable():
    assert order_by_kl([0.1, 3.0, 0.0, 3.0, 1.5]).tolist() == [1, 3, 4, 0, 2]
    with pytest.raises(ValueError, match="1-d"):
        order_by_kl(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        order_by_kl([1.0, np.nan])


def test_normal_grid_uses_inverse_cdf_and_plot_orientation():
    codes, values = normal_grid(5, 0.05, 0.95)
    assert codes.shape == (25, 2) and values.shape == (5,)
    np.testing.assert_allclose(values, norm.ppf(np.linspace(0.05, 0.95, 5)), rtol=1e-6)
    np.testing.assert_allclose(values[2], 0.0, atol=1e-6)  # median in the middle
    np.testing.assert_allclose(values[0], -1.6448536, rtol=1e-5)
    # top-left: smallest z1, largest z2; bottom-right: largest z1, smallest z2
    np.testing.assert_allclose(codes[0], [values[0], values[-1]], rtol=1e-6)
    np.testing.assert_allclose(codes[-1], [values[-1], values[0]], rtol=1e-6)
    # along a row only z1 changes
    assert np.all(codes[:5, 1] == codes[0, 1]) and np.all(np.diff(codes[:5, 0]) > 0)
    with pytest.raises(ValueError):
        normal_grid(1)
    with pytest.raises(ValueError):
        normal_grid(4, 0.0, 0.9)


def test_prior_samples_are_decoded_means_and_binary_draws(small):
    means, draws = prior_samples(small, jax.random.PRNGKey(1), 7)
    assert means.shape == draws.shape == (7, 784)
    assert np.all((means > 0) & (means < 1))
    assert set(np.unique(draws)) <= {0.0, 1.0}
    again, _ = prior_samples(small, jax.random.PRNGKey(1), 7)
    np.testing.assert_array_equal(means, again)
    other, _ = prior_samples(small, jax.random.PRNGKey(2), 7)
    assert not np.allclose(means, other)
    # the means are the engine's sample_prior, drawn with the first half of the key
    _, engine = sample_prior(small, jax.random.split(jax.random.PRNGKey(1))[0], 7)
    np.testing.assert_allclose(means, engine, rtol=1e-6)
    # the draws follow the means: pixels with a higher probability are on more often
    many, many_draws = prior_samples(small, jax.random.PRNGKey(3), 400)
    high, low = many > 0.7, many < 0.3
    assert many_draws[high].mean() > 0.6 > 0.4 > many_draws[low].mean()


def test_mean_abs_error():
    a = np.zeros((2, 4))
    b = np.array([[1, 0, 0, 0], [1, 1, 1, 1]])
    np.testing.assert_allclose(mean_abs_error(a, b), [0.25, 1.0])
    with pytest.raises(ValueError, match="shapes"):
        mean_abs_error(a, b[:, :3])
    mask = np.array([[1, 1, 0, 0], [0, 0, 0, 0]])
    got = mean_abs_error(a, b, mask)
    assert got[0] == 0.5 and np.isnan(got[1])
    with pytest.raises(ValueError, match="mask"):
        mean_abs_error(a, b, mask[:, :3])


def test_log_likelihood_cached_matches_and_reuses(small, binary_images, tmp_path, monkeypatch):
    key = jax.random.PRNGKey(5)
    ll = log_likelihood_cached(small, binary_images, key, k=20, k_chunk=10, directory=tmp_path)
    direct = np.asarray(log_marginal_likelihood(small, binary_images, key, k=20, k_chunk=10))
    np.testing.assert_allclose(ll, direct, rtol=1e-6)
    files = list((tmp_path / "loglik").glob("*.npy"))
    assert len(files) == 1 and not list((tmp_path / "loglik").glob("*.tmp"))
    # a second call reads the file instead of computing
    monkeypatch.setattr(nb04_bernoulli, "log_marginal_likelihood", lambda *a, **k: pytest.fail("recomputed"))
    np.testing.assert_array_equal(log_likelihood_cached(small, binary_images, key, k=20, k_chunk=10,
                                                        directory=tmp_path), ll)
    # the same parameters in a rebuilt model hit the same entry
    twin = model_from_arrays(small.cfg, params_to_arrays(small))
    np.testing.assert_array_equal(log_likelihood_cached(twin, binary_images, key, k=20, k_chunk=10,
                                                        directory=tmp_path), ll)
    monkeypatch.undo()
    # a different k or other parameters make a new entry
    log_likelihood_cached(small, binary_images, key, k=10, directory=tmp_path)
    shifted = model_from_arrays(small.cfg, {k: v + 0.01 for k, v in params_to_arrays(small).items()})
    log_likelihood_cached(shifted, binary_images, key, k=10, directory=tmp_path)
    assert len(list((tmp_path / "loglik").glob("*.npy"))) == 3


def test_model_tracker_counts_and_logs_cold_then_cached(tmp_path, monkeypatch):
    monkeypatch.delenv("VAE_SMOKE", raising=False)
    rng = np.random.default_rng(0)
    x = rng.random((64, 784), dtype=np.float32)
    mcfg, tcfg = ModelConfig(latent_dim=2, hidden=(8,)), TrainConfig(epochs=1, batch_size=32)
    log = tmp_path / "times.json"
    t1 = ModelTracker("nb", directory=tmp_path / "models", log_path=log)
    r1 = t1.get("tiny", mcfg, tcfg, x, progress=False)
    s1 = t1.finish(now=t1.start + 12.0)
    assert (s1["kind"], s1["trained"], s1["loaded"]) == ("cold", 1, 0)
    assert s1["log"] == {"cold": 12.0}
    t2 = ModelTracker("nb", directory=tmp_path / "models", log_path=log)
    r2 = t2.get("tiny", mcfg, tcfg, x, progress=False)
    s2 = t2.finish(now=t2.start + 3.0)
    assert (s2["kind"], s2["trained"], s2["loaded"]) == ("cached", 0, 1)
    assert s2["log"] == {"cold": 12.0, "cached": 3.0}
    assert json.loads(log.read_text()) == {"nb:full": {"cold": 12.0, "cached": 3.0}}
    assert (r1.source, r2.source) == ("trained", "cache")
    np.testing.assert_array_equal(params_to_arrays(r1.model)["decoder/output/bias"],
                                  params_to_arrays(r2.model)["decoder/output/bias"])
    # a run that both trains and loads is 'partial' and not logged
    t3 = ModelTracker("nb", directory=tmp_path / "models", log_path=log)
    t3.get("tiny", mcfg, tcfg, x, progress=False)
    t3.get("tiny2", mcfg, TrainConfig(epochs=1, batch_size=16), x, progress=False)
    s3 = t3.finish(now=t3.start + 99.0)
    assert s3["kind"] == "partial" and s3["log"] == {"cold": 12.0, "cached": 3.0}


def test_model_tracker_counts_a_model_cached_under_another_name_as_loaded(tmp_path, monkeypatch):
    # train_or_load finds a checkpoint with the same configs under another name: the
    # tracker must follow result.source, not whether its own file name existed
    monkeypatch.delenv("VAE_SMOKE", raising=False)
    x = np.random.default_rng(1).random((64, 784), dtype=np.float32)
    mcfg, tcfg = ModelConfig(latent_dim=2, hidden=(8,)), TrainConfig(epochs=1, batch_size=32)
    first = ModelTracker("nb", directory=tmp_path / "models", log_path=tmp_path / "t.json")
    first.get("original_name", mcfg, tcfg, x, progress=False)
    second = ModelTracker("nb", directory=tmp_path / "models", log_path=tmp_path / "t.json")
    r = second.get("another_name", mcfg, tcfg, x, progress=False)
    assert r.source == "cache"
    assert (second.trained, second.loaded, second.kind()) == ([], ["another_name"], "cached")


def test_model_tracker_trusts_the_result_source(tmp_path, monkeypatch):
    # a cache file that exists but is damaged is retrained (on_corrupt='retrain'): trained, not loaded
    monkeypatch.delenv("VAE_SMOKE", raising=False)
    x = np.random.default_rng(2).random((64, 784), dtype=np.float32)
    mcfg, tcfg = ModelConfig(latent_dim=2, hidden=(8,)), TrainConfig(epochs=1, batch_size=32)
    tracker = ModelTracker("nb", directory=tmp_path / "models", log_path=tmp_path / "t.json")
    result = tracker.get("m", mcfg, tcfg, x, progress=False)
    [path] = list((tmp_path / "models").glob("m-*.msgpack"))
    path.write_bytes(b"damaged")
    again = ModelTracker("nb", directory=tmp_path / "models", log_path=tmp_path / "t.json")
    retrained = again.get("m", mcfg, tcfg, x, progress=False, on_corrupt="retrain")
    assert retrained.source == "trained" and again.trained == ["m"] and again.loaded == []
    save_checkpoint(path, result)  # restored: the next tracker loads it
    third = ModelTracker("nb", directory=tmp_path / "models", log_path=tmp_path / "t.json")
    third.get("m", mcfg, tcfg, x, progress=False)
    assert third.loaded == ["m"]


def test_model_tracker_files_shipped_models_apart(tmp_path, monkeypatch):
    from vae_core import shipped
    from vae_core.checkpoint import ship_model
    monkeypatch.delenv("VAE_SMOKE", raising=False)
    for env in (shipped.RETRAIN_ENV, shipped.SHIP_ENV):
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path / "shipped")
    x = np.random.default_rng(3).random((64, 784), dtype=np.float32)
    mcfg, tcfg = ModelConfig(latent_dim=2, hidden=(8,)), TrainConfig(epochs=1, batch_size=32)
    first = ModelTracker("nb", directory=tmp_path / "models", log_path=tmp_path / "t.json")
    ship_model("m", first.get("m", mcfg, tcfg, x, progress=False), x, x[:16],
               {"notebook": "04", "device": "CPU", "command": "-"})
    second = ModelTracker("nb", directory=tmp_path / "models", log_path=tmp_path / "t.json")
    second.get("m", mcfg, tcfg, x, progress=False)
    summary = second.finish(now=second.start + 2.0)
    assert (second.shipped, second.loaded, summary["kind"], summary["shipped"]) == (["m"], [], "shipped", 1)
    assert summary["log"] == {"shipped": 2.0}


# ----------------------------------------------------------------------------- exercises
NOTEBOOK = "04_bernoulli_vae_mnist.ipynb"


def hand_vae_class():
    """The notebook's hand-written HandVAE, executed from its own cell."""
    import nbformat
    from flax import nnx

    from exercise_tools import ROOT

    nb = nbformat.read(ROOT / "notebooks" / NOTEBOOK, as_version=4)
    source = next(c.source for c in nb.cells if c.cell_type == "code" and c.source.startswith("class HandVAE"))
    namespace = {"nnx": nnx, "jax": jax, "jnp": jax.numpy, "np": np}
    exec(source.split("\n\n\nhand = ")[0], namespace)
    return namespace["HandVAE"]


@pytest.fixture(scope="module")
def exercise_context(images):
    """Small stand-ins for the names notebook 04 defines before its exercises."""
    from flax import nnx

    from course.nb04_bernoulli import (check_elbo, check_iwae_curve, check_masked_errors, check_overfitting_gaps,
                                       check_subset_average)
    from vae_core.data import binarize
    from vae_core.evaluate import reconstruct
    from vae_core.train import train

    class Tracker:
        def get(self, name, model_cfg, train_cfg, x_train, x_test=None, **kwargs):
            return train(model_cfg, train_cfg, x_train, x_test, progress=False)

    model_cfg, train_cfg = ModelConfig(latent_dim=4, hidden=(32,)), TrainConfig(epochs=1, batch_size=64, seed=0)
    x_train, x_test = images[:256], images[448:]
    x_test_bin = np.asarray(binarize(jax.random.PRNGKey(0), images[256:320]))  # x_test_bin[:200] is 64 images
    main = train(model_cfg, train_cfg, x_train, x_test, progress=False)
    masked, mask = mask_patches(jax.random.PRNGKey(22), x_test_bin[:50], 10)
    hand = hand_vae_class()(latent_dim=4, hidden=32, rngs=nnx.Rngs(0))
    names = dict(locals())
    names.pop("images")
    return {**names, "jax": jax, "jnp": jax.numpy, "np": np, "TrainConfig": TrainConfig,
            "log_marginal_likelihood": log_marginal_likelihood, "mean_abs_error": mean_abs_error,
            "mask_patches": mask_patches,
            "clean_grey": images[256:306], "tracker": Tracker()}


def test_exercises_check_themselves(exercise_context):
    from exercise_tools import check_exercises

    assert check_exercises(NOTEBOOK, lambda: dict(exercise_context), min_count=5) == 5


def test_check_elbo_judges_blank_wrong_and_right(exercise_context):
    ctx = exercise_context
    hand, x, key = ctx["hand"], ctx["x_test_bin"][:8], jax.random.PRNGKey(1)
    assert not nb04_bernoulli.check_elbo(None, hand, x, key)
    assert not nb04_bernoulli.check_elbo(lambda m, x, k: hand.elbo(x, k) + 1.0, hand, x, key)  # off by a nat
    failed = nb04_bernoulli.check_elbo(lambda m, x, k: 1 / 0, hand, x, key)
    assert not failed and "ZeroDivisionError" in str(failed)
    assert nb04_bernoulli.check_elbo(lambda m, x, k: m.elbo(x, k), hand, x, key)


def test_subset_average_and_its_check():
    log_w = np.log(np.array([1.0, 2.0, 3.0]))
    assert np.isclose(nb04_bernoulli.subset_average(log_w, 3), np.log(2.0))
    assert np.isclose(nb04_bernoulli.subset_average(log_w, 1), np.mean(log_w))
    assert nb04_bernoulli.subset_average(log_w, 2) <= np.log(2.0)  # Jensen
    assert not nb04_bernoulli.check_subset_average(...)
    assert not nb04_bernoulli.check_subset_average(lambda lw, m: float(np.mean(lw)))  # the m = 1 answer for every m
    assert nb04_bernoulli.check_subset_average(nb04_bernoulli.subset_average)


def test_check_iwae_curve(exercise_context):
    model, x = exercise_context["main"].model, exercise_context["x_test_bin"][:40]
    right = {k: float(log_marginal_likelihood(model, x, jax.random.PRNGKey(k), k=k).mean()) for k in (1, 10, 100, 1000)}
    assert nb04_bernoulli.check_iwae_curve(right, model, x)
    assert not nb04_bernoulli.check_iwae_curve({k: None for k in right}, model, x)
    assert not nb04_bernoulli.check_iwae_curve({1: 0.0}, model, x)
    assert not nb04_bernoulli.check_iwae_curve({**right, 1000: right[1000] - 5.0}, model, x)


def test_check_overfitting_gaps(exercise_context):
    main = exercise_context["main"]
    gap = nb04_bernoulli.train_test_gap(main)
    assert np.isclose(gap, -main.history["train_loss"][-1] - main.history["test_elbo"][-1])
    assert nb04_bernoulli.check_overfitting_gaps({"dynamic": gap, "static": gap}, main, main)
    assert not nb04_bernoulli.check_overfitting_gaps({"dynamic": gap, "static": gap + 1}, main, main)
    assert not nb04_bernoulli.check_overfitting_gaps({"dynamic": None, "static": None}, main, None)
    assert not nb04_bernoulli.check_overfitting_gaps([gap, gap], main, main)


def test_check_masked_errors(exercise_context):
    from vae_core.evaluate import reconstruct

    ctx = exercise_context
    model, masked, clean, mask = ctx["main"].model, ctx["masked"], ctx["clean_grey"], ctx["mask"]
    r = reconstruct(model, masked)
    right = (float(mean_abs_error(r, clean).mean()), float(np.nanmean(mean_abs_error(r, clean, mask))))
    assert nb04_bernoulli.check_masked_errors(right, model, masked, clean, mask)
    assert not nb04_bernoulli.check_masked_errors((right[0], right[0]), model, masked, clean, mask)
    assert not nb04_bernoulli.check_masked_errors(None, None, masked, clean, mask)
    assert not nb04_bernoulli.check_masked_errors(right[0], model, masked, clean, mask)


def test_denoising_scores_match_their_definitions(small, binary_images):
    from vae_core.data import flip_noise
    from vae_core.evaluate import evaluate, reconstruct

    key = jax.random.PRNGKey(4)
    noisy = np.asarray(flip_noise(jax.random.PRNGKey(1), binary_images, 0.1))
    masked, mask = mask_patches(jax.random.PRNGKey(2), binary_images, 8)
    grey = binary_images * 0.9
    s = denoising_scores(small, noisy, binary_images, grey, key)
    np.testing.assert_allclose(s["recon"], reconstruct(small, noisy))
    assert np.isclose(s["elbo"], float(evaluate(small, noisy, key, target=binary_images)["elbo"]))
    assert np.isclose(s["error"], float(mean_abs_error(s["recon"], grey).mean())) and np.isnan(s["error_in_mask"])
    m = denoising_scores(small, masked, binary_images, grey, key, mask=mask)
    assert np.isclose(m["error_in_mask"], float(np.nanmean(mean_abs_error(m["recon"], grey, mask))))


def test_fit_posterior_raises_each_images_elbo(small, binary_images):
    key = jax.random.PRNGKey(0)
    amortized = small.encode(binary_images)
    before, _ = elbo_estimate(small, binary_images, amortized, key, n_samples=400)
    diag = fit_posterior(small, binary_images, jax.random.PRNGKey(1), steps=150, n_samples=8, learning_rate=0.05)
    full = fit_posterior(small, binary_images, jax.random.PRNGKey(1), family="full", steps=150, n_samples=8,
                         learning_rate=0.05)
    assert diag.mean.shape == (6, 3) and diag.offdiag is None and full.offdiag.shape == (6, 3)
    after, se = elbo_estimate(small, binary_images, diag, key, n_samples=400)
    assert se.shape == (6,) and np.all(se > 0)
    assert np.all(after > before + 3 * se)  # every image's own q beats the (untrained) encoder's
    with pytest.raises(ValueError, match="family must be"):
        fit_posterior(small, binary_images, key, family="flow")


def test_mean_and_se():
    m, se = mean_and_se([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5 and np.isclose(se, np.std([1, 2, 3, 4], ddof=1) / 2)
    with pytest.raises(ValueError, match="at least 2 values"):
        mean_and_se([1.0])


def test_log_weights_give_the_elbo_and_log_px_under_a_given_q(small, binary_images):
    from vae_core.objectives import log_importance_weights

    post, key = small.encode(binary_images), jax.random.PRNGKey(3)
    w = log_weights(small, binary_images, post, key, 200, chunk=50)
    assert w.shape == (200, 6)
    first = np.asarray(log_importance_weights(small, binary_images, jax.random.split(key, 4)[0], 50, post=post))
    np.testing.assert_allclose(w[:50], first, rtol=1e-5, atol=1e-4)
    mean, se = elbo_estimate(small, binary_images, post, key, n_samples=200)
    w = log_weights(small, binary_images, post, key, 200)  # the default chunk, as elbo_estimate draws
    np.testing.assert_allclose(mean, w.mean(0))
    np.testing.assert_allclose(se, w.std(0, ddof=1) / np.sqrt(200))
    lp = np.asarray(log_marginal_likelihood(small, binary_images, key, k=200, post=post))  # the engine, q given
    assert np.all(lp >= mean - 4 * se)  # log p(x) estimate above the ELBO
    ll = np.asarray(log_marginal_likelihood(small, binary_images, jax.random.PRNGKey(9), k=200, k_chunk=100))
    assert abs(lp.mean() - ll.mean()) < 1.5  # the encoder's q by default, other draws
    with pytest.raises(ValueError, match="multiple of chunk"):
        log_weights(small, binary_images, post, key, 150, chunk=100)


def test_gaussian_decoder_report(small):
    from vae_core.models import ModelConfig, build_model

    grey = np.random.default_rng(0).random((20, 784)).astype(np.float32)
    learned = build_model(ModelConfig(latent_dim=3, hidden=(16,), likelihood="gaussian", obs_std=None), 0)
    r = gaussian_decoder_report(learned, grey, jax.random.PRNGKey(0))
    assert set(r) == {"elbo", "kl", "kl_per_dim", "active", "mse", "sigma_median", "sigma_min"}
    assert r["kl_per_dim"].shape == (3,) and np.all(np.diff(r["kl_per_dim"]) <= 0)
    assert np.isclose(r["kl_per_dim"].sum(), r["kl"], rtol=1e-4)
    assert r["sigma_median"] == r["sigma_min"] == 1.0  # learned sigma starts at 1 (log 0)
    assert 0 <= r["active"] <= 3 and r["mse"] > 0 and np.isfinite(r["elbo"])
    fixed = build_model(ModelConfig(latent_dim=3, hidden=(16,), likelihood="gaussian", obs_std=0.1), 0)
    assert np.isclose(gaussian_decoder_report(fixed, grey, jax.random.PRNGKey(0))["sigma_min"], 0.1)
    with pytest.raises(ValueError, match="Gaussian-decoder"):
        gaussian_decoder_report(small, grey, jax.random.PRNGKey(0))


def test_paper_footing_reads_cards_and_leaves_unmeasured_nll_empty():
    card = {"model_config": {"hidden": [200, 200], "latent_dim": 50, "activation": "tanh"}, "train_shape": [60000, 784],
            "train_config": {"batch_size": 20}, "epochs": 3280, "device": "CPU (x86_64)", "train_minutes": 90.0,
            "test_elbo": -88.5, "test_logpx": -86.9, "test_logpx_stderr": 0.2, "logpx_k": 5000, "logpx_images": 10000}
    short = {**card, "epochs": 20, "train_minutes": 3.0, "logpx_images": 1000}     # not on the paper's footing
    rows = nb04_bernoulli.paper_footing(["a", "b"], {"model": "paper", "nll": 86.76}, cards={"a": card, "b": short})
    assert [r["model"] for r in rows] == ["a", "b", "paper"]
    assert rows[0]["network"] == "784-200-200-50 tanh" and rows[0]["training"] == "3,280 epochs, batch 20"
    assert rows[0]["trained on"] == "CPU (x86_64), 1.5 h" and rows[1]["trained on"] == "CPU (x86_64), 3 min"
    assert rows[0]["nll"] == 86.9 and rows[0]["nll_se"] == 0.2 and rows[0]["elbo"] == -88.5
    assert rows[1]["nll"] is None and rows[2]["nll"] == 86.76 and rows[2]["elbo"] is None


def test_paper_footing_reads_the_real_cards():
    (row, paper) = nb04_bernoulli.paper_footing(["04_main_L20"], {"model": "paper", "nll": 86.76})
    assert row["model"] == "04_main_L20" and row["network"] == "784-400-20 relu"
    assert row["training"] == "20 epochs, batch 128" and row["elbo"] < -90 and paper["nll"] == 86.76


def test_sweep_log_likelihood_takes_a_shipped_card_and_estimates_the_rest(small, binary_images, tmp_path,
                                                                          monkeypatch):
    from vae_core.train import TrainResult

    monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path))
    card = {"test_logpx": -94.66, "test_logpx_stderr": 0.24, "logpx_k": 5000, "logpx_images": 10000}
    shipped_result = TrainResult(small, {}, small.cfg, TrainConfig(), source="shipped", extra=card)
    assert nb04_bernoulli.card_log_likelihood(shipped_result) == (-94.66, 0.24, "k = 5000, 10,000 images")
    monkeypatch.setattr(nb04_bernoulli, "log_likelihood_cached", lambda *a, **k: pytest.fail("estimated"))
    assert nb04_bernoulli.sweep_log_likelihood(shipped_result, binary_images, jax.random.PRNGKey(0), n=8, k=10) == (
        -94.66, "the model card (k = 5000, 10,000 images)")
    monkeypatch.undo()
    monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path))
    # a trained model (or a shipped card without log p(x)) is estimated here, on the first n images
    gaussian_card = {**card, "model_config": {"likelihood": "gaussian"}}
    for result in (TrainResult(small, {}, small.cfg, TrainConfig(), source="trained", extra=card),
                   TrainResult(small, {}, small.cfg, TrainConfig(), source="shipped", extra=gaussian_card),
                   TrainResult(small, {}, small.cfg, TrainConfig(), source="shipped", extra={"test_elbo": -99.0})):
        assert nb04_bernoulli.card_log_likelihood(result) is None
        value, where = nb04_bernoulli.sweep_log_likelihood(result, binary_images, jax.random.PRNGKey(0), n=4, k=10)
        direct = log_marginal_likelihood(small, binary_images[:4], jax.random.PRNGKey(0), k=10, k_chunk=10)
        assert value == pytest.approx(float(np.mean(direct)), rel=1e-6) and where == "estimated here (k = 10, 4 images)"
