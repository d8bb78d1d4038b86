"""Notebook 05's helpers: traversals, the sprite study's configs and the MIG table.
(MIG itself is tested in tests/test_metrics.py.)"""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course import nb05_disentangle as D  # noqa: E402
from vae_core import sprites as S  # noqa: E402
from vae_core.evaluate import decode_mean  # noqa: E402
from vae_core.metrics import model_mig  # noqa: E402
from vae_core.models import ModelConfig, build_model  # noqa: E402
from vae_core.train import TrainResult  # noqa: E402


@pytest.fixture(scope="module")
def conv_model():
    cfg = ModelConfig(latent_dim=3, hidden=(16,), image_shape=(32, 32), architecture="conv",
                      conv_channels=(4, 4, 4, 4))
    return build_model(cfg, 0)


def test_traversal_codes_layout():
    codes = D.traversal_codes(np.arange(4.0), [1, 3], [-1.0, 0.0, 1.0])
    assert codes.shape == (6, 4)
    np.testing.assert_allclose(codes[:3, 1], [-1, 0, 1])
    np.testing.assert_allclose(codes[3:, 3], [-1, 0, 1])
    np.testing.assert_allclose(codes[:3, 3], 3.0)
    with pytest.raises(ValueError):
        D.traversal_codes(np.zeros(4), [4], [0.0])


def test_traversal_grid_decodes_the_traversal_codes(conv_model):
    values = np.linspace(-3, 3, 5)
    grid = D.traversal_grid(conv_model, dims=[0, 2], values=values)
    assert grid.shape == (2, 5, 1024)
    assert np.all((grid >= 0) & (grid <= 1))
    base = np.array([0.5, -1.0, 2.0], np.float32)
    grid = D.traversal_grid(conv_model, base, dims=[2], values=values)
    expect = decode_mean(conv_model, D.traversal_codes(base, [2], values))
    np.testing.assert_allclose(grid[0], np.asarray(expect), rtol=1e-5, atol=1e-6)
    assert D.traversal_grid(conv_model).shape == (3, 7, 1024)  # every latent, 7 values by default


def test_plot_traversal_labels_rows_and_values():
    images = np.random.default_rng(0).random((2, 3, 16))
    fig = D.plot_traversal(images, (4, 4), row_labels=["a", "b"], values=[-1.0, 0.0, 1.0], title="t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["-1.0", "+0.0", "+1.0"]
    assert ax.get_title() == "t"
    plt.close(fig)


def test_mig_table_scores_every_model(conv_model):
    sp = S.make_sprites(200, 32, seed=1)
    other = build_model(conv_model.cfg, 1)
    results = {(4.0, 0): TrainResult(other, {"test_kl": [3.0, 2.5]}, conv_model.cfg, D.sprite_train_config(4, 0, 1)),
               (1.0, 0): TrainResult(conv_model, {"test_kl": [9.0]}, conv_model.cfg, D.sprite_train_config(1, 0, 1))}
    rows = D.mig_table(results, sp.images, sp.factors)
    assert [(r["beta"], r["seed"], r["kl"]) for r in rows] == [(1.0, 0, 9.0), (4.0, 0, 2.5)]
    assert rows[0]["mig"] == model_mig(conv_model, sp.images, sp.factors).score
    assert rows[1]["per_factor"].shape == (5,)


def test_format_mig_table_lists_models_then_summarises_per_beta():
    rows = [{"beta": b, "seed": s, "mig": m, "kl": 1.0, "per_factor": np.full(5, 0.25)}
            for b, s, m in [(1, 0, 0.1), (1, 1, 0.3), (4, 0, 0.5)]]
    text = D.format_mig_table(rows, S.FACTOR_NAMES)
    lines = text.splitlines()
    assert lines[0].split() == ["beta", "seed", "MIG", "KL", "shape", "scale", "orient", "posX", "posY"]
    assert lines[2].split() == ["1", "0", "0.100", "1.00", "0.250", "0.250", "0.250", "0.250", "0.250"]
    assert lines[5] == ""
    assert lines[6].split() == ["beta", "n", "MIG", "mean", "std", "min", "max"]
    summary = [line.split() for line in lines[-2:]]
    assert summary[0] == ["1", "2", "0.200", f"{np.std([0.1, 0.3], ddof=1):.3f}", "0.100", "0.300"]
    assert summary[1] == ["4", "1", "0.500", "0.000", "0.500", "0.500"]


def test_sprite_configs_are_consistent():
    m = D.sprite_model_config(32)
    t = D.sprite_train_config(4, 2, 3)
    assert m.architecture == "conv" and m.image_shape == (32, 32) and m.latent_dim == 10
    assert t.beta == 4.0 and t.seed == 2 and t.binarize is False and t.objective == "elbo"
    assert t.batch_size == 64 and t.eval_images == 2000
    assert D.sprite_train_config(1, 0, 3, objective="capacity").objective == "capacity"
    cap = D.sprite_train_config(1, 0, 5, objective="capacity")
    assert cap.capacity_max == 12.0 and cap.gamma == 5.0 and cap.capacity_epochs == 4.0


# ----------------------------------------------------------------------------- exercises
import jax  # noqa: E402

from vae_core.evaluate import evaluate  # noqa: E402
from vae_core.metrics import mig, mig_ceiling  # noqa: E402


@pytest.fixture(scope="module")
def stand_ins():
    """The notebook's objects, small: 2,048 sprites (the smoke-mode set) and the rate-distortion
    table of three untrained MLP VAEs (one per 'beta') on 200 of them."""
    data = S.make_sprites(2048, 32, seed=0)
    cfg = ModelConfig(latent_dim=4, hidden=(16,), image_shape=(32, 32))
    key = jax.random.PRNGKey(0)
    rd = {beta: evaluate(build_model(cfg, seed), data.images[:200], key) for seed, beta in enumerate((1, 4, 0.5))}
    return data, rd


def _not_yet(verdict):
    return not verdict.passed and verdict.hint and "Not yet." in str(verdict)


def test_check_negative_elbo(stand_ins):
    _, rd = stand_ins
    right = {b: float(-r["rec"] + r["kl"]) for b, r in rd.items()}
    best = min(right, key=right.get)
    assert _not_yet(D.check_negative_elbo(None, None, None, rd))
    distortion_only = {b: float(-r["rec"]) for b, r in rd.items()}
    beta_weighted = {b: float(-r["rec"] + b * r["kl"]) for b, r in rd.items()}     # the training loss, not -ELBO
    assert _not_yet(D.check_negative_elbo(distortion_only, best, "a", rd))
    assert _not_yet(D.check_negative_elbo(beta_weighted, best, "a", rd))
    assert _not_yet(D.check_negative_elbo({1: right[1]}, best, "a", rd))
    assert _not_yet(D.check_negative_elbo(right, None, "a", rd))
    assert _not_yet(D.check_negative_elbo(right, max(right, key=right.get), "a", rd))
    assert _not_yet(D.check_negative_elbo(right, best, "b", rd))
    assert D.check_negative_elbo({float(b): v for b, v in right.items()}, float(best), "a", rd).passed


def _noise(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 10))


def test_check_mig_codes(stand_ins):
    f = stand_ins[0].factors
    z_all, z_little, one_copy = _noise(len(f)), _noise(len(f), 1), _noise(len(f), 2)
    z_all[:, 0] = z_all[:, 1] = f[:, 3]
    z_little[:, 0] = f[:, 3] >= 16
    one_copy[:, 0] = f[:, 3]
    assert _not_yet(D.check_mig_codes(None, None, f))
    assert _not_yet(D.check_mig_codes(one_copy, z_little, f))          # full information, but a gap
    assert _not_yet(D.check_mig_codes(_noise(len(f)), z_little, f))    # no information at all
    assert _not_yet(D.check_mig_codes(z_all[:100], z_little, f))       # wrong number of rows
    assert _not_yet(D.check_mig_codes(z_all, None, f))
    assert _not_yet(D.check_mig_codes(z_all, one_copy, f))             # too much information
    assert _not_yet(D.check_mig_codes(z_all, _noise(len(f)), f))       # no gap
    assert D.check_mig_codes(z_all, z_little, f).passed


def test_check_low_mig(stand_ins):
    f = stand_ins[0].factors
    ideal = _noise(len(f))
    for k in (0, 1, 3, 4):
        ideal[:, k] = f[:, k]
    with_orientation, shape_twice = ideal.copy(), ideal.copy()
    with_orientation[:, 2] = f[:, 2]
    shape_twice[:, 5] = f[:, 0]
    assert _not_yet(D.check_low_mig(None, None, f))
    assert _not_yet(D.check_low_mig(with_orientation, "a", f))
    assert _not_yet(D.check_low_mig(shape_twice, "a", f))
    assert _not_yet(D.check_low_mig(ideal, None, f))
    assert _not_yet(D.check_low_mig(ideal, "d", f))
    verdict = D.check_low_mig(ideal, "a", f)
    assert verdict.passed and f"{mig(ideal, f).score:.3f}" in verdict.message


def test_exercises_check_themselves(stand_ins):
    from exercise_tools import check_exercises

    data, rd = stand_ins

    def namespace():
        return {"np": np, "nb05": D, "sprites": S, "mig": mig, "mig_ceiling": mig_ceiling, "data": data,
                "rd": rd}

    assert check_exercises("05_beta_vae_disentanglement.ipynb", namespace) == 3
