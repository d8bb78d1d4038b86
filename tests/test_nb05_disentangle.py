"""MIG and traversal helpers on synthetic codes whose answer is known."""
import numpy as np
import pytest

from vae_core import disentangle as D
from vae_core import sprites as S

N = 10_000


@pytest.fixture(scope="module")
def factors():
    rng = np.random.default_rng(0)
    return np.stack([rng.integers(0, n, N) for n in (3, 6, 10, 16)], 1)


def _perfect(factors, rng, extra=2):
    return np.concatenate([factors + rng.normal(0, 0.01, factors.shape), rng.normal(size=(len(factors), extra))], 1)


def test_perfectly_disentangled_code_scores_one(factors):
    rng = np.random.default_rng(1)
    res = D.mig(_perfect(factors, rng), factors)
    assert res.score > 0.98
    assert res.per_factor.shape == (4,) and res.mi.shape == (6, 4)
    assert list(res.ranking[:, 0]) == [0, 1, 2, 3]


def test_order_and_scale_of_latents_do_not_matter(factors):
    rng = np.random.default_rng(2)
    codes = _perfect(factors, rng)
    perm = rng.permutation(codes.shape[1])
    a = D.mig(codes, factors).score
    b = D.mig(codes[:, perm] * 7.0 - 3.0, factors).score
    assert abs(a - b) < 1e-9


def test_shuffled_code_scores_zero(factors):
    rng = np.random.default_rng(3)
    codes = _perfect(factors, rng)
    shuffled = np.stack([rng.permutation(c) for c in codes.T], 1)
    assert D.mig(shuffled, factors).score < 0.02


def test_duplicated_factor_has_zero_gap(factors):
    rng = np.random.default_rng(4)
    codes = _perfect(factors, rng)
    dup = np.concatenate([codes, codes[:, :1] * 2.0], 1)
    res = D.mig(dup, factors)
    assert res.per_factor[0] < 0.01           # two latents carry the shape: no gap
    assert np.all(res.per_factor[1:] > 0.98)


def test_mixed_code_scores_lower(factors):
    rng = np.random.default_rng(5)
    codes = _perfect(factors, rng)
    z = (factors - factors.mean(0)) / factors.std(0)
    rot = np.linalg.qr(rng.normal(size=(4, 4)))[0]
    mixed = np.concatenate([z @ rot, codes[:, 4:]], 1)
    assert D.mig(mixed, factors).score < 0.5 * D.mig(codes, factors).score


def test_discretize_matches_histogram_bins():
    x = np.linspace(0, 1, 101)[:, None]
    d = D.discretize(x, 20)
    assert d.min() == 1 and d.max() == 20
    assert np.all(np.diff(d[:, 0]) >= 0)
    assert len(np.unique(d)) == 20


def test_entropy_of_uniform_factor():
    f = np.repeat(np.arange(8), 100)[:, None]
    assert D.factor_entropy(f)[0] == pytest.approx(np.log(8))


def test_ceiling_below_one_on_dsprites_grid():
    f = S.sample_factors(N, seed=0)
    res = D.mig_ceiling(f)
    # shape (3) and scale (6) fit in 20 bins; orientation (40) and positions (32) do not
    assert res.per_factor[0] > 0.98 and res.per_factor[1] > 0.98
    assert np.all(res.per_factor[2:] < 0.9)
    assert 0.8 < res.score < 0.95


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="L >= 2"):
        D.mig(np.zeros((10, 1)), np.zeros((10, 1), int))
    with pytest.raises(ValueError, match="rows"):
        D.mig(np.zeros((10, 3)), np.zeros((9, 1), int))
    with pytest.raises(ValueError, match="NaN"):
        D.discretize(np.array([[np.nan, 1.0]]))


def test_match_latents_names_best_factor(factors):
    rng = np.random.default_rng(6)
    res = D.mig(_perfect(factors, rng), factors)
    m = D.match_latents(res.mi, res.entropy, ["a", "b", "c", "d"])
    assert m.name == ["a", "b", "c", "d", "none", "none"]
    assert list(m.factor) == [0, 1, 2, 3, -1, -1]
    assert m.label[0].startswith("z0: a (")


def test_traversal_codes_layout():
    codes = D.traversal_codes(np.arange(4.0), [1, 3], [-1.0, 0.0, 1.0])
    assert codes.shape == (6, 4)
    np.testing.assert_allclose(codes[:3, 1], [-1, 0, 1])
    np.testing.assert_allclose(codes[3:, 3], [-1, 0, 1])
    np.testing.assert_allclose(codes[:3, 3], 3.0)
    with pytest.raises(ValueError):
        D.traversal_codes(np.zeros(4), [4], [0.0])


def test_traversal_grid_and_mig_of_model_run_on_a_model():
    import jax

    from vae_core.models import ModelConfig, init_params

    cfg = ModelConfig(latent_dim=3, hidden=(16,), image_shape=(32, 32), architecture="conv",
                      conv_channels=(4, 4, 4, 4))
    model, params = init_params(cfg, jax.random.PRNGKey(0))
    grid = D.traversal_grid(model, params, dims=[0, 2], values=np.linspace(-3, 3, 5))
    assert grid.shape == (2, 5, 1024)
    assert np.all((grid >= 0) & (grid <= 1))
    sp = S.make_sprites(200, 32, seed=1)
    res = D.mig_of_model(model, params, sp.images, sp.factors)
    assert 0.0 <= res.score <= 1.0 and res.mi.shape == (3, 5)


def test_format_mig_table_summarises_per_beta():
    rows = [{"beta": b, "seed": s, "mig": m, "kl": 1.0, "per_factor": np.zeros(5)}
            for b, s, m in [(1, 0, 0.1), (1, 1, 0.3), (4, 0, 0.5)]]
    text = D.format_mig_table(rows, S.FACTOR_NAMES)
    summary = [line.split() for line in text.splitlines()[-2:]]
    assert summary[0][:3] == ["1", "2", "0.200"] and summary[0][3] == f"{np.std([0.1, 0.3], ddof=1):.3f}"
    assert summary[1][:3] == ["4", "1", "0.500"]


def test_sprite_configs_are_consistent():
    m = D.sprite_model_config(32)
    t = D.sprite_train_config(4, 2, 3)
    assert m.architecture == "conv" and m.image_shape == (32, 32) and m.latent_dim == 10
    assert t.beta == 4.0 and t.seed == 2 and t.binarize is False and t.objective == "elbo"
    assert D.sprite_train_config(1, 0, 3, objective="capacity").objective == "capacity"
    cap = D.sprite_train_config(1, 0, 5, objective="capacity")
    assert cap.capacity_max == 12.0 and cap.gamma == 5.0 and cap.capacity_epochs == 4.0
