"""The shipped models' specs, cards and loading (vae_core.shipped, checkpoint.load_shipped)."""
import hashlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_core import checkpoint as ckpt
from vae_core import shipped
from vae_core.data import SHA256
from vae_core.models import ModelConfig, build_model
from vae_core.train import TrainConfig, TrainResult, make_optimizer

SMALL = ModelConfig(latent_dim=4, hidden=(32,))
FAST = TrainConfig(epochs=2, batch_size=64, seed=3)
CARD = {"name": "tiny", "epochs": 3280, "device": "NVIDIA H200 (gpu)", "train_minutes": 41.4,
        "test_logpx": -86.5049, "logpx_k": 5000, "logpx_images": 10000, "test_elbo": -90.123}


def _rates(tx, n_steps: int) -> np.ndarray:
    """The learning rate Adam applies at each step (constant gradient 1: update = -lr / (1 + eps))."""
    params = jnp.zeros(())

    def step(state, _):
        updates, state = tx.update(jnp.ones(()), state, params)
        return state, -updates

    return np.asarray(jax.jit(lambda s: jax.lax.scan(step, s, None, length=n_steps)[1])(tx.init(params)))


def test_iwae_protocol_is_the_papers_schedule():
    model_cfg, cfg = shipped.iwae_protocol()
    assert model_cfg == ModelConfig(latent_dim=50, hidden=(200, 200), activation="tanh")
    assert cfg.epochs == 3280 and sum(e for e, _ in cfg.lr_stages) == 3280
    assert len(cfg.lr_stages) == 8
    for i, (epochs, lr) in enumerate(cfg.lr_stages):
        assert epochs == 3**i and np.isclose(lr, 1e-3 * 10 ** (-i / 7), rtol=1e-12)
    assert (cfg.batch_size, cfg.adam_b1, cfg.adam_b2, cfg.adam_eps) == (20, 0.99, 0.999, 1e-4)
    assert cfg.objective == "elbo" and cfg.binarize
    _, iwae = shipped.iwae_protocol("iwae", 50)
    assert iwae.objective == "iwae" and iwae.iwae_k == 50 and iwae.lr_stages == cfg.lr_stages
    # the optimiser applies each stage's rate for exactly its epochs (here one step per epoch)
    rates = _rates(make_optimizer(cfg, 1), 3280)
    first = 0
    for i, (epochs, lr) in enumerate(cfg.lr_stages):
        stage = rates[first:first + epochs]
        np.testing.assert_allclose(stage, lr / (1 + cfg.adam_eps / 1.0), rtol=2e-3)  # Adam's eps shows here
        first += epochs
    assert first == len(rates)
    assert np.all(np.diff(rates) <= 1e-5 * rates[:-1])  # never rises (beyond float32 rounding)


def test_find_spec_matches_configs_exactly():
    for name, spec in shipped.SPECS.items():
        assert spec.name == name
        assert shipped.find_spec(spec.model_config, spec.train_config) is spec
    assert shipped.find_spec(*shipped.iwae_protocol("elbo", 1)).name == "iwae_protocol_vae"
    assert shipped.find_spec(*shipped.iwae_protocol("iwae", 50)).name == "iwae_protocol_iwae50"
    assert shipped.find_spec(*shipped.iwae_protocol("iwae", 5)) is None
    model_cfg, cfg = shipped.iwae_protocol()
    assert shipped.find_spec(model_cfg, TrainConfig.from_dict({**cfg.to_dict(), "seed": 1})) is None
    assert shipped.find_spec(ModelConfig(latent_dim=49, hidden=(200, 200), activation="tanh"), cfg) is None
    assert shipped.find_spec(SMALL, FAST) is None


def test_shipped_path_is_in_the_package():
    assert shipped.shipped_path("iwae_protocol_vae") == shipped.SHIPPED_DIR / "iwae_protocol_vae.msgpack"


def test_describe_reads_the_card():
    result = TrainResult(build_model(SMALL, 0), {}, SMALL, FAST, source="shipped", extra=CARD)
    assert shipped.describe(result) == (
        "shipped model tiny: 3,280 epochs on NVIDIA H200 (gpu) (41 min), test log p(x) -86.50 nats "
        "(k = 5000, 10,000 images), test ELBO -90.12 nats")
    bare = {k: CARD[k] for k in ("name", "epochs", "device", "train_minutes")}
    result.extra = bare
    assert shipped.describe(result) == "shipped model tiny: 3,280 epochs on NVIDIA H200 (gpu) (41 min)"
    result.extra = {}
    assert shipped.describe(result).startswith("shipped model ?")  # a card without facts still prints


def test_mnist_checksum_is_stable():
    expected = "9dc12a5b508cf62f86e48f65a7253dfe8dd517bece5d42512e6ac9d8d29b57de"
    assert shipped.mnist_checksum() == expected == shipped.mnist_checksum()
    assert hashlib.sha256("".join(SHA256[k] for k in sorted(SHA256)).encode()).hexdigest() == expected


def test_load_shipped_errors_name_the_file_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path)
    with pytest.raises(KeyError, match="nope.*iwae_protocol_vae"):
        ckpt.load_shipped("nope")
    with pytest.raises(ckpt.CheckpointError,
                       match=r"iwae_protocol_vae\.msgpack is missing.*scripts/train_shipped\.py iwae_protocol_vae"):
        ckpt.load_shipped("iwae_protocol_vae")
    (tmp_path / "iwae_protocol_vae.msgpack").write_bytes(b"\x93 half a file")
    with pytest.raises(ckpt.CheckpointError,
                       match=r"iwae_protocol_vae\.msgpack is corrupt.*scripts/train_shipped\.py iwae_protocol_vae"):
        ckpt.load_shipped("iwae_protocol_vae")


@pytest.fixture
def tiny_spec(tmp_path, monkeypatch):
    """A shipped spec for a tiny model, its file in a temporary SHIPPED_DIR."""
    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path / "shipped")
    monkeypatch.setitem(shipped.SPECS, "tiny", shipped.ShippedSpec("tiny", SMALL, FAST, purpose="a test",
                                                                    notebook="00"))
    monkeypatch.setenv(ckpt.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(shipped.RETRAIN_ENV, raising=False)
    model = build_model(SMALL, 7)
    ckpt.save_checkpoint(shipped.shipped_path("tiny"), TrainResult(model, {"train_loss": [1.0, 0.5]}, SMALL, FAST),
                         extra=CARD)
    return model


def test_load_shipped_reads_the_model_and_its_card(tiny_spec):
    result = ckpt.load_shipped("tiny")
    assert result.source == "shipped" and result.extra == CARD and result.history == {"train_loss": [1.0, 0.5]}
    assert result.model_config == SMALL and result.train_config == FAST
    x = jnp.full((2, 784), 0.5)
    assert np.array_equal(result.model.decoder_output(jnp.ones((2, 4))), tiny_spec.decoder_output(jnp.ones((2, 4))))
    assert np.array_equal(result.model.encode(x).mean, tiny_spec.encode(x).mean)


def test_train_or_load_prefers_the_shipped_model(tiny_spec, capsys, monkeypatch):
    images = np.full((128, 784), 0.5, np.float32)
    result = ckpt.train_or_load("anything", SMALL, FAST, images, progress=False)
    assert result.source == "shipped" and result.extra == CARD
    assert "shipped model tiny: 3,280 epochs" in capsys.readouterr().out
    monkeypatch.setenv(shipped.RETRAIN_ENV, "1")
    assert ckpt.retrain_requested()
    retrained = ckpt.train_or_load("anything", SMALL, FAST, images, progress=False)
    assert retrained.source == "trained" and len(retrained.history["train_loss"]) == FAST.epochs
    monkeypatch.setenv(shipped.RETRAIN_ENV, "0")
    assert not ckpt.retrain_requested()
