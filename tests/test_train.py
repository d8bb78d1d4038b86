"""Training and evaluation on small synthetic data (fast on CPU).

Checkpoints, the model cache and resumable training are in test_checkpoint.py.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vae_core.evaluate import (decode_mean, decoder_function, elbo_per_example, encode, evaluate,
                               log_marginal_likelihood, reconstruct, sample_prior)
from vae_core.metrics import active_units
from vae_core.models import ModelConfig, build_model, model_from_arrays, params_to_arrays
from vae_core.objectives import LossSpec, elbo_terms, linear_warmup
from vae_core.toy import LinearGaussian
from vae_core.train import (HISTORY_KEYS, EpochEnd, TrainConfig, TrainingState, loss_spec, make_epoch_fn,
                            make_optimizer, train)

from flax import nnx

from conftest import FAST, SMALL  # noqa: E402  (the shared small model, see tests/conftest.py)
STEPS = 512 // 64  # optimiser steps per epoch on the 512 images below


@pytest.fixture(scope="module")
def test_bin(images):
    """The 64 held-out images, binarized once."""
    return np.asarray(jax.random.bernoulli(jax.random.PRNGKey(0), images[448:]), np.float32)


def same_params(a, b) -> bool:
    pa, pb = params_to_arrays(a), params_to_arrays(b)
    return sorted(pa) == sorted(pb) and all(np.array_equal(pa[k], pb[k]) for k in pa)


def without_seconds(history: dict) -> dict:
    return {k: v for k, v in history.items() if k != "seconds"}


# ----------------------------------------------------------------------------- training
def test_history_has_one_entry_per_epoch(trained):
    h = trained.history
    assert set(h) == set(HISTORY_KEYS)
    for key in ("train_loss", "train_rec", "train_kl", "test_elbo", "test_rec", "test_kl", "kl_weight", "seconds"):
        assert len(h[key]) == FAST.epochs, key
    assert np.array(h["test_kl_per_dim"]).shape == (FAST.epochs, SMALL.latent_dim)
    assert np.allclose(np.array(h["test_elbo"]), np.array(h["test_rec"]) - np.array(h["test_kl"]), atol=1e-3)
    assert np.allclose(np.array(h["train_loss"]), -(np.array(h["train_rec"]) - np.array(h["train_kl"])), atol=1e-3)
    assert h["train_loss"][-1] < h["train_loss"][0]
    assert h["kl_weight"] == [1.0, 1.0] and all(s > 0 for s in h["seconds"])
    assert trained.source == "trained" and trained.model_config == SMALL and trained.train_config == FAST
    assert trained.extra == {} and trained.model.cfg == SMALL


def test_without_test_images_only_training_columns_fill(images):
    r = train(SMALL, TrainConfig(epochs=1, batch_size=64), images, progress=False)
    assert len(r.history["train_loss"]) == 1 and r.history["test_elbo"] == [] and r.history["test_kl_per_dim"] == []


def test_same_seed_same_numbers(images, trained):
    again = train(SMALL, FAST, images[:448], images[448:], progress=False)
    assert again.history["train_loss"] == trained.history["train_loss"]
    assert again.history["test_elbo"] == trained.history["test_elbo"]
    assert same_params(again.model, trained.model)
    other = train(SMALL, TrainConfig(epochs=2, batch_size=64, seed=4), images[:448], progress=False)
    assert other.history["train_loss"] != trained.history["train_loss"]


WARM = [float(np.mean([linear_warmup(s, 2 * STEPS, 1.0) for s in range(e * STEPS, (e + 1) * STEPS)]))
        for e in range(2)]


@pytest.mark.parametrize("cfg, kl_weight", [
    # the warm-up weights of each step, averaged over the epoch (0/16 .. 7/16, then 8/16 .. 15/16)
    (TrainConfig(epochs=2, batch_size=64, warmup_epochs=2), WARM),
    (TrainConfig(epochs=2, batch_size=64, warmup_epochs=2, beta=2.0), [2 * w for w in WARM]),
    (TrainConfig(epochs=1, batch_size=64, beta=0.0), [0.0]),
    (TrainConfig(epochs=1, batch_size=64, objective="iwae", iwae_k=5), [np.nan]),
    # C = 0: KL > C for every image, so the weight is +gamma
    (TrainConfig(epochs=1, batch_size=64, objective="capacity", capacity_max=0.0, gamma=7.0), [7.0]),
    # C jumps from 0 (step 0, weight +gamma) to 1e6 (steps 1..7, weight -gamma)
    (TrainConfig(epochs=2, batch_size=64, objective="capacity", capacity_max=1e6, capacity_epochs=1e-9, gamma=8.0),
     [(8.0 - 7 * 8.0) / STEPS, -8.0]),
    (TrainConfig(epochs=1, batch_size=64, objective="capacity", capacity_max=5, capacity_epochs=1), None),
    (TrainConfig(epochs=1, batch_size=64, final_learning_rate=1e-4), [1.0]),
    (TrainConfig(epochs=2, batch_size=64, lr_stages=((1, 1e-3), (1, 1e-4))), [1.0, 1.0]),
], ids=["warmup", "warmup-beta2", "beta0", "iwae", "capacity-c0", "capacity-jump", "capacity", "cosine", "stages"])
def test_objectives_run_and_record_their_kl_weight(images, cfg, kl_weight):
    r = train(SMALL, cfg, images, progress=False)
    assert np.isfinite(r.history["train_loss"]).all() and len(r.history["train_loss"]) == cfg.epochs
    if kl_weight is not None:
        np.testing.assert_allclose(r.history["kl_weight"], kl_weight, rtol=1e-5)
    if cfg.objective == "capacity":
        assert all(abs(w) <= cfg.gamma for w in r.history["kl_weight"])


def test_plain_autoencoder_and_gaussian_decoder_train(images):
    ae = train(ModelConfig(latent_dim=2, hidden=(16,), deterministic=True), FAST, images, progress=False)
    assert all(k == 0 for k in ae.history["train_kl"])
    g = train(ModelConfig(latent_dim=2, hidden=(16,), likelihood="gaussian", obs_std=None),
              TrainConfig(epochs=2, batch_size=64, binarize=False), images, progress=False)
    assert g.history["train_loss"][-1] < g.history["train_loss"][0]
    log_std = params_to_arrays(g.model)["log_std"]
    assert log_std.shape == (784,) and not np.allclose(log_std, 0.0)  # learned


def test_nan_is_reported_with_epoch_and_term(images):
    arrays = params_to_arrays(build_model(SMALL, 0))
    bias = arrays["decoder/output/bias"].copy()
    bias[0] = np.nan
    broken = model_from_arrays(SMALL, {**arrays, "decoder/output/bias": bias})
    with pytest.raises(FloatingPointError, match=r"epoch 1, step 1 .*reconstruction term"):
        train(SMALL, FAST, images, init=broken, progress=False)


def test_init_starts_from_the_given_model_and_leaves_it_alone(images, trained):
    before = params_to_arrays(trained.model)
    tiny = TrainConfig(epochs=1, batch_size=64, learning_rate=1e-12)
    r = train(SMALL, tiny, images, init=trained.model, progress=False)
    after = params_to_arrays(r.model)
    assert all(np.allclose(after[k], before[k], atol=1e-6) for k in before)
    fresh = params_to_arrays(train(SMALL, tiny, images, progress=False).model)
    assert not np.allclose(fresh["encoder/hidden/0/kernel"], before["encoder/hidden/0/kernel"], atol=1e-3)
    now = params_to_arrays(trained.model)  # init's buffers were copied, not donated
    assert all(np.array_equal(now[k], before[k]) for k in before)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((10, 783), np.float32), "x_train has 783 pixels"),
    (np.zeros((10, 28, 28), np.float32), "x_train must be a 2-d array"),
    (np.zeros((10, 784), np.uint8), "x_train has dtype uint8"),
    (np.full((10, 784), 2.0, np.float32), r"x_train has values in \[2, 2\]"),
    (np.full((10, 784), np.nan, np.float32), "x_train contains NaN"),
    (np.zeros((10, 784), np.float32), "fewer than batch_size=64"),
])
def test_bad_input_names_the_argument(bad, match):
    with pytest.raises(ValueError, match=match):
        train(SMALL, FAST, bad, progress=False)


def test_bad_test_images_are_named(images):
    with pytest.raises(ValueError, match="x_test has 10 pixels"):
        train(SMALL, FAST, images, np.zeros((4, 10), np.float32), progress=False)


def test_non_binary_targets_rejected_without_binarization(images):
    with pytest.raises(ValueError, match="must be binary"):
        train(SMALL, TrainConfig(epochs=1, batch_size=64, binarize=False), images, progress=False)


@pytest.mark.parametrize("kwargs, match", [
    ({"beta": -1.0}, "beta must be >= 0"), ({"iwae_k": 0}, "iwae_k must be >= 1"),
    ({"objective": "mse"}, "objective must be one of"), ({"learning_rate": 0}, "learning_rate"),
    ({"epochs": 0}, "epochs and batch_size"), ({"batch_size": 0}, "epochs and batch_size"),
    ({"epochs": 4, "lr_stages": ((1, 1e-3), (2, 1e-4))}, "lr_stages cover 3 epochs, not epochs=4"),
    ({"corruption": "blur", "corruption_level": 1}, "corruption must be None or one of"),
    ({"corruption": "flip", "corruption_level": 1.5}, "does not fit corruption 'flip'"),
    ({"corruption": "mask", "corruption_level": 2.5}, "does not fit corruption 'mask'"),
    ({"corruption": "flip", "corruption_level": 0.1, "objective": "iwae"}, "needs objective 'elbo' or 'capacity'"),
])
def test_bad_train_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_train_config_round_trip():
    cfg = TrainConfig(epochs=3, lr_stages=[[1, 1e-3], [2, 1e-4]], final_learning_rate=None, eval_images=10)
    assert cfg.lr_stages == ((1, 1e-3), (2, 1e-4))
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    import json

    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # lists from JSON


def _learning_rates(tx, n_steps: int) -> list[float]:
    """The rate Adam applies at each step: with a constant gradient 1, its update is -lr / (1 + eps)."""
    params = {"w": jnp.zeros(())}
    state = tx.init(params)
    rates = []
    for _ in range(n_steps):
        updates, state = tx.update({"w": jnp.ones(())}, state, params)
        rates.append(-float(updates["w"]))
    return rates


def test_make_optimizer_schedules():
    stages = TrainConfig(epochs=3, lr_stages=((1, 1e-2), (2, 1e-3)))
    np.testing.assert_allclose(_learning_rates(make_optimizer(stages, 4), 12), [1e-2] * 4 + [1e-3] * 8, rtol=1e-4)
    three = TrainConfig(epochs=6, lr_stages=((1, 3e-3), (2, 2e-3), (3, 1e-3)))
    np.testing.assert_allclose(_learning_rates(make_optimizer(three, 2), 12), [3e-3] * 2 + [2e-3] * 4 + [1e-3] * 6,
                               rtol=1e-4)
    constant = _learning_rates(make_optimizer(TrainConfig(epochs=2, learning_rate=5e-3), 3), 6)
    np.testing.assert_allclose(constant, [5e-3] * 6, rtol=1e-4)
    cosine = _learning_rates(make_optimizer(TrainConfig(epochs=2, learning_rate=1e-2, final_learning_rate=1e-4), 5),
                             11)
    np.testing.assert_allclose(cosine[0], 1e-2, rtol=1e-4)
    np.testing.assert_allclose(cosine[10], 1e-4, rtol=1e-3)  # after all 10 steps: the final rate
    np.testing.assert_allclose(cosine[5], (1e-2 + 1e-4) / 2, rtol=1e-3)  # half-way down the cosine
    assert all(a > b for a, b in zip(cosine[:10], cosine[1:11]))
    adam = TrainConfig(adam_b1=0.5, adam_b2=0.9, adam_eps=1e-3)  # the moments reach optax.adam
    g = {"w": jnp.array([0.3])}
    mine, ref = make_optimizer(adam, 1), optax.adam(1e-3, b1=0.5, b2=0.9, eps=1e-3)
    np.testing.assert_allclose(mine.update(g, mine.init(g), g)[0]["w"], ref.update(g, ref.init(g), g)[0]["w"])


def test_loss_spec_converts_epochs_to_steps():
    cfg = TrainConfig(objective="capacity", beta=3.0, warmup_epochs=1.5, iwae_k=4, capacity_max=12.0,
                      capacity_epochs=2.5, gamma=5.0)
    assert loss_spec(cfg, 10) == LossSpec(objective="capacity", beta=3.0, warmup_steps=15, iwae_k=4,
                                          capacity_max=12.0, capacity_steps=25, gamma=5.0)
    assert loss_spec(TrainConfig(capacity_epochs=0.0), 10).capacity_steps == 1  # never a division by 0
    assert loss_spec(TrainConfig(), 7).warmup_steps == 0


def test_beta_tcvae_trains_and_records_its_kl_decomposition(images, trained):
    cfg = TrainConfig(epochs=2, batch_size=64, objective="beta_tcvae", beta=6.0, seed=3)
    r = train(SMALL, cfg, images, progress=False)
    h = r.history
    for key in ("train_loss", "train_rec", "train_kl", "train_mi", "train_tc", "train_dim_kl"):
        assert len(h[key]) == 2 and np.isfinite(h[key]).all(), key
    assert h["kl_weight"] == [1.0, 1.0]  # the weight on MI and dim-KL; TC gets beta times it
    # the terms are those of each minibatch's own aggregate posterior (N = 1): a TC of a few nats
    # at most (with the training set's N = 512 it would read 3 log 512 = 18.7 nats higher)
    assert all(0.0 <= tc < 5.0 for tc in h["train_tc"]), h["train_tc"]
    # mi + tc + dim_kl is the one-sample KL, whose epoch mean is near the analytic train_kl
    total = np.add(np.add(h["train_mi"], h["train_tc"]), h["train_dim_kl"])
    np.testing.assert_allclose(total, h["train_kl"], atol=0.5)
    # loss = -rec + kl + (beta - 1) tc, averaged over the epoch's steps
    np.testing.assert_allclose(h["train_loss"], -np.array(h["train_rec"]) + h["train_kl"] + 5.0 * np.array(h["train_tc"]),
                               rtol=1e-4)
    assert trained.history["train_tc"] == [] and trained.history["train_mi"] == []  # other objectives: empty



def test_denoising_training_corrupts_inputs_and_keeps_clean_targets(images, trained):
    """cfg.corruption trains on corrupted inputs against clean targets: the recorded
    reconstruction term is the clean target's, and each corruption changes the run."""
    base = dict(epochs=1, batch_size=64, seed=0)
    runs = {kind: train(SMALL, TrainConfig(**base, corruption=kind, corruption_level=level), images, progress=False)
            for kind, level in (("flip", 0.2), ("mask", 8))}
    clean = train(SMALL, TrainConfig(**base), images, progress=False)
    for r in runs.values():
        assert np.isfinite(r.history["train_loss"]).all()
        assert not same_params(r.model, clean.model)
    # heavy flips: the encoder sees noise, so the clean-target reconstruction is worse than for clean inputs
    assert runs["flip"].history["train_rec"][0] < clean.history["train_rec"][0]
    with pytest.raises(ValueError, match="cannot be combined with cfg.corruption"):
        make_epoch_fn(trained.model, TrainConfig(**base, corruption="flip", corruption_level=0.1), None, 512,
                      loss=lambda *a: None)


def test_evaluate_scores_a_target(trained, test_bin):
    noisy = 1.0 - test_bin
    t = evaluate(trained.model, noisy, jax.random.PRNGKey(1), target=test_bin)
    per = elbo_per_example(trained.model, noisy, jax.random.PRNGKey(1), target=test_bin)
    direct = elbo_terms(trained.model, jnp.asarray(noisy), jax.random.PRNGKey(1), target=jnp.asarray(test_bin))
    assert np.isclose(float(per["rec"].mean()), float(t["rec"]), atol=1e-3)
    assert np.isclose(float(direct["kl"].mean()), float(t["kl"]), atol=1e-3)
    plain = evaluate(trained.model, noisy, jax.random.PRNGKey(1))
    assert np.isclose(float(plain["kl"]), float(t["kl"]), atol=1e-4) and not np.isclose(float(plain["rec"]), float(t["rec"]))
    with pytest.raises(ValueError, match="target must have the shape of x"):
        evaluate(trained.model, noisy, jax.random.PRNGKey(1), target=test_bin[:3])

def test_callback_sees_every_epoch_and_can_stop(images):
    cfg = TrainConfig(epochs=3, batch_size=64, seed=1)
    seen = []

    def record(end):
        assert isinstance(end, EpochEnd)
        seen.append((end.epoch, len(end.history["train_loss"]), params_to_arrays(end.model())))
        return None

    full = train(SMALL, cfg, images[:448], images[448:], callback=record, progress=False)
    assert [(e, n) for e, n, _ in seen] == [(1, 1), (2, 2), (3, 3)]
    last = seen[-1][2]  # a copy taken at the end of epoch 3 is the final model
    assert all(np.array_equal(last[k], v) for k, v in params_to_arrays(full.model).items())
    assert not np.array_equal(seen[0][2]["decoder/output/kernel"], last["decoder/output/kernel"])

    stopped = train(SMALL, cfg, images[:448], images[448:], callback=lambda end: end.epoch == 2, progress=False)
    assert len(stopped.history["train_loss"]) == 2
    assert stopped.history["train_loss"] == full.history["train_loss"][:2]
    assert all(np.array_equal(seen[1][2][k], v) for k, v in params_to_arrays(stopped.model).items())


def test_resume_continues_exactly_like_an_uninterrupted_run(images):
    cfg = TrainConfig(epochs=3, batch_size=64, seed=2, final_learning_rate=1e-4)
    full = train(SMALL, cfg, images[:448], images[448:], progress=False)
    states = []

    def stop_after_first(end):
        states.append(end.state())
        return True

    first = train(SMALL, cfg, images[:448], images[448:], callback=stop_after_first, progress=False)
    state = states[0]
    assert isinstance(state, TrainingState) and state.epochs_done == 1 and len(state.history["train_loss"]) == 1
    assert len(first.history["train_loss"]) == 1
    rest = train(SMALL, cfg, images[:448], images[448:], resume=state, progress=False)
    assert without_seconds(rest.history) == without_seconds(full.history)
    assert len(rest.history["seconds"]) == 3
    assert same_params(rest.model, full.model)
    # the state is a copy: resuming did not change it
    assert state.epochs_done == 1 and len(state.history["train_loss"]) == 1
    again = train(SMALL, cfg, images[:448], images[448:], resume=state, progress=False)
    assert same_params(again.model, full.model)


def test_custom_loss_is_used(images):
    def reconstruction_only(model, x, key, step):
        t = elbo_terms(model, x, key)
        return -jnp.mean(t["rec"]), {"rec": t["rec"], "kl": t["kl"], "kl_weight": jnp.asarray(step, jnp.float32)}

    cfg = TrainConfig(epochs=2, batch_size=64)
    r = train(SMALL, cfg, images, loss=reconstruction_only, progress=False)
    h = r.history
    np.testing.assert_allclose(h["train_loss"], -np.array(h["train_rec"]), rtol=1e-5)
    # the step counter reaches the loss: steps 0..7, then 8..15
    np.testing.assert_allclose(h["kl_weight"], [np.mean(range(STEPS)), np.mean(range(STEPS, 2 * STEPS))])
    default = train(SMALL, cfg, images, progress=False).history
    assert default["train_loss"][0] > -default["train_rec"][0] + 1e-3  # the ELBO's loss also counts the KL
    assert h["train_kl"][-1] > default["train_kl"][-1]  # nothing held the KL down


def test_python_loop_epoch_matches_scan_epoch(images):
    """The per-step loop (used for conv models on CPU) and the scan take the same steps."""
    model = build_model(SMALL, jax.random.PRNGKey(0))
    tx = make_optimizer(FAST, 7)
    x = jnp.asarray(images[:448])
    out = {}
    for loop in ("scan", "python"):
        p = jax.tree_util.tree_map(jnp.array, nnx.state(model))
        run = make_epoch_fn(model, FAST, tx, len(x), loop=loop)
        out[loop] = run(p, tx.init(p), jnp.zeros((), jnp.int32), x, jax.random.PRNGKey(5))
    assert int(out["scan"][2]) == int(out["python"][2]) == 448 // FAST.batch_size
    for name in ("loss", "rec", "kl", "kl_weight"):
        assert out["python"][3][name].shape == (7,)
        np.testing.assert_allclose(out["python"][3][name], out["scan"][3][name], rtol=1e-4, atol=1e-4)
    for a, b in zip(jax.tree_util.tree_leaves(out["scan"][0]), jax.tree_util.tree_leaves(out["python"][0])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    trained_model = nnx.merge(nnx.graphdef(model), out["scan"][0])
    assert not same_params(trained_model, model)
    with pytest.raises(ValueError, match="loop must be"):
        make_epoch_fn(model, FAST, tx, len(x), loop="while")


def test_epoch_fn_takes_a_custom_loss(images):
    model = build_model(SMALL, 0)
    tx = make_optimizer(FAST, 7)
    x = jnp.asarray(images[:448])

    def constant(m, xb, key, step):
        rec = jnp.zeros(xb.shape[0])
        return 0.0 * jnp.sum(m.encode(xb).mean) + 3.0, {"rec": rec, "kl": rec, "kl_weight": jnp.asarray(0.5)}

    p = jax.tree_util.tree_map(jnp.array, nnx.state(model))
    params, _, step, metrics = make_epoch_fn(model, FAST, tx, len(x), loss=constant)(
        p, tx.init(p), jnp.asarray(10, jnp.int32), x, jax.random.PRNGKey(0))
    assert int(step) == 17
    np.testing.assert_allclose(metrics["loss"], 3.0)
    np.testing.assert_allclose(metrics["kl_weight"], 0.5)
    assert same_params(nnx.merge(nnx.graphdef(model), params), model)  # zero gradient: nothing moved


def test_conv_models_on_cpu_default_to_the_python_loop():
    conv = ModelConfig(latent_dim=2, hidden=(8,), architecture="conv", image_shape=(32, 32), conv_channels=(2, 2, 2, 2))
    model = build_model(conv, jax.random.PRNGKey(0))
    run = make_epoch_fn(model, FAST, make_optimizer(FAST, 1), 128)
    is_python_loop = run.__name__ == "run_epoch_python"
    assert is_python_loop == (jax.default_backend() == "cpu")
    mlp = make_epoch_fn(build_model(SMALL, 0), FAST, make_optimizer(FAST, 1), 128)
    assert mlp.__name__ != "run_epoch_python"


# ----------------------------------------------------------------------------- evaluation
def test_evaluate_and_log_marginal_likelihood(trained, test_bin):
    model, x = trained.model, test_bin
    means = evaluate(model, x, jax.random.PRNGKey(1))
    assert np.allclose(means["elbo"], means["rec"] - means["kl"], atol=1e-3)
    assert means["kl_per_dim"].shape == (SMALL.latent_dim,)
    assert np.isclose(float(means["kl"]), float(means["kl_per_dim"].sum()), atol=1e-3)
    beta = evaluate(model, x, jax.random.PRNGKey(1), beta=3.0)
    assert np.isclose(float(beta["elbo"]), float(means["rec"] - 3.0 * means["kl"]), atol=1e-3)
    per = elbo_per_example(model, x, jax.random.PRNGKey(1), batch_size=10)
    assert per["elbo"].shape == (64,) and per["kl_per_dim"].shape == (64, SMALL.latent_dim)
    same_batches = elbo_per_example(model, x, jax.random.PRNGKey(1))  # one batch of 64, as evaluate's
    assert np.isclose(float(same_batches["elbo"].mean()), float(means["elbo"]), atol=1e-4)
    ll = log_marginal_likelihood(model, x, jax.random.PRNGKey(2), k=200, k_chunk=50, batch_size=7)
    assert ll.shape == (64,) and np.isfinite(ll).all()
    # log p(x) estimate lies above the ELBO on average (L_k >= L_1)
    assert float(ll.mean()) > float(means["elbo"])
    ll_bar = log_marginal_likelihood(model, x, jax.random.PRNGKey(2), k=200, k_chunk=50, batch_size=7,
                                        progress=True)
    assert ll_bar.shape == (64,) and abs(float(ll_bar.mean() - ll.mean())) < 1.0
    # decoding in parts (any size, the last one padded) gives the same draws and numbers
    for rows in (None, 7, 30, 100):
        parts = log_marginal_likelihood(model, x, jax.random.PRNGKey(2), k=200, k_chunk=50, batch_size=7,
                                        decoder_rows=rows)
        np.testing.assert_allclose(parts, ll, atol=1e-4)
    with pytest.raises(ValueError, match="decoder_rows"):
        log_marginal_likelihood(model, x, jax.random.PRNGKey(2), k=200, k_chunk=50, decoder_rows=0)
    with pytest.raises(ValueError, match="k must be >= 1"):
        log_marginal_likelihood(model, x, jax.random.PRNGKey(2), k=0)
    with pytest.raises(ValueError, match="multiple of k_chunk"):
        log_marginal_likelihood(model, x, jax.random.PRNGKey(2), k=120, k_chunk=50)
    with pytest.raises(ValueError, match="x has 10 pixels"):
        evaluate(model, np.zeros((3, 10), np.float32), jax.random.PRNGKey(0))


def test_log_marginal_likelihood_is_exact_on_the_exact_model():
    rng = np.random.default_rng(1)
    lg = LinearGaussian(rng.normal(size=(5, 2)), rng.normal(size=5) * 0.1 + 0.5, 0.3)
    x = np.clip(lg.sample(rng, 20), 0, 1).astype(np.float32)  # check_images wants [0, 1]
    ll = log_marginal_likelihood(lg.as_vae("full"), x, jax.random.PRNGKey(0), k=1000, k_chunk=100)
    assert np.allclose(ll, lg.log_evidence(x), atol=1e-3)


def test_log_marginal_likelihood_takes_a_given_proposal():
    """post= replaces the encoder's q: the exact posterior as proposal makes a diagonal VAE's
    estimate exact; the encoder's own q reproduces the default draw for draw."""
    rng = np.random.default_rng(1)
    lg = LinearGaussian(rng.normal(size=(5, 2)), rng.normal(size=5) * 0.1 + 0.5, 0.3)
    x = np.clip(lg.sample(rng, 20), 0, 1).astype(np.float32)
    diag, exact = lg.as_vae("diagonal"), lg.as_vae("full").encode(jnp.asarray(x))
    key = jax.random.PRNGKey(0)
    own = log_marginal_likelihood(diag, x, key, k=100, k_chunk=50)
    assert not np.allclose(own, lg.log_evidence(x), atol=1e-3)  # the diagonal q is not exact
    ll = log_marginal_likelihood(diag, x, key, k=100, k_chunk=50, post=exact, batch_size=7)
    assert np.allclose(ll, lg.log_evidence(x), atol=1e-3)
    bar = log_marginal_likelihood(diag, x, key, k=100, k_chunk=50, post=exact, batch_size=3, progress=True)
    assert np.allclose(bar, lg.log_evidence(x), atol=1e-3)  # the progress path slices q with x
    same = log_marginal_likelihood(diag, x, key, k=100, k_chunk=50, post=diag.encode(jnp.asarray(x)))
    np.testing.assert_allclose(same, own, rtol=1e-6)
    with pytest.raises(ValueError, match=r"post.mean must have shape \[20, 2\]"):
        log_marginal_likelihood(diag, x, key, k=100, post=diag.encode(jnp.asarray(x[:5])))
    with pytest.raises(TypeError, match="must be a vae_core Posterior"):
        log_marginal_likelihood(diag, x, key, k=100, post=(np.zeros((20, 2)), np.zeros((20, 2))))


def test_encode_decode_and_active_units(trained, images):
    model = trained.model
    post = encode(model, images, batch_size=100)
    assert post.mean.shape == post.log_diag.shape == (512, SMALL.latent_dim)
    assert np.allclose(post.mean[:5], model.encode(jnp.asarray(images[:5])).mean, atol=1e-5)
    pix = decode_mean(model, post.mean[:3])
    assert pix.shape == (3, 784) and float(pix.min()) >= 0 and float(pix.max()) <= 1
    count, variances = active_units(model, images)
    assert variances.shape == (SMALL.latent_dim,) and count == int((variances > 0.01).sum())
    # zero the encoder's mean head: no latent varies with the data any more
    arrays = params_to_arrays(model)
    kernel = arrays["encoder/head/linear/kernel"].copy()
    kernel[:, :SMALL.latent_dim] = 0.0
    dead = model_from_arrays(SMALL, {**arrays, "encoder/head/linear/kernel": kernel})
    assert active_units(dead, images)[0] == 0


def test_decode_mean_for_each_likelihood(trained):
    z = jax.random.normal(jax.random.PRNGKey(3), (5, SMALL.latent_dim))
    bern = decode_mean(trained.model, z)
    assert np.allclose(bern, jax.nn.sigmoid(trained.model.decoder_output(z)), atol=1e-6)
    gauss = build_model(ModelConfig(latent_dim=4, hidden=(8,), likelihood="gaussian"), 1)
    means = decode_mean(gauss, z)
    assert np.allclose(means, gauss.decoder_output(z), atol=1e-6)
    assert float(means.min()) < 0  # raw means, not squashed into [0, 1]
    for bad in (np.zeros((5, 3)), np.zeros(4), np.zeros((2, 5, 4))):
        with pytest.raises(ValueError, match=r"codes must be \[n, 4\]"):
            decode_mean(trained.model, bad)


def test_decoder_function_equals_decode_mean(trained):
    f = decoder_function(trained.model)
    z = np.random.default_rng(0).normal(size=(7, SMALL.latent_dim))
    assert np.allclose(f(z), decode_mean(trained.model, z), atol=1e-6)
    assert np.allclose(f(z[:1]), decode_mean(trained.model, z[:1]), atol=1e-6)
    # the parameters are captured when the function is made: later changes to the model are not seen
    model = build_model(SMALL, 0)
    g, before = decoder_function(model), np.asarray(decode_mean(model, z))
    nnx.update(model, jax.tree_util.tree_map(jnp.zeros_like, nnx.state(model)))
    assert np.allclose(g(z), before, atol=1e-6) and np.allclose(decode_mean(model, z), 0.5)


def test_reconstruct_decodes_the_posterior_means(trained, images):
    rec = reconstruct(trained.model, images[:9])
    assert isinstance(rec, np.ndarray) and rec.shape == (9, 784)
    expected = decode_mean(trained.model, encode(trained.model, images[:9]).mean)
    assert np.allclose(rec, expected, atol=1e-6)
    assert float(rec.min()) >= 0 and float(rec.max()) <= 1
    with pytest.raises(ValueError, match="x has 10 pixels"):
        reconstruct(trained.model, np.zeros((2, 10), np.float32))


def test_sample_prior_shapes_and_determinism(trained):
    z, x = sample_prior(trained.model, jax.random.PRNGKey(4), 6)
    assert isinstance(z, np.ndarray) and z.shape == (6, SMALL.latent_dim) and x.shape == (6, 784)
    assert np.allclose(x, decode_mean(trained.model, z), atol=1e-6)
    z2, x2 = sample_prior(trained.model, jax.random.PRNGKey(4), 6)
    assert np.array_equal(z, z2) and np.array_equal(x, x2)
    z3, _ = sample_prior(trained.model, jax.random.PRNGKey(5), 6)
    assert not np.array_equal(z, z3)
