"""The shipped models' specs, cards and loading (vae_core.shipped, checkpoint.load_shipped)."""
import hashlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_core import checkpoint as ckpt
from vae_core import shipped
from vae_core.data import SHA256
from vae_core.evaluate import evaluate
from vae_core.models import ModelConfig, build_model, model_from_arrays, params_to_arrays
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
    result.extra = {**bare, "train_minutes": 0.4}
    assert shipped.describe(result) == "shipped model tiny: 3,280 epochs on NVIDIA H200 (gpu) (24 s)"
    result.extra = {}
    assert shipped.describe(result).startswith("shipped model ?")  # a card without facts still prints


def test_mnist_checksum_is_stable():
    expected = "9dc12a5b508cf62f86e48f65a7253dfe8dd517bece5d42512e6ac9d8d29b57de"
    assert shipped.mnist_checksum() == expected == shipped.mnist_checksum()
    assert hashlib.sha256("".join(SHA256[k] for k in sorted(SHA256)).encode()).hexdigest() == expected


@pytest.fixture
def ship_dir(tmp_path, monkeypatch):
    """An empty SHIPPED_DIR and model cache, no VAE_RETRAIN / VAE_SHIP."""
    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path / "shipped")
    monkeypatch.setenv(ckpt.CACHE_ENV, str(tmp_path / "cache"))
    for env in (shipped.RETRAIN_ENV, shipped.SHIP_ENV):
        monkeypatch.delenv(env, raising=False)
    return tmp_path / "shipped"


def _images(n=128, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, 784)).astype(np.float32)


@pytest.fixture
def tiny_shipped(ship_dir):
    """A tiny model shipped as 'tiny' (trained on _images()), and its card."""
    result = TrainResult(build_model(SMALL, 7), {"train_loss": [1.0, 0.5], "seconds": [30.0, 30.0]}, SMALL, FAST,
                         extra={"device": "CPU (x86_64)"})
    card = ckpt.ship_model("tiny", result, _images(), _images(64, 1),
                           {"notebook": "00_setup", "device": "CPU (x86_64)", "command": "make it"})
    return result, card


def test_data_fingerprint_tells_data_sets_apart():
    x = _images(200)
    assert shipped.data_fingerprint(x) == shipped.data_fingerprint(x.copy())
    changed = x.copy()
    changed[61] += 0.25  # same shape, other content (a row the fingerprint reads)
    assert shipped.data_fingerprint(changed) != shipped.data_fingerprint(x)
    assert shipped.data_fingerprint(x) != shipped.data_fingerprint(x[:100])   # a subset
    assert shipped.data_fingerprint(x) != shipped.data_fingerprint(_images(200, 1))
    assert len(shipped.data_fingerprint(x)) == 16


def test_ship_model_writes_float16_weights_and_a_card_measured_on_them(tiny_shipped):
    result, card = tiny_shipped
    assert shipped.load_cards() == {"tiny": card}
    assert ModelConfig.from_dict(card["model_config"]) == SMALL and TrainConfig.from_dict(card["train_config"]) == FAST
    assert card["epochs"] == 2 and card["train_minutes"] == 1.0 and card["notebook"] == "00_setup"
    assert card["train_data"] == shipped.data_fingerprint(_images()) and card["train_shape"] == [128, 784]
    assert card["test_images"] == 64 and card["stored_dtype"] == "float16"
    assert card["file_sha256"] == ckpt.file_sha256(shipped.shipped_path("tiny"))
    stored = ckpt.load_checkpoint(shipped.shipped_path("tiny"))
    arrays = {k: np.asarray(v) for k, v in params_to_arrays(result.model).items()}
    for k, v in params_to_arrays(stored.model).items():   # float16-rounded, loaded back as float32
        assert v.dtype == np.float32
        np.testing.assert_array_equal(v, arrays[k].astype(np.float16).astype(np.float32))
    x = ckpt.fixed_test_set(_images(64, 1), FAST)
    assert set(np.unique(np.asarray(x))) <= {0.0, 1.0}
    elbo = float(evaluate(stored.model, x, jax.random.PRNGKey(shipped.LOGPX_SEED))["elbo"])
    assert abs(elbo - card["test_elbo"]) < 1e-3
    assert abs(card["test_elbo"] - card["test_elbo_float32"]) < 0.5


def test_train_or_load_prefers_the_shipped_model(tiny_shipped, capsys, monkeypatch):
    result = ckpt.train_or_load("anything", SMALL, FAST, _images(), progress=False)
    assert result.source == "shipped" and result.extra["name"] == "tiny"
    assert "shipped model tiny: 2 epochs on CPU (x86_64) (1 min)" in capsys.readouterr().out
    # same configs, other data: not the shipped model
    assert ckpt.train_or_load("anything", SMALL, FAST, _images(seed=5), progress=False).source == "trained"
    other = TrainConfig.from_dict({**FAST.to_dict(), "seed": 4})
    assert ckpt.train_or_load("anything", SMALL, other, _images(), progress=False).source == "trained"
    monkeypatch.setenv(shipped.RETRAIN_ENV, "1")
    assert ckpt.retrain_requested()
    retrained = ckpt.train_or_load("anything", SMALL, FAST, _images(), progress=False)
    assert retrained.source == "trained" and len(retrained.history["train_loss"]) == FAST.epochs
    assert retrained.extra["device"] and retrained.extra["wall_seconds"] > 0
    monkeypatch.setenv(shipped.RETRAIN_ENV, "0")
    assert not ckpt.retrain_requested()


def test_a_damaged_or_missing_shipped_file_names_itself_and_the_fix(tiny_shipped):
    path = shipped.shipped_path("tiny")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ckpt.CheckpointError, match=r"tiny\.msgpack is corrupt or was changed.*"
                       r"scripts/ship_models\.py 00 --from-scratch.*VAE_RETRAIN=1"):
        ckpt.train_or_load("anything", SMALL, FAST, _images(), progress=False)
    path.unlink()
    with pytest.raises(ckpt.CheckpointError, match=r"tiny\.msgpack is missing.*git checkout"):
        ckpt.load_shipped("tiny")
    with pytest.raises(KeyError, match="nope.*tiny"):
        ckpt.load_shipped("nope")


def test_ship_mode_writes_the_notebooks_model_and_never_loads_a_shipped_one(ship_dir, monkeypatch):
    monkeypatch.setenv(shipped.SHIP_ENV, "00_setup_and_tour")
    result = ckpt.train_or_load("00_small", SMALL, FAST, _images(), _images(64, 1), progress=False)
    assert result.source == "trained"
    card = shipped.load_cards()["00_small"]
    assert card["notebook"] == "00_setup_and_tour" and card["mnist_sha256"] is None  # random images, not MNIST
    assert card["command"] == "python scripts/ship_models.py 00 --from-scratch"
    assert card["device"] == result.extra["device"] and card["epochs"] == FAST.epochs
    again = ckpt.train_or_load("00_small", SMALL, FAST, _images(), _images(64, 1), progress=False)
    assert again.source == "cache"   # from the cache, not from the shipped file it just wrote
    monkeypatch.delenv(shipped.SHIP_ENV)
    assert ckpt.train_or_load("00_small", SMALL, FAST, _images(), progress=False).source == "shipped"


def test_models_table_has_one_row_per_card(tiny_shipped):
    _, card = tiny_shipped
    table = shipped.models_table({"tiny": card, "tiny2": {**card, "name": "tiny2", "test_logpx": -90.5,
                                                           "test_logpx_stderr": 0.25, "logpx_k": 5000}})
    rows = [r for r in table.splitlines() if r.startswith("| `")]
    assert len(rows) == 2 and rows[0].startswith("| `tiny` | 00_setup |")
    assert "bernoulli VAE, MLP 32 relu, 4 latents" in rows[0] and "ELBO, beta = 1" in rows[0]
    assert "2 epochs, batch 64, 128 images, 1 min" in rows[0] and "—" in rows[0]
    assert "log p(x) -90.50 ± 0.25 (k = 5,000)" in rows[1]
    assert "MIG 0.123 (100 images)" in shipped.models_table({"t": {**card, "mig": 0.1234, "mig_images": 100}})
    gaussian = {**card, "model_config": {**card["model_config"], "likelihood": "gaussian"}, "test_logpx": 513.14,
                "test_logpx_stderr": 0.9, "logpx_k": 5000}
    assert "log density of the grey images 513.14 ± 0.90 (k = 5,000; not comparable" in shipped.models_table(
        {"g": gaussian})
    assert "2 models" in table


def test_ship_mode_ships_a_model_once_under_its_first_name(ship_dir, monkeypatch, capsys):
    monkeypatch.setenv(shipped.SHIP_ENV, "00_setup_and_tour")
    ckpt.train_or_load("00_first", SMALL, FAST, _images(), _images(64, 1), progress=False)
    ckpt.train_or_load("00_second", SMALL, FAST, _images(), _images(64, 1), progress=False)
    assert list(shipped.load_cards()) == ["00_first"]
    assert "not shipping 00_second: the same model is shipped as 00_first" in capsys.readouterr().out


def test_damaged_or_missing_cards_name_the_fix(tiny_shipped):
    path = shipped.cards_path()
    path.write_text("{ half a file")
    with pytest.raises(ValueError, match=r"cards\.json are damaged.*git checkout.*VAE_RETRAIN=1"):
        ckpt.train_or_load("anything", SMALL, FAST, _images(), progress=False)
    path.write_text('{"tiny": 3}')
    with pytest.raises(ValueError, match="damaged"):
        shipped.load_cards()
    path.unlink()
    with pytest.warns(UserWarning, match=r"cards\.json is missing.*will train"):
        assert shipped.load_cards() == {}


def test_a_card_written_before_a_config_field_existed_still_matches(tiny_shipped):
    _, card = tiny_shipped
    old = dict(card, train_config={k: v for k, v in card["train_config"].items() if k != "eval_images"})
    shipped.write_card(old)
    assert shipped.find_card(SMALL, FAST, _images())["name"] == "tiny"
    shipped.write_card(dict(card, name="other"))      # writing one card keeps the others
    assert sorted(shipped.load_cards()) == ["other", "tiny"]
    shipped.remove_card("other")
    assert sorted(shipped.load_cards()) == ["tiny"]


def test_ship_mode_without_test_images_says_so(ship_dir, monkeypatch, capsys):
    monkeypatch.setenv(shipped.SHIP_ENV, "00_setup_and_tour")
    ckpt.train_or_load("00_small", SMALL, FAST, _images(), progress=False)
    assert "not shipping 00_small: train_or_load got no x_test" in capsys.readouterr().out
    assert shipped.load_cards() == {}


def test_a_twin_keeps_the_name_that_has_a_purpose(ship_dir, monkeypatch, capsys):
    monkeypatch.setenv(shipped.SHIP_ENV, "00_setup_and_tour")
    monkeypatch.setitem(shipped.PURPOSES, "00_named", "the model with a purpose")
    ckpt.train_or_load("00_anonymous", SMALL, FAST, _images(), _images(64, 1), progress=False)
    ckpt.train_or_load("00_named", SMALL, FAST, _images(), _images(64, 1), progress=False)
    assert list(shipped.load_cards()) == ["00_named"]
    assert shipped.load_cards()["00_named"]["purpose"] == "the model with a purpose"
    assert not shipped.shipped_path("00_anonymous").exists() and shipped.shipped_path("00_named").exists()
    assert "shipping 00_named in place of 00_anonymous" in capsys.readouterr().out


def test_rebuild_commands():
    assert shipped.rebuild_command("iwae_protocol_vae") == (
        "python scripts/train_shipped.py iwae_protocol_vae (repeat until done), then --finish")
    assert shipped.rebuild_command("04_main_L20") == "python scripts/ship_models.py 04 --from-scratch"
    assert shipped.rebuild_command("mnist_vae_z20", "02_elbo") == "python scripts/ship_models.py 02 --from-scratch"


def test_fixed_test_set_binarizes_only_what_was_trained_binarized():
    x = _images(32)
    grey = TrainConfig.from_dict({**FAST.to_dict(), "binarize": False})
    np.testing.assert_array_equal(np.asarray(ckpt.fixed_test_set(x, grey)), x)
    once, again = np.asarray(ckpt.fixed_test_set(x, FAST)), np.asarray(ckpt.fixed_test_set(x, FAST))
    assert set(np.unique(once)) <= {0.0, 1.0} and np.array_equal(once, again)


def test_float16_storage_refuses_parameters_it_cannot_hold(tmp_path):
    model = build_model(SMALL, 0)
    arrays = params_to_arrays(model)
    arrays["decoder/output/bias"] = np.full_like(np.asarray(arrays["decoder/output/bias"]), 1e6)
    big = model_from_arrays(SMALL, arrays)
    with pytest.raises(ValueError, match=r"decoder/output/bias.*float16"):
        ckpt.save_checkpoint(tmp_path / "m.msgpack", TrainResult(big, {}, SMALL, FAST), dtype="float16")


def test_describe_calls_an_autoencoders_number_what_it_is():
    ae = {"name": "ae", "epochs": 2, "device": "CPU (x86_64)", "train_seconds": 42.0, "test_elbo": -143.2,
          "model_config": {"deterministic": True}}
    result = TrainResult(build_model(SMALL, 0), {}, SMALL, FAST, extra=ae)
    assert shipped.describe(result) == "shipped model ae: 2 epochs on CPU (x86_64) (42 s), test log p(x|z) -143.20 nats"


# ----------------------------------------------------------------------------- conditional models (notebook 07)
def test_conditional_models_ship_load_and_are_checked(ship_dir, monkeypatch, capsys):
    from vae_core.conditional import (CompletionNet, ConditionalConfig, ConditionalResult, build_conditional,
                                      split_images, observed_mask)
    from flax import nnx

    m2_cfg = ConditionalConfig(target_dim=784, cond_dim=10, latent_dim=2, hidden=(8,), n_classes=10,
                               classifier_hidden=(8,))
    tc = TrainConfig(epochs=1, batch_size=4)
    x_lab, y_lab, x_unl = _images(8), np.arange(8) % 10, _images(32, 2)
    x_test, y_test = _images(40, 1), np.arange(40) % 10
    spec = {"task": "label", "alpha": 1.0, "labelled_weight": 1.0, "labels": 8, "draw": 0}
    trained = ConditionalResult(build_conditional(m2_cfg, 1), {"loss": [2.0, 1.0], "seconds": [30.0, 30.0]})
    monkeypatch.setenv(shipped.SHIP_ENV, "07_conditional")
    ckpt.train_or_load_conditional("07_m2_draw0", m2_cfg, tc, lambda: trained, data=(x_lab, y_lab, x_unl),
                                   spec=spec, test=(x_test, y_test))
    card = shipped.load_cards()["07_m2_draw0"]
    assert card["kind"] == "conditional" and card["model_kind"] == "conditional_vae" and card["spec"] == spec
    assert card["epochs"] == 2 and card["train_minutes"] == 1.0 and card["notebook"] == "07_conditional"
    assert card["test_metric"] == "ELBO(t|c)" and 0.0 <= card["test_error"] <= 1.0 and card["test_images"] == 40
    assert card["command"] == "python scripts/ship_models.py 07 --from-scratch"
    assert card["file_sha256"] == ckpt.file_sha256(shipped.shipped_path("07_m2_draw0"))
    assert abs(card["test_elbo"] - card["test_elbo_float32"]) < 0.5

    monkeypatch.delenv(shipped.SHIP_ENV)
    capsys.readouterr()

    def must_not_train():
        raise AssertionError("the shipped model should have been loaded")

    loaded = ckpt.train_or_load_conditional("07_m2_draw0", m2_cfg, tc, must_not_train, data=(x_lab, y_lab, x_unl),
                                            spec=spec)
    assert capsys.readouterr().out.startswith("shipped model 07_m2_draw0: 2 epochs on")
    for a, b in zip(jax.tree_util.tree_leaves(nnx.state(loaded.model)), jax.tree_util.tree_leaves(nnx.state(trained.model))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b).astype(np.float16).astype(np.float32))
    again = ckpt.conditional_test_metrics(loaded.model, "label", x_test, y_test, tc)
    assert abs(again["test_elbo"] - card["test_elbo"]) < 1e-3 and again["test_error"] == card["test_error"]
    # another setting outside the configs, or other data, is another model: trained, not loaded
    other = ckpt.train_or_load_conditional("07_m2_draw0", m2_cfg, tc, lambda: trained, data=(x_lab, y_lab, x_unl),
                                           spec={**spec, "alpha": 2.0})
    assert other is trained
    assert ckpt.train_or_load_conditional("07_m2_draw0", m2_cfg, tc, lambda: trained, data=(x_lab, y_lab, x_test),
                                          spec=spec) is trained
    table = shipped.models_table(shipped.load_cards())
    assert "`07_m2_draw0`" in table and "M2, MLP 8 relu, 2 latents" in table and "test error" in table
    # the seen top half and the missing bottom half of the fixed test images
    t, c = ckpt.conditional_test_pairs("top", x_test, y_test, tc)
    fixed = np.asarray(ckpt.fixed_test_set(x_test, tc))
    np.testing.assert_array_equal(c, split_images(fixed, observed_mask("top"))[0])
    assert t.shape == c.shape == (40, 392)
    net = CompletionNet(ConditionalConfig(target_dim=392, cond_dim=392, latent_dim=1, hidden=(8,)),
                        rngs=nnx.Rngs(params=0))
    assert ckpt.conditional_test_metrics(net, "top", x_test, y_test, tc)["test_metric"] == "log p(t|c)"
    with pytest.raises(KeyError, match="load_shipped_conditional"):
        ckpt.load_shipped("07_m2_draw0")
    assert card["train_shape"] == [32, 784]  # the largest training array: the unlabelled images
    # a file changed after shipping is refused, naming it
    path = shipped.shipped_path("07_m2_draw0")
    path.write_bytes(path.read_bytes()[:-3] + b"abc")
    with pytest.raises(ckpt.CheckpointError, match="corrupt or was changed"):
        ckpt.train_or_load_conditional("07_m2_draw0", m2_cfg, tc, must_not_train, data=(x_lab, y_lab, x_unl),
                                       spec=spec)


def test_a_gaussian_decoders_log_p_x_is_called_a_density():
    card = {"name": "g", "epochs": 10, "device": "CPU (x86_64)", "train_seconds": 60.0, "test_elbo": 488.13,
            "test_logpx": 513.14, "logpx_k": 5000, "logpx_images": 10000, "model_config": {"likelihood": "gaussian"}}
    assert shipped.logpx_is_density(card) and not shipped.logpx_is_density({**card, "model_config": {}})
    result = TrainResult(build_model(SMALL, 0), {}, SMALL, FAST, extra=card)
    assert "test log density of the grey images 513.14 nats (k = 5000, 10,000 images)" in shipped.describe(result)
