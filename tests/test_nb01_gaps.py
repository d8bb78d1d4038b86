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
    judge = gaps.DigitJudge(x, x, y, n_components=None)
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
    judge = gaps.DigitJudge(x, x, y, n_components=4)
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
