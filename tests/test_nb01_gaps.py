"""Tests of course.nb01_gaps (the latent-gap metrics of notebook 01), on small synthetic data."""
import numpy as np
import pytest

from course import nb01_gaps as gaps


def _square_with_hole(scale=1.0, seed=0):
    """Codes filling [-1, 1]^2 densely except a disc of radius 0.4 around the origin."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-1, 1, size=(6000, 2))
    pts = pts[np.linalg.norm(pts, axis=1) > 0.4]
    return (pts * scale).astype(np.float32)


def test_code_grid_shape_range_and_orientation():
    codes = np.array([[0.0, 10.0], [4.0, 20.0], [2.0, 15.0]], np.float32)
    grid, z1, z2 = gaps.code_grid(codes, n=5, quantile=0.0)
    assert grid.shape == (25, 2)
    np.testing.assert_allclose(z1, np.linspace(0, 4, 5), atol=1e-6)
    np.testing.assert_allclose(z2, np.linspace(20, 10, 5), atol=1e-6)  # top row first
    np.testing.assert_allclose(grid[0], [0.0, 20.0])   # top-left: low z1, high z2
    np.testing.assert_allclose(grid[4], [4.0, 20.0])   # along the first row z1 grows
    np.testing.assert_allclose(grid[-1], [4.0, 10.0])  # bottom-right


def test_code_grid_quantile_ignores_outliers():
    rng = np.random.default_rng(1)
    codes = np.concatenate([rng.uniform(-1, 1, (1000, 2)), [[100.0, 100.0]]])
    _, z1, _ = gaps.code_grid(codes, n=3, quantile=0.01)
    assert z1.max() < 1.0


def test_code_grid_rejects_bad_input():
    with pytest.raises(ValueError):
        gaps.code_grid(np.zeros((10, 3)))
    with pytest.raises(ValueError):
        gaps.code_grid(np.zeros((10, 2)), n=1)


def test_line_path_ends_and_midpoint():
    path = gaps.line_path([0.0, 0.0], [2.0, -4.0], steps=5)
    assert path.shape == (5, 2)
    np.testing.assert_allclose(path[0], [0, 0])
    np.testing.assert_allclose(path[-1], [2, -4])
    np.testing.assert_allclose(path[2], [1, -2])
    with pytest.raises(ValueError):
        gaps.line_path([0.0, 0.0], [1.0, 1.0, 1.0])


def test_fitted_gaussian_matches_moments():
    rng = np.random.default_rng(2)
    codes = rng.normal([5.0, -3.0], [2.0, 0.5], size=(5000, 2))
    s = gaps.fitted_gaussian_samples(codes, 20000, seed=0)
    np.testing.assert_allclose(s.mean(0), [5.0, -3.0], atol=0.05)
    np.testing.assert_allclose(s.std(0), [2.0, 0.5], rtol=0.05)


def test_inside_ellipse_uses_the_codes_spread():
    rng = np.random.default_rng(3)
    codes = rng.normal(0, [1.0, 10.0], size=(20000, 2))
    probes = np.array([[1.5, 0.0], [3.0, 0.0], [0.0, 15.0], [0.0, 30.0]])
    np.testing.assert_array_equal(gaps.inside_ellipse(probes, codes, 2.0), [True, False, True, False])


def test_empty_fraction_finds_the_hole_and_is_scale_free():
    codes = _square_with_hole()
    in_hole = np.array([[0.0, 0.0], [0.1, -0.1], [-0.15, 0.05]])
    in_data = np.array([[0.7, 0.7], [-0.8, 0.2], [0.5, -0.9]])
    assert gaps.empty_fraction(in_hole, codes) == 1.0
    assert gaps.empty_fraction(in_data, codes) == 0.0
    grid, _, _ = gaps.code_grid(codes, 21)
    frac = gaps.empty_fraction(grid, codes)
    hole_share = np.pi * 0.4 ** 2 / 4  # the hole's share of the square, about 0.126
    assert 0.5 * hole_share < frac < 1.2 * hole_share
    big = _square_with_hole(scale=50.0)
    assert gaps.empty_fraction(grid * 50.0, big) == pytest.approx(frac)


def test_nearest_code_distance():
    codes = np.array([[0.0, 0.0], [10.0, 0.0]])
    np.testing.assert_allclose(gaps.nearest_code_distance([[3.0, 4.0], [10.0, 1.0]], codes), [5.0, 1.0])


def test_digit_coverage_evenness():
    hist, even = gaps.digit_coverage(np.arange(100) % 10)
    np.testing.assert_allclose(hist, 0.1)
    assert even == pytest.approx(1.0)
    hist, even = gaps.digit_coverage(np.full(50, 7))
    assert hist[7] == 1.0 and even == 0.0
    _, half = gaps.digit_coverage(np.array([1, 7] * 20))
    assert half == pytest.approx(np.log(2) / np.log(10))
    with pytest.raises(ValueError):
        gaps.digit_coverage(np.array([3, 10]))


# ----------------------------------------------------------------------------- exercises
import types

import jax

from tests.exercise_tools import check_exercises
from vae_core.evaluate import decode_mean, encode
from vae_core.models import ModelConfig, build_model
from vae_core.objectives import bernoulli_log_likelihood
from vae_core.toy import LinearGaussian
from vae_core.train import TrainConfig, TrainResult

ONE, SEVEN = 1, 7


def _ten_pattern_data(n, rng, patterns):
    """n grey images [n, 784] of ten 'digits' (one random ink pattern each) and their labels 0..9."""
    y = rng.permutation(np.arange(n) % 10)
    x = patterns[y] * rng.uniform(0.7, 1.0, (n, 1)) + rng.uniform(0.0, 0.15, (n, 784))
    return np.clip(x, 0, 1).astype(np.float32), y


def _blend_model(x_from, x_to):
    """A linear 'decoder' with 2-d codes: z = (t, 0) decodes to (1 - t) x_from + t x_to."""
    W = np.zeros((784, 2))
    W[:, 0] = x_to - x_from
    return LinearGaussian(W=W, b=np.asarray(x_from, np.float64), sigma=1.0).as_vae(posterior="diagonal")


def _stand_in_train_or_load(name, model_config, train_config, x_train, x_test=None, **kwargs):
    """train_or_load's stand-in: no training (a JIT-compiled epoch costs seconds), a freshly
    initialised model whose history holds its true test reconstruction term."""
    model = build_model(model_config, train_config.seed)
    x = np.asarray(x_test, np.float32)
    rec = float(np.mean(bernoulli_log_likelihood(model.decoder_output(model.encode(x).mean), x)))
    return TrainResult(model, {"test_rec": [rec]}, model_config, train_config)


@pytest.fixture(scope="module")
def ex01():
    """Small stand-ins for notebook 01's objects: an untrained 2-d AE and a judge on 600 synthetic
    ten-class images, and a linear decoder whose 1 -> 7 line blends a '1' into a '7'."""
    rng = np.random.default_rng(0)
    patterns = (rng.random((10, 784)) < 0.25).astype(np.float32)
    x_train, y_train = _ten_pattern_data(600, rng, patterns)
    x_test, y_test = _ten_pattern_data(300, rng, patterns)
    net = dict(latent_dim=2, hidden=(32,), activation="relu", likelihood="bernoulli")
    train_cfg = TrainConfig(epochs=1, batch_size=128, learning_rate=1e-3, seed=0, eval_images=200)
    ae = _stand_in_train_or_load("01_ae_2d", ModelConfig(**net, deterministic=True), train_cfg, x_train, x_test)
    judge = gaps.DigitJudge(x_train, x_train, y_train, n_components=20)
    codes = {"AE": np.asarray(encode(ae.model, x_test).mean)}
    i_one, i_seven = int(np.flatnonzero(y_test == ONE)[0]), int(np.flatnonzero(y_test == SEVEN)[0])
    blend = types.SimpleNamespace(model=_blend_model(patterns[ONE], patterns[SEVEN]))
    models = {"AE": ae, "blend": blend}
    paths = {"AE": gaps.line_path(codes["AE"][i_one], codes["AE"][i_seven], steps=10),
             "blend": gaps.line_path([0.0, 0.0], [1.0, 0.0], steps=10)}
    return dict(x_train=x_train, x_test=x_test, y_test=y_test, net=net, train_cfg=train_cfg, ae=ae, judge=judge,
                codes=codes, models=models, paths=paths, patterns=patterns)


def _result(latent_dim=20, deterministic=True, test_rec=-100.0, train_cfg=None, **net):
    cfg = ModelConfig(**{**dict(latent_dim=2, hidden=(32,), activation="relu", likelihood="bernoulli"), **net,
                         "latent_dim": latent_dim}, deterministic=deterministic)
    return types.SimpleNamespace(model_config=cfg, train_config=train_cfg or TrainConfig(epochs=1),
                                 history={"test_rec": [test_rec - 10.0, test_rec]})


def test_check_bigger_bottleneck():
    ae, ae20 = _result(2, test_rec=-150.0), _result(20, test_rec=-110.5)
    for verdict in (gaps.check_bigger_bottleneck(None, None, ae), gaps.check_bigger_bottleneck(None, ae20, ae),
                    gaps.check_bigger_bottleneck(-39.5, ae20, ae),                          # the wrong sign
                    gaps.check_bigger_bottleneck(39.5, _result(10, test_rec=-110.5), ae),   # not 20-d
                    gaps.check_bigger_bottleneck(39.5, _result(20, False, -110.5), ae),     # a VAE
                    gaps.check_bigger_bottleneck(39.5, _result(20, hidden=(64,), test_rec=-110.5), ae),
                    gaps.check_bigger_bottleneck(39.5, _result(20, test_rec=-110.5,
                                                                 train_cfg=TrainConfig(epochs=3)), ae)):
        assert not verdict and verdict.hint and "Hint:" in str(verdict)
    assert gaps.check_bigger_bottleneck(39.5, ae20, ae)
    assert gaps.check_bigger_bottleneck(39.495, ae20, ae)  # from two rounded printouts


def test_check_replay_prior(ex01):
    ae, c, judge = ex01["ae"], ex01["codes"]["AE"], ex01["judge"]
    z = gaps.replay_prior_samples(c, 1000, seed=7)
    assert z.shape == (1000, 2) and np.all(gaps.nearest_code_distance(z, c) < 2 * gaps.code_spacing(c))
    _, pred = judge.classify(np.asarray(decode_mean(ae.model, z)))
    right = gaps.digit_coverage(pred)[1]
    assert gaps.check_replay_prior(right, "b", ae, c, judge)
    assert gaps.check_replay_prior(right, "B ", ae, c, judge)
    for verdict in (gaps.check_replay_prior(None, None, ae, c, judge),
                    gaps.check_replay_prior(right, None, ae, c, judge),
                    gaps.check_replay_prior(right, "c", ae, c, judge),
                    gaps.check_replay_prior(right - 0.1, "b", ae, c, judge)):
        assert not verdict and verdict.hint and "Hint:" in str(verdict)


def test_check_path_crossing(ex01):
    models, paths, judge = ex01["models"], ex01["paths"], ex01["judge"]
    t_cross, lowest = {}, {}
    for name, r in models.items():
        t, p = gaps.path_probabilities(r.model, paths[name][0], paths[name][-1], judge)
        after = np.flatnonzero(p[:, 1] >= p[:, 0])
        t_cross[name] = t[after[0]] if after.size else np.nan
        lowest[name] = float(np.min(p.sum(1)))
    assert 0.2 < t_cross["blend"] < 0.8  # the blend turns from the '1' into the '7' mid-way
    assert gaps.check_path_crossing(t_cross, lowest, models, paths, judge)
    # a crossing interpolated between two grid points passes too
    assert gaps.check_path_crossing({**t_cross, "blend": t_cross["blend"] - 0.5 / 49}, lowest, models, paths, judge)
    blank = {name: None for name in models}
    for args in ((None, None), (blank, lowest), (t_cross, blank), ({"blend": 0.5}, lowest),
                 ({**t_cross, "blend": t_cross["blend"] + 0.1}, lowest),
                 ({**t_cross, "blend": np.nan}, lowest),
                 (t_cross, {**lowest, "blend": lowest["blend"] + 0.05})):
        verdict = gaps.check_path_crossing(*args, models, paths, judge)
        assert not verdict and verdict.hint and "Hint:" in str(verdict)


def test_check_path_crossing_without_a_crossing(ex01):
    """A line that stays on the '1' never reaches p(7) >= p(1): the answer is np.nan."""
    one = ex01["patterns"][ONE]
    models = {"flat": types.SimpleNamespace(model=_blend_model(one, one))}
    paths = {"flat": gaps.line_path([0.0, 0.0], [1.0, 0.0], steps=10)}
    _, p = gaps.path_probabilities(models["flat"].model, paths["flat"][0], paths["flat"][-1], ex01["judge"])
    lowest = {"flat": float(np.min(p.sum(1)))}
    assert gaps.check_path_crossing({"flat": np.nan}, lowest, models, paths, ex01["judge"])
    verdict = gaps.check_path_crossing({"flat": 1.0}, lowest, models, paths, ex01["judge"])
    assert not verdict and "never" in verdict.message


def test_exercises_check_themselves(ex01):
    import matplotlib.pyplot as plt

    def namespace():
        ns = dict(np=np, jax=jax, plt=plt, gaps=gaps, decode_mean=decode_mean, encode=encode,
                  ModelConfig=ModelConfig, TrainConfig=TrainConfig,
                  train_or_load=_stand_in_train_or_load)
        ns.update({k: ex01[k] for k in ("x_train", "x_test", "y_test", "net", "train_cfg", "ae", "judge", "codes",
                                        "models", "paths")})
        return ns

    assert check_exercises("01_autoencoder_gaps.ipynb", namespace) == 3
    plt.close("all")
