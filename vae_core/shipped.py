"""Trained models shipped with the course, and how they were made.

Each shipped model is a checkpoint in ``vae_core/shipped_models/<name>.msgpack`` (the
same sealed format as the model cache, see :mod:`vae_core.checkpoint`) whose ``extra``
holds its card: what it is for, the exact command that rebuilds it, the device, epochs
and wall time of its training, the MNIST checksum, and metrics measured on the stored
weights. :data:`SPECS` lists them with the configs that train them;
:func:`vae_core.checkpoint.train_or_load` (through ``load_shipped``) loads a shipped model when a notebook asks for exactly these configs in full mode.

Rebuild one from scratch (resumable in chunks, CPU or GPU)::

    python scripts/train_shipped.py iwae_protocol_vae --max-minutes 60   # repeat until done
    python scripts/train_shipped.py iwae_protocol_vae --finish           # metrics + card + file
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from .models import ModelConfig
from .train import TrainConfig, TrainResult

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped_models"
TEST_BINARIZATION_SEED = 2015   # the test set is binarized once, with this key, for every metric
LOGPX_SEED = 5000               # key of the importance samples of log p(x)
RETRAIN_ENV = "VAE_RETRAIN"


@dataclasses.dataclass(frozen=True)
class ShippedSpec:
    """name: file stem; purpose: one line; notebook: where it is used; paper_nll: the
    published number it is compared with (nats), if any."""

    name: str
    model_config: ModelConfig
    train_config: TrainConfig
    purpose: str
    notebook: str
    paper_nll: float | None = None


def iwae_protocol(objective: str = "elbo", k: int = 1) -> tuple[ModelConfig, TrainConfig]:
    """Burda, Grosse & Salakhutdinov (2015), one stochastic layer: 784-200-200-50 tanh,
    Bernoulli output bias = logit(training mean), dynamic binarization, batch 20, Adam
    (b1 0.99, b2 0.999, eps 1e-4), learning rate 1e-3 * 10^(-i/7) for 3^i epochs,
    i = 0..7: 3,280 epochs."""
    model = ModelConfig(latent_dim=50, hidden=(200, 200), activation="tanh")
    stages = tuple((3 ** i, 1e-3 * 10 ** (-i / 7)) for i in range(8))
    train = TrainConfig(epochs=sum(e for e, _ in stages), batch_size=20, learning_rate=1e-3, lr_stages=stages,
                        objective=objective, iwae_k=k, adam_b1=0.99, adam_b2=0.999, adam_eps=1e-4, seed=0,
                        eval_images=1000)
    return model, train


SPECS = {spec.name: spec for spec in [
    ShippedSpec("iwae_protocol_vae", *iwae_protocol("elbo", 1),
                purpose="the IWAE paper's one-stochastic-layer VAE (k = 1), trained to the paper's budget",
                notebook="04", paper_nll=86.76),
    ShippedSpec("iwae_protocol_iwae50", *iwae_protocol("iwae", 50),
                purpose="the same network trained with the IWAE bound, k = 50",
                notebook="04", paper_nll=84.78),
]}


def shipped_path(name: str) -> Path:
    return SHIPPED_DIR / f"{name}.msgpack"


def find_spec(model_config: ModelConfig, train_config: TrainConfig) -> ShippedSpec | None:
    """The shipped spec trained with exactly these configs, or None."""
    for spec in SPECS.values():
        if spec.model_config == model_config and spec.train_config == train_config:
            return spec
    return None


def describe(result: TrainResult) -> str:
    """One line on what was loaded, e.g. 'shipped model iwae_protocol_vae: 3,280 epochs on
    NVIDIA H200 (41 min), test log p(x) -86.50 nats (k = 5000, 10,000 images)'."""
    card = result.extra
    epochs = card.get("epochs")
    epochs = f"{epochs:,}" if isinstance(epochs, int) else "?"  # a card without it still prints
    parts = [f"shipped model {card.get('name', '?')}: {epochs} epochs on "
             f"{card.get('device', '?')} ({card.get('train_minutes', float('nan')):.0f} min)"]
    if "test_logpx" in card:
        parts.append(f"test log p(x) {card['test_logpx']:.2f} nats (k = {card['logpx_k']}, "
                     f"{card['logpx_images']:,} images)")
    if "test_elbo" in card:
        parts.append(f"test ELBO {card['test_elbo']:.2f} nats")
    return ", ".join(parts)


def mnist_checksum() -> str:
    """One SHA-256 over the four MNIST arrays' checksums (vae_core.data.SHA256)."""
    from .data import SHA256

    return hashlib.sha256("".join(SHA256[k] for k in sorted(SHA256)).encode()).hexdigest()


__all__ = ["SHIPPED_DIR", "TEST_BINARIZATION_SEED", "LOGPX_SEED", "RETRAIN_ENV", "ShippedSpec", "iwae_protocol",
           "SPECS", "shipped_path", "find_spec", "describe", "mnist_checksum"]
