"""Fixtures shared by the engine tests: a small model, a fast schedule, toy images, one trained model."""
import numpy as np
import pytest

from vae_core.models import ModelConfig
from vae_core.train import TrainConfig, train

SMALL = ModelConfig(latent_dim=4, hidden=(32,))
FAST = TrainConfig(epochs=2, batch_size=64, seed=3)


@pytest.fixture(scope="session")
def images():
    """512 grey-level 'images' of 784 pixels: two blobs, so there is something to learn."""
    rng = np.random.default_rng(0)
    base = np.zeros((2, 784), np.float32)
    base[0, :392], base[1, 392:] = 0.9, 0.9
    x = base[rng.integers(0, 2, 512)] * rng.uniform(0.6, 1.0, (512, 1)).astype(np.float32)
    return x.astype(np.float32)


@pytest.fixture(scope="session")
def trained(images):
    return train(SMALL, FAST, images[:448], images[448:], progress=False)


@pytest.fixture(autouse=True)
def _not_shipping(monkeypatch):
    """No test writes to the real shipped models: VAE_SHIP is unset unless a test sets it."""
    monkeypatch.delenv("VAE_SHIP", raising=False)
