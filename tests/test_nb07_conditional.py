"""course/nb07_conditional.py: label draws, M2 per draw and its baseline, pictures, exercise checkers."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from flax import nnx  # noqa: E402

from course import nb07_conditional as nb07  # noqa: E402
from vae_core import checkpoint as ckpt  # noqa: E402
from vae_core import shipped  # noqa: E402
from vae_core.conditional import (ConditionalConfig, ConditionalResult, build_conditional, classify,  # noqa: E402
                                  decode_conditional, label_bounds, observed_mask, one_hot)
from vae_core.metrics import DigitJudge  # noqa: E402
from vae_core.train import TrainConfig  # noqa: E402


def _digits(n, seed=0):
    """n grey 'digits' [n, 784] of ten classes (one random ink pattern each) and their labels."""
    rng = np.random.default_rng(seed)
    patterns = (np.random.default_rng(99).random((10, 784)) < 0.2).astype(np.float32)
    y = np.arange(n) % 10
    x = np.clip(patterns[y] * 0.9 + rng.uniform(0, 0.08, (n, 784)), 0, 1).astype(np.float32)
    return x, y


def test_label_draw_takes_ten_of_each_digit_and_depends_on_the_seed():
    _, y = _digits(300)
    idx = nb07.label_draw(y, 10, seed=0)
    assert idx.shape == (100,) and len(set(idx)) == 100
    assert np.array_equal(np.bincount(y[idx], minlength=10), np.full(10, 10))
    assert np.array_equal(idx, nb07.label_draw(y, 10, seed=0))
    assert not np.array_equal(idx, nb07.label_draw(y, 10, seed=1))
    with pytest.raises(ValueError, match="only 30 training images of digit 0"):
        nb07.label_draw(y, 31)
    x, y = _digits(300)
    x_lab, y_lab, x_unl = nb07.m2_data(x, y, draw=2, n_unlabelled=50)
    assert x_lab.shape == (100, 784) and np.array_equal(y_lab, y[nb07.label_draw(y, 10, 2)]) and len(x_unl) == 50


def test_train_m2_draw_caches_and_the_baseline_learns(tmp_path, monkeypatch):
    monkeypatch.setenv(ckpt.CACHE_ENV, str(tmp_path))
    for env in (shipped.RETRAIN_ENV, shipped.SHIP_ENV):
        monkeypatch.delenv(env, raising=False)
    x, y = _digits(200)
    x_bin = (np.random.default_rng(1).random(x.shape) < x).astype(np.float32)
    cfg = ConditionalConfig(target_dim=784, cond_dim=10, latent_dim=2, hidden=(16,), n_classes=10,
                            classifier_hidden=(16,))
    tc = TrainConfig(epochs=1, batch_size=50, learning_rate=1e-3)
    first = nb07.train_m2_draw(x, y, x, y, 0, cfg, tc, alpha=5.0, per_class=2)
    again = nb07.train_m2_draw(x, y, x, y, 0, cfg, tc, alpha=5.0, per_class=2)
    assert len(first.history["loss"]) == 1 and again.history == first.history  # the second call loads it
    assert len(list(tmp_path.glob("07_m2_draw0-*.msgpack"))) == 1
    error = nb07.labels_only_error(x, y, x_bin, y, 0, cfg, TrainConfig(epochs=30, batch_size=10, learning_rate=3e-3),
                                   per_class=2)
    assert error < 0.2  # ten well-separated patterns: two labels each suffice


def test_pictures_have_one_panel_per_image():
    cfg = ConditionalConfig(target_dim=784, cond_dim=10, latent_dim=3, hidden=(8,))
    model = build_conditional(cfg, 0)
    fig = nb07.style_grid(model, np.zeros((2, 3)), title="t", row_labels=["a", "b"])
    assert len(fig.axes) == 20 and fig.axes[0].get_title() == "as 0"
    plt.close(fig)
    mask = observed_mask("top")
    x, _ = _digits(3)
    seen = x[:, mask]
    fig = nb07.completion_grid(seen, x, np.full((3, 392), 0.5), np.zeros((3, 4, 392)), mask, title="c")
    assert len(fig.axes) == 3 * 7 and [a.get_title() for a in fig.axes[:3]] == ["seen", "truth", "regression"]
    plt.close(fig)
    samples = np.stack([np.zeros((5, 10)), np.ones((5, 10))], axis=1)
    assert nb07.pixel_spread(samples) == pytest.approx(0.5) and nb07.pixel_spread(np.zeros((5, 3, 10))) == 0.0


@pytest.fixture(scope="module")
def standins():
    """Untrained small stand-ins for notebook 07's objects (the checkers recompute from them)."""
    x, y = _digits(300)
    x_bin = (np.random.default_rng(2).random(x.shape) < x).astype(np.float32)
    cvae = ConditionalResult(build_conditional(ConditionalConfig(target_dim=784, cond_dim=10, latent_dim=20,
                                                                 hidden=(8,)), 0), {})
    m2 = {0: ConditionalResult(build_conditional(ConditionalConfig(target_dim=784, cond_dim=10, latent_dim=4,
                                                                   hidden=(8,), n_classes=10,
                                                                   classifier_hidden=(8,)), 1), {})}
    completer = ConditionalResult(build_conditional(ConditionalConfig(target_dim=392, cond_dim=392, latent_dim=20,
                                                                      hidden=(8,)), 2), {})
    judge = DigitJudge(x, x, y, n_components=None)
    top = x_bin[:200, observed_mask("top")]
    ll_regression = -np.linspace(50.0, 150.0, 200) + np.random.default_rng(3).normal(0, 5, 200)
    return dict(x_bin=x_bin, y=y, cvae=cvae, m2=m2, completer=completer, judge=judge, top=top, ll=ll_regression)


def test_check_hardest_digit(standins):
    s = standins
    labels = np.repeat(np.arange(10), 20)
    z = jax.random.normal(jax.random.PRNGKey(3), (200, 20))
    read = s["judge"].classify(decode_conditional(s["cvae"].model, z, one_hot(labels, 10)))[1]
    rates = {d: float(np.mean(read[labels == d] == d)) for d in range(10)}
    hardest = min(rates, key=rates.get)
    assert nb07.check_hardest_digit(rates, hardest, s["cvae"].model, s["judge"], per_digit=20, seed=3).passed
    worst = max(rates, key=rates.get)
    wrong = [nb07.check_hardest_digit(None, None, s["cvae"].model, s["judge"], per_digit=20, seed=3),
             nb07.check_hardest_digit({d: r + 0.05 for d, r in rates.items()}, hardest, s["cvae"].model, s["judge"],
                                      per_digit=20, seed=3),
             nb07.check_hardest_digit([0.1] * 3, hardest, s["cvae"].model, s["judge"], per_digit=20, seed=3)]
    if rates[worst] > rates[hardest]:
        wrong.append(nb07.check_hardest_digit(rates, worst, s["cvae"].model, s["judge"], per_digit=20, seed=3))
    for verdict in wrong:
        assert not verdict.passed and verdict.hint and str(verdict).startswith("Not yet.")


def test_check_generative_classifier(standins):
    s = standins
    model, x, y = s["m2"][0].model, s["x_bin"][:100], s["y"][:100]
    bounds = np.asarray(label_bounds(model, jnp.asarray(x), jax.random.PRNGKey(0)))
    error = float(np.mean(bounds.argmax(1) != y))
    own = float(np.mean(classify(model, x) != y))
    right = "b" if own < error else ("a" if error < own else "c")
    assert nb07.check_generative_classifier(error, right, model, x, y, seed=0).passed
    for verdict in (nb07.check_generative_classifier(None, None, model, x, y, seed=0),
                    nb07.check_generative_classifier(error + 0.01, right, model, x, y, seed=0),
                    nb07.check_generative_classifier(error, {"a": "b", "b": "c", "c": "a"}[right], model, x, y, seed=0)):
        assert not verdict.passed and verdict.hint and str(verdict).startswith("Not yet.")


def test_check_disagreement(standins):
    s = standins
    model, top, ll = s["completer"].model, s["top"], s["ll"]
    z = jax.random.normal(jax.random.PRNGKey(1), (8, 200, 20))
    draws = np.stack([decode_conditional(model, z[j], top) for j in range(8)], axis=1)
    spread = draws.std(axis=1).mean(axis=1)
    corr = float(np.corrcoef(spread, ll)[0, 1])
    right = "a" if corr < -0.1 else ("c" if corr > 0.1 else "b")
    assert nb07.check_disagreement(spread, corr, right, model, top, ll, seed=1).passed
    for verdict in (nb07.check_disagreement(None, None, None, model, top, ll, seed=1),
                    nb07.check_disagreement(spread * 1.1, corr, right, model, top, ll, seed=1),
                    nb07.check_disagreement(spread, corr + 0.05, right, model, top, ll, seed=1),
                    nb07.check_disagreement(spread, corr, {"a": "b", "b": "c", "c": "a"}[right], model, top, ll,
                                            seed=1)):
        assert not verdict.passed and verdict.hint and str(verdict).startswith("Not yet.")


def test_shipped_model_refuses_a_name_that_is_not_shipped(monkeypatch, tmp_path):
    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path)
    with pytest.raises(KeyError, match="no shipped conditional model named '07_m2_draw0'"):
        nb07.shipped_model("07_m2_draw0")


def test_exercises_check_themselves(standins):
    from exercise_tools import check_exercises

    s = standins

    def namespace():
        return dict(np=np, jax=jax, jnp=jnp, nb07=nb07, cvae=s["cvae"], judge=s["judge"], m2=dict(s["m2"]),
                    decode_conditional=decode_conditional, one_hot=one_hot, label_bounds=label_bounds,
                    classify=classify, x_test_bin=np.concatenate([s["x_bin"]] * 4), y_test=np.tile(s["y"], 4),
                    completer=s["completer"], top_test=s["top"], ll_regression=s["ll"], nnx=nnx)

    assert check_exercises("07_conditional_and_semisupervised.ipynb", namespace) == 3
