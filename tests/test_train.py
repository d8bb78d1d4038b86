"""Training, evaluation and checkpoints on small synthetic data (fast on CPU)."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_core import checkpoint as ckpt
from vae_core import evaluate as ev
from vae_core.models import VAE, ModelConfig, init_params
from vae_core.train import TrainConfig, train

SMALL = ModelConfig(latent_dim=4, hidden=(32,))
FAST = TrainConfig(epochs=2, batch_size=64, seed=3)


@pytest.fixture(scope="module")
def images():
    """512 grey-level 'images' of 784 pixels: two blobs, so there is something to learn."""
    rng = np.random.default_rng(0)
    base = np.zeros((2, 784), np.float32)
    base[0, :392], base[1, 392:] = 0.9, 0.9
    x = base[rng.integers(0, 2, 512)] * rng.uniform(0.6, 1.0, (512, 1)).astype(np.float32)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def trained(images):
    return train(SMALL, FAST, images[:448], images[448:], progress=False)


def test_history_has_one_entry_per_epoch(trained):
    h = trained.history
    for key in ("train_loss", "train_rec", "train_kl", "test_elbo", "test_rec", "test_kl", "beta", "seconds"):
        assert len(h[key]) == FAST.epochs, key
    assert np.array(h["test_kl_per_dim"]).shape == (FAST.epochs, SMALL.latent_dim)
    assert np.allclose(np.array(h["test_elbo"]), np.array(h["test_rec"]) - np.array(h["test_kl"]), atol=1e-3)
    assert h["train_loss"][-1] < h["train_loss"][0]


def test_same_seed_same_numbers(images, trained):
    again = train(SMALL, FAST, images[:448], images[448:], progress=False)
    assert again.history["train_loss"] == trained.history["train_loss"]
    assert again.history["test_elbo"] == trained.history["test_elbo"]
    leaves = zip(jax.tree_util.tree_leaves(again.params), jax.tree_util.tree_leaves(trained.params))
    assert all(np.array_equal(a, b) for a, b in leaves)
    other = train(SMALL, TrainConfig(epochs=2, batch_size=64, seed=4), images[:448], progress=False)
    assert other.history["train_loss"] != trained.history["train_loss"]


def test_warmup_beta_zero_iwae_and_capacity_objectives_run(images):
    for cfg in (TrainConfig(epochs=2, batch_size=64, warmup_epochs=2),
                TrainConfig(epochs=1, batch_size=64, beta=0.0),
                TrainConfig(epochs=1, batch_size=64, objective="iwae", iwae_k=5),
                TrainConfig(epochs=1, batch_size=64, objective="capacity", capacity_max=5, capacity_epochs=1),
                TrainConfig(epochs=1, batch_size=64, lr_decay=1e-4)):
        r = train(SMALL, cfg, images, progress=False)
        assert np.isfinite(r.history["train_loss"]).all(), cfg
    warm = train(SMALL, TrainConfig(epochs=2, batch_size=64, warmup_epochs=2), images, progress=False)
    assert warm.history["beta"] == [0.5, 1.0]


def test_plain_autoencoder_and_gaussian_decoder_train(images):
    ae = train(ModelConfig(latent_dim=2, hidden=(16,), deterministic=True), FAST, images, progress=False)
    assert all(k == 0 for k in ae.history["train_kl"])
    g = train(ModelConfig(latent_dim=2, hidden=(16,), likelihood="gaussian", obs_std=None),
              TrainConfig(epochs=2, batch_size=64, binarize=False), images, progress=False)
    assert g.history["train_loss"][-1] < g.history["train_loss"][0]
    assert "log_std" in g.params["params"]


def test_nan_is_reported_with_epoch_and_term(images):
    model, params = init_params(SMALL, jax.random.PRNGKey(0))
    params = jax.tree_util.tree_map(lambda a: a, params)
    out = params["params"]["decoder"]["output"]
    out["bias"] = out["bias"].at[0].set(jnp.nan)
    with pytest.raises(FloatingPointError, match=r"epoch 1, step 1 .*reconstruction term"):
        train(SMALL, FAST, images, params=params, progress=False)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((10, 783), np.float32), "x_train has 783 pixels"),
    (np.zeros((10, 28, 28), np.float32), "x_train must be a 2-d array"),
    (np.zeros((10, 784), np.uint8), "x_train has dtype uint8"),
    (np.full((10, 784), 2.0, np.float32), r"x_train has values in \[2, 2\]"),
    (np.full((10, 784), np.nan, np.float32), "x_train contains NaN"),
])
def test_bad_input_names_the_argument(bad, match):
    with pytest.raises(ValueError, match=match):
        train(SMALL, FAST, bad, progress=False)


def test_non_binary_targets_rejected_without_binarization(images):
    with pytest.raises(ValueError, match="must be binary"):
        train(SMALL, TrainConfig(epochs=1, batch_size=64, binarize=False), images, progress=False)


@pytest.mark.parametrize("kwargs, match", [
    ({"beta": -1.0}, "beta must be >= 0"), ({"iwae_k": 0}, "iwae_k must be >= 1"),
    ({"objective": "mse"}, "objective must be one of"), ({"learning_rate": 0}, "learning_rate"),
])
def test_bad_train_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_evaluate_and_log_likelihood(trained, images):
    model, params = trained.model, trained.params
    x = np.asarray(jax.random.bernoulli(jax.random.PRNGKey(0), images[448:]), np.float32)
    means = ev.evaluate(model, params, x, jax.random.PRNGKey(1))
    assert np.allclose(means["elbo"], means["rec"] - means["kl"], atol=1e-3)
    assert means["kl_per_dim"].shape == (SMALL.latent_dim,)
    per = ev.elbo_per_example(model, params, x, jax.random.PRNGKey(1), batch_size=10)
    assert per["elbo"].shape == (64,)
    ll = ev.log_likelihood(model, params, x, jax.random.PRNGKey(2), k=200, k_chunk=50, batch_size=7)
    assert ll.shape == (64,) and np.isfinite(ll).all()
    # log p(x) estimate lies above the ELBO on average (L_k >= L_1)
    assert float(ll.mean()) > float(means["elbo"])
    ll_bar = ev.log_likelihood(model, params, x, jax.random.PRNGKey(2), k=200, k_chunk=50, batch_size=7,
                               progress=True)
    assert ll_bar.shape == (64,) and abs(float(ll_bar.mean() - ll.mean())) < 1.0
    with pytest.raises(ValueError, match="k must be >= 1"):
        ev.log_likelihood(model, params, x, jax.random.PRNGKey(2), k=0)
    with pytest.raises(ValueError, match="multiple of k_chunk"):
        ev.log_likelihood(model, params, x, jax.random.PRNGKey(2), k=120, k_chunk=50)


def test_log_likelihood_is_exact_on_the_exact_model():
    from vae_core.toy import LinearGaussian

    rng = np.random.default_rng(1)
    lg = LinearGaussian(rng.normal(size=(5, 2)), rng.normal(size=5) * 0.1 + 0.5, 0.3)
    cfg, params = lg.as_vae("full")
    x = np.clip(lg.sample(rng, 20), 0, 1).astype(np.float32)  # check_images wants [0, 1]
    ll = ev.log_likelihood(VAE(cfg), params, x, jax.random.PRNGKey(0), k=1000, k_chunk=100)
    assert np.allclose(ll, lg.log_evidence(x), atol=1e-3)


def test_encode_decode_and_active_units(trained, images):
    model, params = trained.model, trained.params
    post = ev.encode(model, params, images, batch_size=100)
    assert post.mean.shape == (512, SMALL.latent_dim)
    pix = ev.decode(model, params, post.mean[:3])
    assert pix.shape == (3, 784) and float(pix.min()) >= 0 and float(pix.max()) <= 1
    count, variances = ev.active_units(model, params, images)
    assert variances.shape == (SMALL.latent_dim,) and count == int((variances > 0.01).sum())
    # zero the encoder's mean head: no latent varies with the data any more
    dead = jax.tree_util.tree_map(lambda a: a, params)
    head = dead["params"]["encoder"]["posterior_head"]
    head["kernel"] = head["kernel"].at[:, :SMALL.latent_dim].set(0.0)
    assert ev.active_units(model, dead, images)[0] == 0


def test_checkpoint_roundtrip_and_errors(trained, tmp_path):
    path = ckpt.save_checkpoint(tmp_path / "m.msgpack", trained)
    back = ckpt.load_checkpoint(path, model_config=SMALL, train_config=FAST)
    for a, b in zip(jax.tree_util.tree_leaves(back.params), jax.tree_util.tree_leaves(trained.params)):
        assert np.array_equal(a, b)
    assert back.history["test_elbo"] == trained.history["test_elbo"]
    assert [p.name for p in tmp_path.iterdir()] == ["m.msgpack"]  # no temporary file left behind
    with pytest.raises(ckpt.CheckpointError, match="different model config.*latent_dim"):
        ckpt.load_checkpoint(path, model_config=ModelConfig(latent_dim=5, hidden=(32,)))
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (tmp_path / "flipped.msgpack").write_bytes(bytes(blob))
    with pytest.raises(ckpt.CheckpointError, match="corrupt"):
        ckpt.load_checkpoint(tmp_path / "flipped.msgpack")
    (tmp_path / "short.msgpack").write_bytes(path.read_bytes()[:100])
    with pytest.raises(ckpt.CheckpointError, match="corrupt"):
        ckpt.load_checkpoint(tmp_path / "short.msgpack")
    with pytest.raises(ckpt.CheckpointError, match="No checkpoint"):
        ckpt.load_checkpoint(tmp_path / "absent.msgpack")


def test_train_or_load_caches_and_recovers(images, tmp_path, monkeypatch):
    monkeypatch.setenv(ckpt.CACHE_ENV, str(tmp_path))
    first = ckpt.train_or_load("tiny", SMALL, FAST, images, progress=False)
    files = list(tmp_path.glob("tiny-*.msgpack"))
    assert len(files) == 1

    def no_training(*a, **k):
        raise AssertionError("the cached model should have been loaded")

    monkeypatch.setattr(ckpt, "train", no_training)
    again = ckpt.train_or_load("tiny", SMALL, FAST, images, progress=False)
    assert again.history == first.history
    files[0].write_bytes(b"garbage")
    with pytest.raises(ckpt.CheckpointError, match="corrupt"):
        ckpt.train_or_load("tiny", SMALL, FAST, images, progress=False)
    monkeypatch.undo()
    monkeypatch.setenv(ckpt.CACHE_ENV, str(tmp_path))
    healed = ckpt.train_or_load("tiny", SMALL, FAST, images, progress=False, on_corrupt="retrain")
    assert healed.history["train_loss"] == first.history["train_loss"]
    assert ckpt.load_checkpoint(files[0]).history["train_loss"] == first.history["train_loss"]
    shared = ckpt.train_or_load("renamed", SMALL, FAST, images, progress=False)  # same settings
    assert shared.history == healed.history and not list(tmp_path.glob("renamed-*"))
    other = ckpt.cache_path("tiny", SMALL, TrainConfig(epochs=3, batch_size=64), images)
    assert other != files[0]
    assert os.fspath(other).startswith(os.fspath(tmp_path))


def test_python_loop_epoch_matches_scan_epoch(images):
    """The per-step loop (used for conv models on CPU) and the scan take the same steps."""
    from vae_core.train import make_epoch_fn, make_optimizer

    model, params = init_params(SMALL, jax.random.PRNGKey(0))
    tx = make_optimizer(FAST, 7)
    x = jnp.asarray(images[:448])
    out = {}
    for loop in ("scan", "python"):
        p = jax.tree_util.tree_map(jnp.array, params)
        run = make_epoch_fn(model, FAST, tx, len(x), loop=loop)
        out[loop] = run(p, tx.init(p), jnp.zeros((), jnp.int32), x, jax.random.PRNGKey(5))
    assert int(out["scan"][2]) == int(out["python"][2]) == 448 // FAST.batch_size
    for name in ("loss", "rec", "kl"):
        assert out["python"][3][name].shape == (7,)
        np.testing.assert_allclose(out["python"][3][name], out["scan"][3][name], rtol=1e-4, atol=1e-4)
    for a, b in zip(jax.tree_util.tree_leaves(out["scan"][0]), jax.tree_util.tree_leaves(out["python"][0])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="loop must be"):
        make_epoch_fn(model, FAST, tx, len(x), loop="while")


def test_conv_models_on_cpu_default_to_the_python_loop(images):
    from vae_core.train import make_epoch_fn, make_optimizer

    conv = ModelConfig(latent_dim=2, hidden=(8,), architecture="conv", image_shape=(32, 32), conv_channels=(2, 2, 2, 2))
    model, _ = init_params(conv, jax.random.PRNGKey(0))
    run = make_epoch_fn(model, FAST, make_optimizer(FAST, 1), 128)
    is_python_loop = run.__name__ == "run_epoch_python"
    assert is_python_loop == (jax.default_backend() == "cpu")
