"""Encoders, decoders and the VAE / autoencoder that joins them, in Flax NNX.

A model sees images flattened: ``x: [batch, D]`` with ``D = prod(image_shape)``
(784 for MNIST). The encoder gives the parameters of a Gaussian q(z|x); the decoder
turns a code ``z: [batch, latent_dim]`` into Bernoulli logits or Gaussian means
``[batch, D]``. One :class:`ModelConfig` says everything about the architecture, so a
model can be rebuilt from a checkpoint's config alone.

A model is an ``nnx.Module``: build it with ``VAE(cfg, rngs=nnx.Rngs(0))`` and call its
methods directly (``model.encode(x)``). Code that runs inside ``jax.jit`` or ``lax.scan``
splits it once into a static graph and a pytree of parameters (``nnx.split``) and
rebuilds it inside the traced function (``nnx.merge``); see ``vae_core.train``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from . import rng

ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh, "elu": jax.nn.elu}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of a VAE or plain autoencoder.

    latent_dim:   size of z.
    hidden:       widths of the MLP's hidden layers (encoder; the decoder mirrors them).
    activation:   'relu', 'tanh' or 'elu'.
    likelihood:   'bernoulli' (decoder gives logits) or 'gaussian' (decoder gives means).
    obs_std:      Gaussian decoder's fixed standard deviation; None learns one per pixel.
    deterministic: True for a plain autoencoder (z = encoder mean, no KL term).
    architecture: 'mlp', or 'conv' (image sides divisible by 2 ** len(conv_channels), e.g. 32x32, 64x64).
    image_shape:  (height, width) of one image.
    posterior:    'diagonal', or 'full' (a Cholesky factor L, z = mu + L eps).
    conv_channels: channels of the 4x4 stride-2 convolutions, one per entry (architecture='conv').
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
        step = 2 ** len(self.conv_channels)  # each stride-2 convolution halves the side
        if self.architecture == "conv" and any(s % step for s in self.image_shape):
            raise ValueError(f"conv models with {len(self.conv_channels)} stride-2 convolutions need image sides "
                             f"divisible by {step}, got {self.image_shape}")
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
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


class Posterior(NamedTuple):
    """Parameters of q(z|x) for a batch.

    mean: [batch, L].
    log_diag: [batch, L], log of the squared diagonal of the Cholesky factor of q's
      covariance. For a 'diagonal' posterior that is the log-variance of each latent;
      for 'full' it is log L_ii^2 (the variances also get the off-diagonal terms).
    offdiag: [batch, L*(L-1)/2] strictly-lower Cholesky entries, or None for 'diagonal'.
    """

    mean: jax.Array
    log_diag: jax.Array
    offdiag: jax.Array | None = None


def n_offdiag(latent_dim: int) -> int:
    """Number of strictly-lower entries of an L x L matrix: L (L - 1) / 2."""
    return latent_dim * (latent_dim - 1) // 2


def scale_tril(post: Posterior) -> jax.Array:
    """Cholesky factor L [batch, L, L] of q's covariance (diagonal posteriors too)."""
    dim = post.mean.shape[-1]
    L = jax.vmap(jnp.diag)(jnp.exp(0.5 * post.log_diag))
    if post.offdiag is not None:
        rows, cols = jnp.tril_indices(dim, k=-1)
        L = L.at[:, rows, cols].set(post.offdiag)
    return L


class PosteriorHead(nnx.Module):
    """h [batch, H] -> Posterior: one Linear layer gives mean, log-diagonal (and off-diagonal)."""

    def __init__(self, in_features: int, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.latent_dim = cfg.latent_dim
        self.full = cfg.posterior == "full"
        extra = n_offdiag(cfg.latent_dim) if self.full else 0
        self.linear = nnx.Linear(in_features, 2 * cfg.latent_dim + extra, rngs=rngs)

    def __call__(self, h) -> Posterior:
        out = self.linear(h)
        L = self.latent_dim
        return Posterior(out[:, :L], out[:, L:2 * L], out[:, 2 * L:] if self.full else None)


def _mlp(widths: list[int], rngs: nnx.Rngs) -> nnx.List:
    return nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:])])


class MLPEncoder(nnx.Module):
    """x [batch, D] -> Posterior, through the hidden layers of ``cfg.hidden``."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.act = ACTIVATIONS[cfg.activation]
        self.hidden = _mlp([cfg.input_dim, *cfg.hidden], rngs)
        self.head = PosteriorHead(([cfg.input_dim, *cfg.hidden])[-1], cfg, rngs=rngs)

    def __call__(self, x) -> Posterior:
        h = x
        for layer in self.hidden:
            h = self.act(layer(h))
        return self.head(h)


class MLPDecoder(nnx.Module):
    """z [batch, L] -> logits or means [batch, D]; hidden layers mirror the encoder's."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        widths = [cfg.latent_dim, *reversed(cfg.hidden)]
        self.act = ACTIVATIONS[cfg.activation]
        self.hidden = _mlp(widths, rngs)
        self.output = nnx.Linear(widths[-1], cfg.input_dim, rngs=rngs)

    def __call__(self, z):
        h = z
        for layer in self.hidden:
            h = self.act(layer(h))
        return self.output(h)


class ConvEncoder(nnx.Module):
    """x [batch, H*W] -> Posterior, through one 4x4 stride-2 convolution per entry of conv_channels."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.act = ACTIVATIONS[cfg.activation]
        self.image_shape = cfg.image_shape
        chans = [1, *cfg.conv_channels]
        self.convs = nnx.List([nnx.Conv(a, b, (4, 4), strides=(2, 2), padding="SAME", rngs=rngs)
                               for a, b in zip(chans[:-1], chans[1:])])
        n_down = len(cfg.conv_channels)
        flat = (cfg.image_shape[0] >> n_down) * (cfg.image_shape[1] >> n_down) * chans[-1]
        self.hidden = _mlp([flat, *cfg.hidden], rngs)
        self.head = PosteriorHead(([flat, *cfg.hidden])[-1], cfg, rngs=rngs)

    def __call__(self, x) -> Posterior:
        h = x.reshape(x.shape[0], *self.image_shape, 1)
        for conv in self.convs:
            h = self.act(conv(h))
        h = h.reshape(h.shape[0], -1)
        for layer in self.hidden:
            h = self.act(layer(h))
        return self.head(h)


class ConvDecoder(nnx.Module):
    """z [batch, L] -> logits or means [batch, H*W], mirroring ConvEncoder."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.act = ACTIVATIONS[cfg.activation]
        n_up = len(cfg.conv_channels)
        self.side = (cfg.image_shape[0] >> n_up, cfg.image_shape[1] >> n_up)
        self.top = cfg.conv_channels[-1]
        widths = [cfg.latent_dim, *reversed(cfg.hidden)]
        self.hidden = _mlp(widths, rngs)
        self.project = nnx.Linear(widths[-1], self.side[0] * self.side[1] * self.top, rngs=rngs)
        chans = [*reversed(cfg.conv_channels)]
        self.deconvs = nnx.List([nnx.ConvTranspose(a, b, (4, 4), strides=(2, 2), padding="SAME", rngs=rngs)
                                 for a, b in zip(chans[:-1], chans[1:])])
        self.output = nnx.ConvTranspose(chans[-1], 1, (4, 4), strides=(2, 2), padding="SAME", rngs=rngs)

    def __call__(self, z):
        h = z
        for layer in self.hidden:
            h = self.act(layer(h))
        h = self.act(self.project(h)).reshape(z.shape[0], *self.side, self.top)
        for deconv in self.deconvs:
            h = self.act(deconv(h))
        return self.output(h).reshape(z.shape[0], -1)


class VAE(nnx.Module):
    """A VAE (or, with ``cfg.deterministic=True``, a plain autoencoder).

      encode(x [batch, D]) -> Posterior
      decoder_output(z [batch, L]) -> Bernoulli logits, or Gaussian means, [batch, D]
      obs_log_std() -> [D] log standard deviation of a Gaussian decoder
      __call__(x, key) -> (decoder output [batch, D], z [batch, L], Posterior)

    data_mean: optional [D] mean training image. For a Bernoulli decoder the output bias
    starts at logit(mean), as in the IWAE paper, so the first steps do not spend effort
    learning the average image.
    """

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs, data_mean=None):
        self.cfg = cfg
        if cfg.architecture == "conv":
            self.encoder, self.decoder = ConvEncoder(cfg, rngs=rngs), ConvDecoder(cfg, rngs=rngs)
        else:
            self.encoder, self.decoder = MLPEncoder(cfg, rngs=rngs), MLPDecoder(cfg, rngs=rngs)
        if cfg.likelihood == "gaussian" and cfg.obs_std is None:
            self.log_std = nnx.Param(jnp.zeros((cfg.input_dim,)))
        if data_mean is not None and cfg.likelihood == "bernoulli":
            p = jnp.clip(jnp.asarray(data_mean, jnp.float32).reshape(-1), 1e-3, 1 - 1e-3)
            bias = jnp.log(p) - jnp.log1p(-p)
            out = self.decoder.output.bias
            # a conv decoder has one output channel: one bias for every pixel
            out[...] = bias if cfg.architecture == "mlp" else jnp.full_like(out[...], jnp.mean(bias))

    def encode(self, x) -> Posterior:
        return self.encoder(x)

    def decoder_output(self, z):
        return self.decoder(z)

    def obs_log_std(self):
        if self.cfg.obs_std is None:
            return self.log_std[...]
        return jnp.full((self.cfg.input_dim,), jnp.log(self.cfg.obs_std))

    def __call__(self, x, key):
        post = self.encode(x)
        z = post.mean if self.cfg.deterministic else sample_posterior(key, post)
        return self.decoder_output(z), z, post


def build_model(cfg: ModelConfig, key: jax.Array | int = 0, data_mean=None) -> VAE:
    """A freshly initialised VAE; key: a PRNG key or an integer seed."""
    return VAE(cfg, rngs=nnx.Rngs(params=key), data_mean=data_mean)


def sample_posterior(key: jax.Array, post: Posterior, n: int | None = None) -> jax.Array:
    """Reparameterized draw z = mean + L eps, eps ~ N(0, I).

    Returns [batch, L], or [n, batch, L] when n is given.
    """
    shape = post.mean.shape if n is None else (n, *post.mean.shape)
    eps = rng.normal(key, shape, post.mean.dtype)
    if post.offdiag is None:
        return post.mean + jnp.exp(0.5 * post.log_diag) * eps
    return post.mean + jnp.einsum("bij,...bj->...bi", scale_tril(post), eps)


def params_to_arrays(model: VAE) -> dict[str, np.ndarray]:
    """The model's parameters as {'encoder/hidden/0/kernel': array, ...} on the host."""
    flat = {}

    def walk(tree, prefix):
        for k, v in tree.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}/")
            else:
                flat[f"{prefix}{k}"] = np.array(jax.device_get(v))  # a writable host copy

    walk(nnx.to_pure_dict(nnx.state(model)), "")
    return flat


def model_from_arrays(cfg: ModelConfig, arrays: dict) -> VAE:
    """Rebuild a model of config ``cfg`` from :func:`params_to_arrays`'s dict.

    Raises ValueError naming a missing, extra or mis-shaped parameter.
    """
    return load_arrays(build_model(cfg, 0), arrays)


def load_arrays(model: nnx.Module, arrays: dict) -> nnx.Module:
    """Put :func:`params_to_arrays`'s dict into ``model`` (any NNX module of the same shape), in
    place; returns the model. Raises ValueError naming a missing, extra or mis-shaped parameter."""
    expected = params_to_arrays(model)
    missing, extra = sorted(set(expected) - set(arrays)), sorted(set(arrays) - set(expected))
    if missing or extra:
        raise ValueError(f"missing parameters {missing}, unexpected {extra}")
    for name, template in expected.items():
        if np.shape(arrays[name]) != template.shape:
            raise ValueError(f"parameter {name} has shape {np.shape(arrays[name])} where the model has "
                             f"{template.shape}")
    state = nnx.state(model)
    pure = nnx.to_pure_dict(state)

    def fill(tree, prefix):
        return {k: fill(v, f"{prefix}{k}/") if isinstance(v, dict) else
                jnp.asarray(arrays[f"{prefix}{k}"], v.dtype) for k, v in tree.items()}

    nnx.replace_by_pure_dict(state, fill(pure, ""))
    nnx.update(model, state)
    return model


__all__ = ["ACTIVATIONS", "ModelConfig", "Posterior", "n_offdiag", "scale_tril", "PosteriorHead", "MLPEncoder",
           "MLPDecoder", "ConvEncoder", "ConvDecoder", "VAE", "build_model", "sample_posterior",
           "params_to_arrays", "model_from_arrays", "load_arrays"]
