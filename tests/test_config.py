from vae_core import config


def test_pick_follows_smoke_env(monkeypatch):
    monkeypatch.setenv("VAE_SMOKE", "1")
    assert config.smoke_mode() and config.pick(full=30, smoke=1) == 1 and config.mode_name() == "smoke"
    monkeypatch.setenv("VAE_SMOKE", "0")
    assert not config.smoke_mode() and config.pick(full=30, smoke=1) == 30
    monkeypatch.delenv("VAE_SMOKE")
    assert config.mode_name() == "full" and not config.smoke_mode()
    for on in ("true", "YES", " on "):
        monkeypatch.setenv("VAE_SMOKE", on)
        assert config.smoke_mode()


def test_describe_setup_names_mode_and_backend(monkeypatch):
    import jax

    monkeypatch.setenv("VAE_SMOKE", "1")
    text = config.describe_setup()
    assert "mode:    smoke" in text
    assert jax.default_backend() in text
    assert f"devices: {len(jax.devices())} x" in text and jax.__version__ in text
    monkeypatch.delenv("VAE_SMOKE")
    assert "mode:    full" in config.describe_setup()


def test_device_name_names_the_device_jax_uses():
    import jax

    from vae_core.config import device_name
    d = jax.devices()[0]
    name = device_name()
    assert name.endswith(f"({d.platform})") or (d.platform == "cpu" and name.startswith("CPU ("))
