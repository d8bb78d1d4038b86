"""Checkpoints, the model cache and resumable training (vae_core.checkpoint)."""
import dataclasses
import hashlib
import json
import os

import flax.serialization
import jax
import numpy as np
import pytest
from flax import nnx

from vae_core import checkpoint as ckpt
from vae_core.evaluate import evaluate
from vae_core.models import ModelConfig, build_model, params_to_arrays
from vae_core.train import TrainConfig, TrainResult, train

from conftest import FAST, SMALL  # noqa: E402  (the shared small model, see tests/conftest.py)


def same_params(a, b) -> bool:
    pa, pb = params_to_arrays(a), params_to_arrays(b)
    return sorted(pa) == sorted(pb) and all(np.array_equal(pa[k], pb[k]) for k in pa)


def without_seconds(history: dict) -> dict:
    return {k: v for k, v in history.items() if k != "seconds"}


def payload(path) -> dict:
    """The inner payload of a sealed checkpoint file, read with Flax's msgpack."""
    outer = flax.serialization.msgpack_restore(path.read_bytes())
    return flax.serialization.msgpack_restore(outer["payload"])


# ----------------------------------------------------------------------------- checkpoints
def test_checkpoint_roundtrip_and_errors(trained, images, tmp_path):
    path = ckpt.save_checkpoint(tmp_path / "m.msgpack", trained)
    assert path == tmp_path / "m.msgpack"
    back = ckpt.load_checkpoint(path, model_config=SMALL, train_config=FAST)
    assert same_params(back.model, trained.model)
    assert back.history["test_elbo"] == trained.history["test_elbo"] and back.history == trained.history
    assert back.model_config == SMALL and back.train_config == FAST and back.extra == {}
    x = np.asarray(jax.random.bernoulli(jax.random.PRNGKey(0), images[448:]), np.float32)
    a, b = (evaluate(r.model, x, jax.random.PRNGKey(1)) for r in (back, trained))
    assert all(np.array_equal(a[k], b[k]) for k in a)  # the same numbers, bit for bit
    assert [p.name for p in tmp_path.iterdir()] == ["m.msgpack"]  # no temporary file left behind
    with pytest.raises(ckpt.CheckpointError, match="different model config.*latent_dim"):
        ckpt.load_checkpoint(path, model_config=ModelConfig(latent_dim=5, hidden=(32,)))
    with pytest.raises(ckpt.CheckpointError, match="different training config.*epochs"):
        ckpt.load_checkpoint(path, train_config=TrainConfig(epochs=3, batch_size=64, seed=3))
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (tmp_path / "flipped.msgpack").write_bytes(bytes(blob))
    with pytest.raises(ckpt.CheckpointError, match="flipped.msgpack is corrupt"):
        ckpt.load_checkpoint(tmp_path / "flipped.msgpack")
    (tmp_path / "short.msgpack").write_bytes(path.read_bytes()[:100])
    with pytest.raises(ckpt.CheckpointError, match="short.msgpack is corrupt"):
        ckpt.load_checkpoint(tmp_path / "short.msgpack")
    (tmp_path / "garbage.msgpack").write_bytes(b"\x00garbage")
    with pytest.raises(ckpt.CheckpointError, match="garbage.msgpack is corrupt.*on_corrupt='retrain'"):
        ckpt.load_checkpoint(tmp_path / "garbage.msgpack")
    with pytest.raises(ckpt.CheckpointError, match="No checkpoint.*absent.msgpack"):
        ckpt.load_checkpoint(tmp_path / "absent.msgpack")
    with pytest.raises(ckpt.CheckpointError, match="do this instead"):
        ckpt.load_checkpoint(tmp_path / "flipped.msgpack", fix="do this instead")


def test_every_flipped_region_is_caught(trained, tmp_path):
    """A flipped byte anywhere (header, configs, parameters) gives CheckpointError, nothing else."""
    good = ckpt.save_checkpoint(tmp_path / "m.msgpack", trained).read_bytes()
    for i in np.linspace(0, len(good) - 1, 25).astype(int):
        blob = bytearray(good)
        blob[i] ^= 0x01
        (tmp_path / "bad.msgpack").write_bytes(bytes(blob))
        with pytest.raises(ckpt.CheckpointError, match="bad.msgpack"):
            ckpt.load_checkpoint(tmp_path / "bad.msgpack")


def test_extra_facts_travel_with_the_checkpoint(trained, tmp_path):
    card = {"name": "tiny", "epochs": 2, "metrics": {"elbo": -90.5}}
    path = ckpt.save_checkpoint(tmp_path / "m.msgpack", trained, extra=card)
    assert ckpt.load_checkpoint(path).extra == card


def test_device_arrays_are_stored_as_host_arrays(trained, tmp_path):
    model = build_model(SMALL, 0)
    device = jax.devices()[0]
    nnx.update(model, jax.device_put(nnx.state(trained.model), device))
    assert all(isinstance(a, jax.Array) for a in jax.tree_util.tree_leaves(nnx.state(model)))
    path = ckpt.save_checkpoint(tmp_path / "dev.msgpack", TrainResult(model, trained.history, SMALL, FAST))
    stored = payload(path)["params"]
    assert sorted(stored) == sorted(params_to_arrays(trained.model))
    assert all(type(a) is np.ndarray for a in stored.values())
    back = ckpt.load_checkpoint(path)
    assert same_params(back.model, trained.model)


@pytest.mark.parametrize("other, match", [
    (ModelConfig(latent_dim=4, hidden=(16,)),
     r"parameter decoder/hidden/0/bias has shape \(16,\) where the model has \(32,\)"),
    (ModelConfig(latent_dim=4, hidden=(32, 8)), r"unexpected \['decoder/hidden/1/bias'"),
    (ModelConfig(latent_dim=4, hidden=()), r"missing parameters \['decoder/hidden/0/bias'"),
])
def test_parameters_that_do_not_fit_the_config_are_named(trained, tmp_path, other, match):
    """A file whose parameters were made for another architecture than its config says."""
    mislabelled = TrainResult(build_model(other, 0), trained.history, SMALL, FAST)
    path = ckpt.save_checkpoint(tmp_path / "m.msgpack", mislabelled)
    with pytest.raises(ckpt.CheckpointError, match="m.msgpack does not fit its model config: .*" + match):
        ckpt.load_checkpoint(path)


def old_format_file(path):
    body = b"parameters of a Flax Linen model"
    path.write_bytes(flax.serialization.msgpack_serialize(
        {"format": "vae_core-checkpoint-1", "sha256": hashlib.sha256(body).hexdigest(), "payload": body}))
    return path


def test_old_format_names_flax_linen(tmp_path):
    path = old_format_file(tmp_path / "old.msgpack")
    with pytest.raises(ckpt.CheckpointError, match="old.msgpack was written by .*Flax Linen"):
        ckpt.load_checkpoint(path)


def test_unknown_format_is_named(trained, tmp_path):
    body = flax.serialization.msgpack_serialize({"meta": "{}"})
    path = tmp_path / "future.msgpack"
    path.write_bytes(flax.serialization.msgpack_serialize(
        {"format": "vae_core-checkpoint-9", "sha256": hashlib.sha256(body).hexdigest(), "payload": body}))
    with pytest.raises(ckpt.CheckpointError, match="vae_core-checkpoint-9"):
        ckpt.load_checkpoint(path)


# ----------------------------------------------------------------------------- the model cache
def test_train_or_load_caches_and_recovers(images, tmp_path, monkeypatch):
    monkeypatch.setenv(ckpt.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv("VAE_RETRAIN", raising=False)
    assert ckpt.cache_dir() == tmp_path
    first = ckpt.train_or_load("tiny", SMALL, FAST, images, progress=False)
    assert first.source == "trained"
    files = list(tmp_path.glob("tiny-*.msgpack"))
    assert len(files) == 1 and files[0] == ckpt.cache_path("tiny", SMALL, FAST, images)

    def no_training(*a, **k):
        raise AssertionError("the cached model should have been loaded")

    monkeypatch.setattr(ckpt, "train", no_training)
    again = ckpt.train_or_load("tiny", SMALL, FAST, images, progress=False)
    assert again.source == "cache" and again.history == first.history
    assert same_params(again.model, first.model)
    shared = ckpt.train_or_load("renamed", SMALL, FAST, images, progress=False)  # same settings
    assert shared.source == "cache" and shared.history == first.history and not list(tmp_path.glob("renamed-*"))
    files[0].write_bytes(b"garbage")
    with pytest.raises(ckpt.CheckpointError, match="corrupt"):
        ckpt.train_or_load("tiny", SMALL, FAST, images, progress=False)
    old_format_file(files[0])
    with pytest.raises(ckpt.CheckpointError, match="Flax Linen"):
        ckpt.train_or_load("tiny", SMALL, FAST, images, progress=False)
    with pytest.raises(ValueError, match="on_corrupt must be"):
        ckpt.train_or_load("tiny", SMALL, FAST, images, progress=False, on_corrupt="ignore")
    monkeypatch.undo()
    monkeypatch.setenv(ckpt.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv("VAE_RETRAIN", raising=False)
    healed = ckpt.train_or_load("tiny", SMALL, FAST, images, progress=False, on_corrupt="retrain")
    assert healed.source == "trained" and healed.history["train_loss"] == first.history["train_loss"]
    assert ckpt.load_checkpoint(files[0]).history["train_loss"] == first.history["train_loss"]
    forced = ckpt.train_or_load("tiny", SMALL, FAST, images, progress=False, retrain=True)
    assert forced.source == "trained"
    other = ckpt.cache_path("tiny", SMALL, TrainConfig(epochs=3, batch_size=64), images)
    assert other != files[0]
    assert os.fspath(other).startswith(os.fspath(tmp_path))
    assert ckpt.cache_path("tiny", SMALL, FAST, images[:256]) != files[0]  # other data, other file
    elsewhere = ckpt.cache_path("tiny", SMALL, FAST, images, directory=tmp_path / "sub")
    assert elsewhere.parent == tmp_path / "sub" and elsewhere.name == files[0].name


def test_find_cached_looks_for_the_same_hash_under_any_name(tmp_path):
    wanted = tmp_path / "mine-0123456789ab.msgpack"
    assert ckpt.find_cached(wanted) is None
    (tmp_path / "theirs-0123456789ab.msgpack").write_bytes(b"x")
    (tmp_path / "other-ba9876543210.msgpack").write_bytes(b"x")
    assert ckpt.find_cached(wanted) == tmp_path / "theirs-0123456789ab.msgpack"
    wanted.write_bytes(b"x")
    assert ckpt.find_cached(wanted) == wanted


# ----------------------------------------------------------------------------- resumable training
def test_training_state_round_trip(images, tmp_path):
    states = []
    cfg = TrainConfig(epochs=2, batch_size=64, seed=5)
    train(SMALL, cfg, images, callback=lambda end: states.append(end.state()) or True, progress=False)
    state = states[0]
    path = ckpt.save_training_state(tmp_path / "s.state", state, SMALL, cfg)
    back = ckpt.load_training_state(path, SMALL, cfg)
    assert back.epochs_done == 1 and back.history == state.history
    pure, pure_back = nnx.to_pure_dict(state.params), nnx.to_pure_dict(back.params)
    leaves, leaves_back = (jax.tree_util.tree_leaves_with_path(p) for p in (pure, pure_back))
    assert len(leaves) == len(leaves_back) == len(params_to_arrays(build_model(SMALL, 0)))
    for (ka, a), (kb, b) in zip(leaves, leaves_back):
        assert ka == kb and np.array_equal(a, b)
    opt_a, opt_b = jax.tree_util.tree_leaves(state.opt_state), jax.tree_util.tree_leaves(back.opt_state)
    assert len(opt_a) == len(opt_b) and all(np.array_equal(a, b) for a, b in zip(opt_a, opt_b))
    assert jax.tree_util.tree_structure(state.opt_state) == jax.tree_util.tree_structure(back.opt_state)
    with pytest.raises(ckpt.CheckpointError, match="different training config"):
        ckpt.load_training_state(path, SMALL, TrainConfig(epochs=3, batch_size=64, seed=5))
    with pytest.raises(ckpt.CheckpointError, match="different model config"):
        ckpt.load_training_state(path, ModelConfig(latent_dim=4, hidden=(16,)), cfg)
    (tmp_path / "bad.state").write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ckpt.CheckpointError, match="bad.state is corrupt.*afresh"):
        ckpt.load_training_state(tmp_path / "bad.state", SMALL, cfg)
    # a model checkpoint is not a training state, and the other way round
    with pytest.raises(ckpt.CheckpointError, match="format"):
        ckpt.load_checkpoint(path)


def test_train_resumable_in_chunks_equals_an_uninterrupted_run(images, tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=64, seed=6, warmup_epochs=2)
    full = train(SMALL, cfg, images[:448], images[448:], progress=False)
    state_path = tmp_path / "run.state"
    done = []
    for chunk in range(3):  # max_seconds=0: every call stops after one epoch, saving its state
        result, finished = ckpt.train_resumable(state_path, SMALL, cfg, images[:448], images[448:],
                                                max_seconds=0, progress=False)
        done.append((len(result.history["train_loss"]), finished))
        assert state_path.exists()
    assert done == [(1, False), (2, False), (3, True)]
    assert without_seconds(result.history) == without_seconds(full.history)
    assert same_params(result.model, full.model)
    # a finished state is only read back
    again, finished = ckpt.train_resumable(state_path, SMALL, cfg, images[:448], images[448:], progress=False)
    assert finished and without_seconds(again.history) == without_seconds(full.history)
    assert same_params(again.model, full.model)
    # without a deadline one call does it all
    whole, finished = ckpt.train_resumable(tmp_path / "whole.state", SMALL, cfg, images[:448], images[448:],
                                           progress=False)
    assert finished and same_params(whole.model, full.model)
    assert ckpt.load_training_state(tmp_path / "whole.state", SMALL, cfg).epochs_done == 3
    with pytest.raises(ckpt.CheckpointError, match="different training config"):
        ckpt.train_resumable(state_path, SMALL, TrainConfig(epochs=4, batch_size=64, seed=6), images,
                             progress=False)


def test_cache_key_ignores_fields_added_later_at_their_defaults(images):
    """A field added to TrainConfig keeps the cache key of a config at its default (the
    models cached before it still load); a non-default value gives another key."""
    from vae_core import __version__

    old_dict = {k: v for k, v in FAST.to_dict().items() if k not in ckpt.ADDED_TRAIN_FIELDS}
    spec = json.dumps([SMALL.to_dict(), old_dict, list(np.shape(images)), float(np.asarray(images[:64]).sum()),
                       __version__], sort_keys=True)
    digest = hashlib.sha256(spec.encode()).hexdigest()[:12]
    assert ckpt.cache_path("tiny", SMALL, FAST, images).name == f"tiny-{digest}.msgpack"
    noisy = dataclasses.replace(FAST, corruption="flip", corruption_level=0.1)
    assert ckpt.cache_path("tiny", SMALL, noisy, images) != ckpt.cache_path("tiny", SMALL, FAST, images)


def test_conditional_models_round_trip(tmp_path):
    import jax.numpy as jnp

    from vae_core.checkpoint import CheckpointError, load_conditional, save_conditional
    from vae_core.conditional import CompletionNet, ConditionalConfig, ConditionalResult, build_conditional

    cfg = ConditionalConfig(target_dim=16, cond_dim=3, latent_dim=2, hidden=(8,), n_classes=3, classifier_hidden=(4,))
    m2 = build_conditional(cfg, 5)
    tc = TrainConfig(epochs=2, batch_size=10)
    path = save_conditional(tmp_path / "m2.msgpack", ConditionalResult(m2, {"loss": [3.0, 2.0]}), tc,
                            extra={"alpha": 0.1, "label_seed": 0})
    loaded, train_cfg, extra = load_conditional(path, config=cfg, train_config=tc)
    x = jnp.asarray(np.random.default_rng(0).random((4, 16)), jnp.float32)
    np.testing.assert_array_equal(loaded.model.classify(x), m2.classify(x))
    assert loaded.history == {"loss": [3.0, 2.0]} and train_cfg == tc and extra == {"alpha": 0.1, "label_seed": 0}
    net = CompletionNet(ConditionalConfig(target_dim=8, cond_dim=8, latent_dim=1, hidden=(4,)), rngs=nnx.Rngs(params=1))
    p2 = save_conditional(tmp_path / "net.msgpack", ConditionalResult(net, {}), tc, dtype="float16")
    back, _, _ = load_conditional(p2)
    c = jnp.ones((2, 8))
    assert type(back.model) is CompletionNet
    np.testing.assert_allclose(back.model(c), net(c), atol=1e-2)  # float16 storage
    with pytest.raises(CheckpointError, match="different conditional model config"):
        load_conditional(path, config=ConditionalConfig(target_dim=16, cond_dim=3, latent_dim=3))
    with pytest.raises(CheckpointError, match="different training config"):
        load_conditional(path, train_config=TrainConfig(epochs=3))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_conditional(path)


def test_train_or_load_conditional_caches_by_configs_data_and_spec(tmp_path, capsys, monkeypatch):
    import jax.numpy as jnp

    from vae_core.checkpoint import CheckpointError, train_or_load_conditional
    from vae_core.conditional import ConditionalConfig, ConditionalResult, build_conditional

    monkeypatch.delenv("VAE_RETRAIN", raising=False)
    cfg = ConditionalConfig(target_dim=16, cond_dim=2, latent_dim=2, hidden=(8,))
    tc = TrainConfig(epochs=1, batch_size=10)
    data = (np.zeros((20, 16), np.float32), np.eye(2, dtype=np.float32)[np.arange(20) % 2])
    calls = []

    def fit(seed=0):
        calls.append(seed)
        return ConditionalResult(build_conditional(cfg, seed), {"loss": [1.0]})

    first = train_or_load_conditional("cvae", cfg, tc, fit, data=data, spec={"alpha": 1}, directory=tmp_path)
    again = train_or_load_conditional("cvae", cfg, tc, fit, data=data, spec={"alpha": 1}, directory=tmp_path)
    assert calls == [0] and "trained model cvae" in capsys.readouterr().out.splitlines()[0]
    x, c = jnp.ones((1, 16)), jnp.ones((1, 2))
    np.testing.assert_array_equal(again.model.encode(x, c).mean, first.model.encode(x, c).mean)
    train_or_load_conditional("cvae", cfg, tc, fit, data=data, spec={"alpha": 2}, directory=tmp_path)
    train_or_load_conditional("cvae", cfg, tc, fit, data=(data[0] + 0.5, data[1]), spec={"alpha": 1},
                              directory=tmp_path)
    train_or_load_conditional("cvae", cfg, tc, fit, data=data, spec={"alpha": 1}, retrain=True, directory=tmp_path)
    assert calls == [0, 0, 0, 0] and len(list(tmp_path.glob("cvae-*.msgpack"))) == 3
    other = ConditionalConfig(target_dim=16, cond_dim=2, latent_dim=3, hidden=(8,))
    with pytest.raises(ValueError, match="fit\\(\\) returned a model of config"):
        train_or_load_conditional("bad", other, tc, fit, data=data, directory=tmp_path)
    alone = tmp_path / "alone"
    train_or_load_conditional("cvae", cfg, tc, fit, data=data, directory=alone)
    (cached,) = alone.glob("cvae-*.msgpack")
    cached.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="Delete .* or pass retrain=True"):
        train_or_load_conditional("cvae", cfg, tc, fit, data=data, directory=alone)


@pytest.mark.skipif(not os.environ.get("VAE_DATA_DIR"), reason="set VAE_DATA_DIR to the folder holding mnist.npz")
def test_is_mnist_split_recognizes_the_first_images_of_each_split():
    from vae_core.data import load_mnist
    mnist = load_mnist()
    assert ckpt.is_mnist_split(mnist.x_train[:50], "train")
    assert ckpt.is_mnist_split(mnist.x_test[:50], "test")
    assert not ckpt.is_mnist_split(mnist.x_test[:50], "train")
    assert not ckpt.is_mnist_split(mnist.x_train[1:51], "train")      # not the first images
    assert not ckpt.is_mnist_split(mnist.x_train[:50, :100], "train")  # not 784 pixels
    with pytest.raises(ValueError, match="split"):
        ckpt.is_mnist_split(mnist.x_train[:50], "validation")


def test_a_shipped_checkpoint_stores_its_history_compactly(trained, tmp_path):
    long = {k: list(v) * 200 for k, v in trained.history.items()}         # a long run's history
    long["note"] = ["a", "b"]                                               # not numbers: stays JSON
    result = TrainResult(trained.model, long, SMALL, FAST)
    plain = ckpt.save_checkpoint(tmp_path / "plain.msgpack", result)
    compact = ckpt.save_checkpoint(tmp_path / "compact.msgpack", result, dtype="float16")
    assert compact.stat().st_size < 0.6 * plain.stat().st_size
    back = ckpt.load_checkpoint(compact).history
    assert list(back) == list(long) and back["note"] == ["a", "b"]
    for k, v in long.items():
        if k != "note":
            np.testing.assert_allclose(np.asarray(back[k]), np.asarray(v), rtol=1e-6)
            assert isinstance(back[k], list)
    assert ckpt.load_checkpoint(plain).history == long                     # without a dtype: exact
