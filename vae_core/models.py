"""Encoders, decoders and the VAE / autoencoder that joins them (Flax Linen).

A model sees images flattened: ``x: [batch, D]`` with ``D = prod(image_shape)``
(784 for MNIST). The encoder gives the parameters of a Gaussian q(z|x); the decoder
turns a code ``z: [batch, latent_dim]`` into Bernoulli logits or Gaussian means
``[batch, D]``. One :class:`ModelConfig` says everything about the architecture, so a
model can be rebuilt from a checkpoint's config alone.
"""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS = {"relu": nn.relu, "tanh": jnp.tanh, "elu": nn.elu}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of a VAE or plain autoencoder.

    latent_dim:   size of z.
    hidden:       widths of the MLP's hidden layers (encoder; the decoder mirrors them).
    activation:   'relu', 'tanh' or 'elu'.
    likelihood:   'bernoulli' (decoder gives logits) or 'gaussian' (decoder gives means).
    obs_std:      Gaussian decoder's fixed standard deviation; None learns one per pixel.
    deterministic: True for a plain autoencoder (z = encoder mean, no KL term).
    architecture: 'mlp', or 'conv' for square images (64x64, 32x32: side divisible by 16).
    image_shape:  (height, width) of one image.
    posterior:    'diagonal', or 'full' (a Cholesky factor L, z = mu + L eps).
    conv_channels: channels of the four stride-2 convolutions (architecture='conv').
    """

    latent_dim: int = 20
    hidden: tuple[int, ...] = (400,)
    activation: str = "relu"
    likelihood: str = "bernoulli"
    obs_std: float | None = 1.0
    deterministic: bool = False
    architecture: str = "mlp"
    image_shape: tuple[int, int] = (28, 28)
    posterior: str = "diagonal"
    conv_channels: tuple[int, ...] = (32, 32, 64, 64)

    def __post_init__(self):
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim}")
        for name, value, allowed in [
            ("activation", self.activation, ACTIVATIONS),
            ("likelihood", self.likelihood, ("bernoulli", "gaussian")),
            ("architecture", self.architecture, ("mlp", "conv")),
            ("posterior", self.posterior, ("diagonal", "full")),
        ]:
            if value not in allowed:
                raise ValueError(f"{name} must be one of {sorted(allowed)}, got {value!r}")
        if self.architecture == "conv" and any(s % 16 for s in self.image_shape):
            raise ValueError(f"conv models need image sides divisible by 16, got {self.image_shape}")
        if self.obs_std is not None and self.obs_std <= 0:
            raise ValueError(f"obs_std must be positive or None (learned), got {self.obs_std}")
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "image_shape", tuple(self.image_shape))
        object.__setattr__(self, "conv_channels", tuple(self.conv_channels))

    @property
    def input_dim(self) -> int:
        return math.prod(self.image_shape)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(**d)


class Posterior(NamedTuple):
    """Parameters of q(z|x) for a batch.

    mean: [batch, L]; logvar: [batch, L] (log of the diagonal of the covariance for
    'diagonal', log of the Cholesky diagonal squared for 'full'); offdiag:
    [batch, L*(L-1)/2] strictly-lower Cholesky entries, or None for 'diagonal'.
    """

    mean: jax.Array
    logvar: jax.Array
    offdiag: jax.Array | None = None


def n_offdiag(latent_dim: int) -> int:
    return latent_dim * (latent_dim - 1) // 2


def scale_tril(post: Posterior) -> jax.Array:
    """Cholesky factor L [batch, L, L] of q's covariance (diagonal posteriors too)."""
    dim = post.mean.shape[-1]
    L = jax.vmap(jnp.diag)(jnp.exp(0.5 * post.logvar))
    if post.offdiag is not None:
        rows, cols = jnp.tril_indices(dim, k=-1)
        L = L.at[:, rows, cols].set(post.offdiag)
    return L


class MLPEncoder(nn.Module):
    """x [batch, D] -> Posterior. One fused Dense head gives mean and log-variance."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.cfg.activation]
        h = x
        for width in self.cfg.hidden:
            h = act(nn.Dense(width)(h))
        return _posterior_head(self.cfg, h)


class MLPDecoder(nn.Module):
    """z [batch, L] -> logits or means [batch, D]; hidden layers mirror the encoder."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, z):
        act = ACTIVATIONS[self.cfg.activation]
        h = z
        for width in reversed(self.cfg.hidden):
            h = act(nn.Dense(width)(h))
        return nn.Dense(self.cfg.input_dim, name="output")(h)


class ConvEncoder(nn.Module):
    """x [batch, H*W] -> Posterior, through four 4x4 stride-2 convolutions."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.cfg.activation]
        h = x.reshape(x.shape[0], *self.cfg.image_shape, 1)
        for ch in self.cfg.conv_channels:
            h = act(nn.Conv(ch, (4, 4), strides=(2, 2), padding="SAME")(h))
        h = h.reshape(h.shape[0], -1)
        for width in self.cfg.hidden:
            h = act(nn.Dense(width)(h))
        return _posterior_head(self.cfg, h)


class ConvDecoder(nn.Module):
    """z [batch, L] -> logits or means [batch, H*W], mirroring ConvEncoder."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, z):
        act = ACTIVATIONS[self.cfg.activation]
        n_up = len(self.cfg.conv_channels)
        side = (self.cfg.image_shape[0] >> n_up, self.cfg.image_shape[1] >> n_up)
        h = z
        for width in reversed(self.cfg.hidden):
            h = act(nn.Dense(width)(h))
        top = self.cfg.conv_channels[-1]
        h = act(nn.Dense(side[0] * side[1] * top)(h)).reshape(z.shape[0], *side, top)
        for ch in reversed(self.cfg.conv_channels[:-1]):
            h = act(nn.ConvTranspose(ch, (4, 4), strides=(2, 2), padding="SAME")(h))
        h = nn.ConvTranspose(1, (4, 4), strides=(2, 2), padding="SAME", name="output")(h)
        return h.reshape(z.shape[0], -1)


def _posterior_head(cfg: ModelConfig, h):
    L = cfg.latent_dim
    extra = n_offdiag(L) if cfg.posterior == "full" else 0
    out = nn.Dense(2 * L + extra, name="posterior_head")(h)
    mean, logvar = out[:, :L], out[:, L:2 * L]
    offdiag = out[:, 2 * L:] if extra else None
    return Posterior(mean, logvar, offdiag)


class VAE(nn.Module):
    """A VAE (or, with ``deterministic=True``, a plain autoencoder).

    Methods (call through ``model.apply(params, ..., method=...)``):
      encode(x [batch, D]) -> Posterior
      decode(z [batch, L]) -> logits (Bernoulli) or means (Gaussian), [batch, D]
      obs_log_std() -> [D] log standard deviation of a Gaussian decoder
      __call__(x, key) -> (decoder output [batch, D], z [batch, L], Posterior)
    """

    cfg: ModelConfig

    def setup(self):
        if self.cfg.architecture == "conv":
            self.encoder, self.decoder = ConvEncoder(self.cfg), ConvDecoder(self.cfg)
        else:
            self.encoder, self.decoder = MLPEncoder(self.cfg), MLPDecoder(self.cfg)
        if self.cfg.likelihood == "gaussian" and self.cfg.obs_std is None:
            self.log_std = self.param("log_std", nn.initializers.zeros, (self.cfg.input_dim,))

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)

    def obs_log_std(self):
        if self.cfg.obs_std is None:
            return self.log_std
        return jnp.full((self.cfg.input_dim,), jnp.log(self.cfg.obs_std))

    def __call__(self, x, key):
        post = self.encode(x)
        z = post.mean if self.cfg.deterministic else sample_posterior(key, post)
        return self.decode(z), z, post


def sample_posterior(key: jax.Array, post: Posterior, n: int | None = None) -> jax.Array:
    """Reparameterized draw z = mean + L eps, eps ~ N(0, I).

    Returns [batch, L], or [n, batch, L] when n is given.
    """
    shape = post.mean.shape if n is None else (n, *post.mean.shape)
    eps = jax.random.normal(key, shape, post.mean.dtype)
    if post.offdiag is None:
        return post.mean + jnp.exp(0.5 * post.logvar) * eps
    return post.mean + jnp.einsum("bij,...bj->...bi", scale_tril(post), eps)


def init_params(cfg: ModelConfig, key: jax.Array, data_mean: jax.Array | None = None):
    """Initialise a model's parameters.

    data_mean: optional [D] mean training image; for a Bernoulli decoder the output
    bias starts at logit(mean), as in the IWAE paper, so the first steps do not waste
    effort learning the average image.
    """
    model = VAE(cfg)
    k_init, k_z = jax.random.split(key)
    x = jnp.zeros((1, cfg.input_dim), jnp.float32)
    params = model.init(k_init, x, k_z)
    if data_mean is not None and cfg.likelihood == "bernoulli":
        p = jnp.clip(jnp.asarray(data_mean, jnp.float32).reshape(-1), 1e-3, 1 - 1e-3)
        bias = jnp.log(p) - jnp.log1p(-p)
        params = jax.tree_util.tree_map(lambda a: a, params)  # a copy we may edit
        out = params["params"]["decoder"]["output"]
        if cfg.architecture == "mlp":
            out["bias"] = bias
        else:  # a conv decoder has one output channel: one bias for every pixel
            out["bias"] = jnp.full_like(out["bias"], jnp.mean(bias))
    return model, params
