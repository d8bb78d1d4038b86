"""The procedural dSprites stand-in: factor grid, rendering, and the TFDS path offline."""
import time

import numpy as np
import pytest

from vae_core import sprites as S


def test_factor_grid_matches_dsprites():
    assert S.FACTOR_NAMES == ("shape", "scale", "orientation", "posX", "posY")
    assert S.FACTOR_SIZES == (3, 6, 40, 32, 32)
    assert S.NUM_COMBINATIONS == 737_280
    np.testing.assert_allclose(S.FACTOR_VALUES["scale"], np.linspace(0.5, 1, 6), atol=1e-6)
    np.testing.assert_allclose(S.FACTOR_VALUES["orientation"][[0, -1]], [0, 2 * np.pi], atol=1e-6)


def test_index_round_trip():
    idx = np.array([0, 1, 12345, S.NUM_COMBINATIONS - 1])
    f = S.index_to_factors(idx)
    assert f.shape == (4, 5)
    np.testing.assert_array_equal(S.factors_to_index(f), idx)
    np.testing.assert_array_equal(f[-1], np.array(S.FACTOR_SIZES) - 1)


def test_sample_factors_distinct_and_seeded():
    a, b = S.sample_factors(5000, seed=3), S.sample_factors(5000, seed=3)
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(S.factors_to_index(a))) == 5000
    assert not np.array_equal(a, S.sample_factors(5000, seed=4))
    for k, n in enumerate(S.FACTOR_SIZES):
        assert a[:, k].min() == 0 and a[:, k].max() == n - 1


@pytest.mark.parametrize("size", [64, 32])
def test_render_binary_flat(size):
    d = S.make_sprites(300, size, seed=0)
    assert d.images.shape == (300, size * size) and d.images.dtype == np.float32
    assert set(np.unique(d.images)) == {0.0, 1.0}
    assert np.all(d.images.sum(1) > 0)  # every sprite visible
    assert d.image_shape == (size, size)


def _centre(img, size):
    rows, cols = np.nonzero(img.reshape(size, size))
    return cols.mean(), rows.mean()


def test_position_and_scale_move_the_sprite():
    px = S.render(S.factor_sweep("posX"), 64)
    py = S.render(S.factor_sweep("posY"), 64)
    cx = [_centre(i, 64)[0] for i in px]
    cy = [_centre(i, 64)[1] for i in py]
    assert np.all(np.diff(cx) > 0) and np.all(np.diff(cy) > 0)   # right, and down
    area = S.render(S.factor_sweep("scale"), 64).sum(1)
    assert np.all(np.diff(area) > 0)
    # a full-size sprite in a corner stays inside the frame: same area up to pixel
    # aliasing (sub-pixel placement), far from the ~50 % a clipped corner would lose
    edge = S.render(np.array([[0, 5, 0, 0, 0], [0, 5, 0, 31, 31], [0, 5, 0, 16, 16]]), 64).sum(1)
    assert np.all(np.abs(edge[:2] / edge[2] - 1) < 0.15)


def test_shapes_differ_and_square_has_quarter_turn_symmetry():
    imgs = S.render(np.array([[s, 5, 0, 16, 16] for s in range(3)]), 64)
    assert len({img.tobytes() for img in imgs}) == 3
    sweep = S.render(S.factor_sweep("orientation"), 64)
    # 40 steps over 2 pi: step 10 is a quarter turn
    assert np.mean(sweep[0] != sweep[10]) < 0.01
    assert np.mean(sweep[0] != sweep[5]) > 0.02


def test_bad_factors_raise():
    with pytest.raises(ValueError, match="orientation"):
        S.render(np.array([[0, 0, 40, 0, 0]]))
    with pytest.raises(ValueError, match="shape"):
        S.render(np.zeros((3, 4), int))
    with pytest.raises(ValueError, match="size"):
        S.render(np.zeros((1, 5), int), size=28)


def test_tfds_path_fails_fast_without_network(monkeypatch, tmp_path):
    # the one network probe (vae_core.files.can_connect) says the host did not answer
    asked = []

    def no_answer(host, port, timeout=4.0):
        asked.append((host, port))
        return TimeoutError(f"no answer within {timeout:g} s")

    monkeypatch.setattr(S, "can_connect", no_answer)
    start = time.perf_counter()
    with pytest.raises(S.SpritesUnavailable, match="make_sprites") as err:
        S.load_tfds_dsprites(data_dir=str(tmp_path))
    assert time.perf_counter() - start < 10
    assert asked == [S.TFDS_HOST] and "no answer within 4 s" in str(err.value)


def test_network_available_asks_can_connect(monkeypatch):
    monkeypatch.setattr(S, "can_connect", lambda host, port, timeout=4.0: None)
    assert S.network_available() is True
    monkeypatch.setattr(S, "can_connect", lambda host, port, timeout=4.0: OSError("unreachable"))
    assert S.network_available(("example.invalid", 443)) is False
