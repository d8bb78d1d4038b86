"""Conditional and semi-supervised VAEs: generation on demand, completion, learning from few labels.

One model class, :class:`ConditionalVAE`, with a Bernoulli decoder and a N(0, I) prior on z:

* **Conditional VAE** (Sohn, Lee & Yan 2015, with the fixed prior of Kingma et al. 2014's
  M2): an encoder q(z | t, c) and a decoder p(t | z, c). The condition ``c: [batch, C]`` is
  given at test time, the target ``t: [batch, T]`` is what the model draws:

  - c a one-hot digit label, t the image: generation on demand ("this style, as a 7");
  - c the observed part of an image (its top half, a quadrant), t the missing part: completion.

  ELBO(t | c) = E_q[log p(t | z, c)] - KL(q(z | t, c) || N(0, I)) <= log p(t | c).

* **M2** (Kingma, Rezende, Mohamed & Welling 2014): the same model with ``n_classes = K``
  (then c is the one-hot label and t the image) plus a classifier q(y | x). A labelled image
  contributes L(x, y) = ELBO(x | y) + log p(y) with p(y) = 1/K; an unlabelled one sums the
  label out under the classifier,

      U(x) = sum_y q(y|x) L(x, y) + H(q(y|x))  <=  log sum_y exp L(x, y)  <=  log p(x),

  with equality in the middle when q(y|x) is proportional to exp L(x, y). The classifier also
  learns directly from the labelled images: :func:`m2_loss` adds alpha times their
  cross-entropy.

For completion, :func:`observed_mask` / :func:`split_images` / :func:`join_images` cut an image
into the part that is seen and the part to draw, and :class:`CompletionNet` is the
deterministic regression to compare with: one answer per input, where the conditional VAE
draws many.

Every function takes explicit PRNG keys and works under ``jax.jit``. :func:`train_conditional`
and :func:`train_m2` run one jitted ``lax.scan`` per epoch with Adam
(:func:`vae_core.train.make_optimizer`, so a :class:`vae_core.train.TrainConfig` sets epochs,
batch size, learning rate and dynamic binarization).
"""
from __future__ import annotations

import dataclasses
import time
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from . import rng
from .data import check_images
from .models import ACTIVATIONS, Posterior, _mlp, sample_posterior
from .objectives import (bernoulli_log_likelihood, kl_divergence, log_mean_weight_in_chunks, posterior_log_density,
                         standard_normal_log_density)
from .train import TrainConfig, make_optimizer


# ----------------------------------------------------------------------------- the model
@dataclasses.dataclass(frozen=True)
class ConditionalConfig:
    """Architecture of a conditional VAE (and, with n_classes > 0, of M2).

    target_dim:  T, size of what the decoder draws (784 for a whole MNIST digit).
    cond_dim:    C, size of the condition (10 for a one-hot digit label; 392 for a top half).
    latent_dim:  size of z.
    hidden:      widths of the encoder's hidden layers; the decoder mirrors them.
    activation:  'relu', 'tanh' or 'elu'.
    n_classes:   0 for a conditional VAE; K > 0 adds M2's classifier q(y | t) over K labels
                 (the condition is then the one-hot label: cond_dim must equal K).
    classifier_hidden: widths of the classifier's hidden layers (n_classes > 0).
    """

    target_dim: int = 784
    cond_dim: int = 10
    latent_dim: int = 20
    hidden: tuple[int, ...] = (500,)
    activation: str = "relu"
    n_classes: int = 0
    classifier_hidden: tuple[int, ...] = (500,)

    def __post_init__(self):
        for name in ("target_dim", "cond_dim", "latent_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.n_classes < 0 or self.n_classes == 1:
            raise ValueError(f"n_classes must be 0 (no classifier) or >= 2, got {self.n_classes}")
        if self.n_classes and self.cond_dim != self.n_classes:
            raise ValueError(f"M2 conditions on the one-hot label: cond_dim ({self.cond_dim}) must equal "
                             f"n_classes ({self.n_classes})")
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "classifier_hidden", tuple(self.classifier_hidden))


class ConditionalVAE(nnx.Module):
    """q(z | t, c), p(t | z, c) as MLPs on concatenated inputs, and (M2) a classifier q(y | t).

      encode(t [batch, T], c [batch, C]) -> Posterior (diagonal, [batch, L])
      decoder_output(z [..., batch, L], c [batch, C]) -> Bernoulli logits [..., batch, T]
      classify(t [batch, T]) -> label logits [batch, K]   (n_classes > 0 only)

    data_mean: optional [T] mean target; the decoder's output bias starts at its logit.
    """

    def __init__(self, cfg: ConditionalConfig, *, rngs: nnx.Rngs, data_mean=None):
        self.cfg = cfg
        self.act = ACTIVATIONS[cfg.activation]
        enc = [cfg.target_dim + cfg.cond_dim, *cfg.hidden]
        self.encoder = _mlp(enc, rngs)
        self.head = nnx.Linear(enc[-1], 2 * cfg.latent_dim, rngs=rngs)
        dec = [cfg.latent_dim + cfg.cond_dim, *reversed(cfg.hidden)]
        self.decoder = _mlp(dec, rngs)
        self.output = nnx.Linear(dec[-1], cfg.target_dim, rngs=rngs)
        if cfg.n_classes:
            self.classifier = _mlp([cfg.target_dim, *cfg.classifier_hidden, cfg.n_classes], rngs)
        if data_mean is not None:
            p = jnp.clip(jnp.asarray(data_mean, jnp.float32).reshape(-1), 1e-3, 1 - 1e-3)
            self.output.bias[...] = jnp.log(p) - jnp.log1p(-p)

    def _run(self, layers, h):
        for layer in layers:
            h = self.act(layer(h))
        return h

    def encode(self, t, c) -> Posterior:
        out = self.head(self._run(self.encoder, jnp.concatenate([t, c], axis=-1)))
        L = self.cfg.latent_dim
        return Posterior(out[:, :L], out[:, L:])

    def encode_each_label(self, t) -> Posterior:
        """q(z | t, y) for every label y at once (M2): fields [K, batch, L].

        The first layer's input is (t, one-hot y), so its product with t is computed once and
        each label only adds its own row of the weights: one pass over the pixels, not K.
        """
        K, T, L = self.cfg.n_classes, self.cfg.target_dim, self.cfg.latent_dim
        if not K:
            raise ValueError("encode_each_label needs an M2 model (n_classes > 0)")
        layers = list(self.encoder) + [self.head]
        first = layers[0]
        w = first.kernel[...]
        h = (t @ w[:T] + first.bias[...])[None] + w[T:][:, None, :]       # [K, batch, width]
        for layer in layers[1:]:
            h = layer(self.act(h))
        return Posterior(h[..., :L], h[..., L:])

    def decoder_output(self, z, c):
        c = jnp.broadcast_to(c, (*z.shape[:-1], c.shape[-1]))  # one condition per image, any number of draws
        return self.output(self._run(self.decoder, jnp.concatenate([z, c], axis=-1)))

    def classify(self, t):
        if not self.cfg.n_classes:
            raise ValueError("this ConditionalVAE has no classifier: build it with n_classes > 0 (M2)")
        h = t
        for layer in self.classifier[:-1]:
            h = self.act(layer(h))
        return self.classifier[-1](h)


def build_conditional(cfg: ConditionalConfig, key: jax.Array | int = 0, data_mean=None) -> ConditionalVAE:
    """A freshly initialised ConditionalVAE; key: a PRNG key or an integer seed."""
    return ConditionalVAE(cfg, rngs=nnx.Rngs(params=key), data_mean=data_mean)


def one_hot(labels, n_classes: int) -> np.ndarray:
    """Integer labels [n] in 0..n_classes-1 -> float32 one-hot rows [n, n_classes]."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-d integer array, got dtype {labels.dtype} and shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got values in [{labels.min()}, {labels.max()}]")
    return np.eye(n_classes, dtype=np.float32)[labels]


PARTS = ("top", "left", "quadrant")


def observed_mask(part: str, image_shape=(28, 28)) -> np.ndarray:
    """Which pixels a completion task shows: a boolean [H * W] mask, True where observed.

    part: 'top' (the top half is seen, the bottom half is to complete), 'left' (the left
    half), or 'quadrant' (the top-left quarter is seen, the other three are to complete:
    Sohn et al. 2015's MNIST quadrant task shows one quadrant).
    """
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    h, w = image_shape
    seen = np.zeros((h, w), bool)
    if part == "top":
        seen[: h // 2] = True
    elif part == "left":
        seen[:, : w // 2] = True
    else:
        seen[: h // 2, : w // 2] = True
    return seen.reshape(-1)


def split_images(x, mask) -> tuple[np.ndarray, np.ndarray]:
    """Images x: [n, D] -> (observed pixels [n, O], missing pixels [n, D - O]) for a mask [D]."""
    x, mask = np.asarray(x), np.asarray(mask, bool)
    if x.ndim != 2 or x.shape[1] != mask.size:
        raise ValueError(f"x must be [n, {mask.size}] to split with this mask, got shape {x.shape}")
    return x[:, mask], x[:, ~mask]


def join_images(observed, missing, mask) -> np.ndarray:
    """The inverse of :func:`split_images`: [n, O] and [n, D - O] back into images [n, D]."""
    observed, missing, mask = np.asarray(observed), np.asarray(missing), np.asarray(mask, bool)
    if observed.shape[-1] != mask.sum() or missing.shape[-1] != (~mask).sum() or len(observed) != len(missing):
        raise ValueError(f"observed [n, {mask.sum()}] and missing [n, {(~mask).sum()}] pixels expected, got "
                         f"{observed.shape} and {missing.shape}")
    out = np.empty((len(observed), mask.size), np.result_type(observed, missing))
    out[:, mask], out[:, ~mask] = observed, missing
    return out


# ----------------------------------------------------------------------------- bounds
def conditional_elbo_terms(model: ConditionalVAE, t, c, key) -> dict:
    """One-sample ELBO(t | c) and its parts, per example. t: [batch, T], c: [batch, C].

    Returns {'elbo': rec - kl, 'rec': log p(t | z, c) at z ~ q(z | t, c) (reparameterized),
    'kl': KL(q(z | t, c) || N(0, I))}, each [batch].
    """
    post = model.encode(t, c)
    z = sample_posterior(key, post)
    rec = bernoulli_log_likelihood(model.decoder_output(z, c), t)
    kl = kl_divergence(post)
    return {"elbo": rec - kl, "rec": rec, "kl": kl}


@partial(jax.jit, static_argnums=(0, 5, 6))
def _conditional_log_likelihood(graphdef, params, t, c, key, k, k_chunk):
    model = nnx.merge(graphdef, params)
    post = model.encode(t, c)

    def log_weights(kc):  # [k_chunk, b]: log p(t | z, c) + log p(z) - log q(z | t, c)
        z = sample_posterior(kc, post, k_chunk)                                   # [k_chunk, b, L]
        return (bernoulli_log_likelihood(model.decoder_output(z, c), t) + standard_normal_log_density(z)
                - posterior_log_density(z, post))

    return log_mean_weight_in_chunks(log_weights, key, k, k_chunk, t.shape[0], t.dtype)


def conditional_log_likelihood(model: ConditionalVAE, t, c, key, *, k: int = 1000, k_chunk: int = 100,
                               batch_size: int = 500) -> np.ndarray:
    """Importance-sampled log p(t | c) per example, with q(z | t, c) as proposal. -> [n] (nats).

    t: [n, T] binary targets, c: [n, C] conditions. k samples in chunks of k_chunk (k a
    multiple of k_chunk when larger), batch_size examples at a time: memory holds
    batch_size * k_chunk decoder outputs. A lower bound in expectation that rises to
    log p(t | c) as k grows (Burda et al. 2015).
    """
    t, c = _check_pair(model, t, c, binary=True)
    if k < 1 or k_chunk < 1:
        raise ValueError(f"k and k_chunk must be >= 1, got k={k}, k_chunk={k_chunk}")
    k_chunk = min(int(k_chunk), int(k))
    if k % k_chunk:
        raise ValueError(f"k={k} must be >= 1 and a multiple of k_chunk={k_chunk}")
    graphdef, params = nnx.split(model)
    keys = jax.random.split(key, -(-len(t) // batch_size))
    parts = [_conditional_log_likelihood(graphdef, params, t[i:i + batch_size], c[i:i + batch_size], kb,
                                         int(k), k_chunk)
             for kb, i in zip(keys, range(0, len(t), batch_size))]
    return np.asarray(jnp.concatenate(parts), np.float64)


def label_bounds(model: ConditionalVAE, x, key) -> jax.Array:
    """M2's L(x, y) = ELBO(x | y) + log p(y) for every label y, one z draw each. x: [batch, T] -> [batch, K]."""
    K = model.cfg.n_classes
    if not K:
        raise ValueError("label_bounds needs an M2 model (n_classes > 0)")
    post = model.encode_each_label(x)                                   # [K, batch, L]
    z = sample_posterior(key, post)
    labels = jnp.eye(K, dtype=x.dtype)[:, None, :]                      # [K, 1, K]: label y for every image
    rec = bernoulli_log_likelihood(model.decoder_output(z, labels), x)  # [K, batch]
    return (rec - kl_divergence(post)).T - jnp.log(K)


def expected_bound(bounds, class_logits) -> jax.Array:
    """U = sum_y q(y) (L_y - log q(y)) with q = softmax(class_logits): the bound with the label
    summed out under q. bounds, class_logits: [batch, K] -> [batch]. U <= logsumexp(bounds),
    with equality when class_logits equal bounds (up to a constant per row)."""
    log_q = jax.nn.log_softmax(class_logits, axis=-1)
    return jnp.sum(jnp.exp(log_q) * (bounds - log_q), axis=-1)


def m2_unlabelled_bound(model: ConditionalVAE, x, key) -> jax.Array:
    """M2's U(x) for unlabelled images x: [batch, T] -> [batch] (see :func:`expected_bound`)."""
    return expected_bound(label_bounds(model, x, key), model.classify(x))


def m2_loss(model: ConditionalVAE, x_lab, y_lab, x_unl, key, alpha: float,
            labelled_weight: float = 1.0) -> tuple[jax.Array, dict]:
    """M2's minibatch loss: labelled_weight * mean -L(x, y) over the labelled batch, plus mean
    -U(x) over the unlabelled batch, plus alpha * mean cross-entropy of the classifier on the
    labelled batch.

    x_lab: [b_l, T], y_lab: [b_l, K] one-hot, x_unl: [b_u, T]. Kingma et al.'s objective sums
    over the data set (N_l labelled, N_u unlabelled images, N = N_l + N_u) and weights the
    cross-entropy by 0.1 N; divided by N_u it is this loss with labelled_weight = N_l / N_u and
    alpha = 0.1 N / N_u (about 0.1 for 100 labels among 60,000 images).
    Returns (loss, {'labelled': mean L, 'unlabelled': mean U, 'cross_entropy': mean CE}).
    """
    k_lab, k_unl = jax.random.split(key)
    L = conditional_elbo_terms(model, x_lab, y_lab, k_lab)["elbo"] - jnp.log(model.cfg.n_classes)
    U = m2_unlabelled_bound(model, x_unl, k_unl)
    ce = -jnp.sum(y_lab * jax.nn.log_softmax(model.classify(x_lab), axis=-1), axis=-1)
    aux = {"labelled": jnp.mean(L), "unlabelled": jnp.mean(U), "cross_entropy": jnp.mean(ce)}
    return -labelled_weight * jnp.mean(L) - jnp.mean(U) + alpha * jnp.mean(ce), aux


@partial(jax.jit, static_argnums=0)
def _predict(graphdef, params, x):
    return jnp.argmax(nnx.merge(graphdef, params).classify(x), axis=-1)


def classify(model: ConditionalVAE, x, *, batch_size: int = 1000) -> np.ndarray:
    """The classifier's most probable label for each image x: [n, T] -> [n] ints (M2 only)."""
    x = jnp.asarray(x, jnp.float32)
    graphdef, params = nnx.split(model)
    return np.concatenate([np.asarray(_predict(graphdef, params, x[i:i + batch_size]))
                           for i in range(0, len(x), batch_size)])


def decode_conditional(model: ConditionalVAE, z, c) -> np.ndarray:
    """Bernoulli means p(t = 1 | z, c) for codes z: [n, L] under conditions c: [n, C] -> [n, T]."""
    return np.asarray(jax.nn.sigmoid(model.decoder_output(jnp.asarray(z, jnp.float32), jnp.asarray(c, jnp.float32))))


# ----------------------------------------------------------------------------- a deterministic baseline
class CompletionNet(nnx.Module):
    """The regression a conditional VAE is compared with: an MLP from the condition c [batch, C]
    straight to Bernoulli logits of the target [batch, T], no latent variable. Trained on
    cross-entropy it predicts the mean of p(t | c): one answer per input, a blur where the
    completions disagree. The hidden widths are a ConditionalConfig's ``hidden``."""

    def __init__(self, cfg: ConditionalConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.act = ACTIVATIONS[cfg.activation]
        self.layers = _mlp([cfg.cond_dim, *cfg.hidden, cfg.target_dim], rngs)

    def __call__(self, c):
        h = c
        for layer in self.layers[:-1]:
            h = self.act(layer(h))
        return self.layers[-1](h)


def completion_log_likelihood(net: CompletionNet, t, c) -> np.ndarray:
    """log p(t | c) under the regression's Bernoulli means, exact (no latent to sample). -> [n] nats."""
    t, c = _check_pair(net, t, c, binary=True)
    return np.asarray(bernoulli_log_likelihood(net(c), t), np.float64)


def train_completion_net(net: CompletionNet, cfg: TrainConfig, t, c, *, progress: bool = True,
                         desc: str = "regression") -> ConditionalResult:
    """Train the regression on pairs (t, c) by cross-entropy, with the same batches, optimiser and
    dynamic binarization as :func:`train_conditional`. history: 'loss' (mean -log p(t | c)), 'seconds'."""
    t, c = _check_pair(net, t, c, binary=not cfg.binarize)

    def batch_loss(m, data, idx, key):
        k_t, k_c = jax.random.split(key)
        tb, cb = _binary(k_t, data[0][idx], cfg.binarize), _binary(k_c, data[1][idx], cfg.binarize)
        return -jnp.mean(bernoulli_log_likelihood(m(cb), tb)), {}

    return _fit(net, cfg, (t, c), len(t), batch_loss, desc, progress)


# ----------------------------------------------------------------------------- training
class ConditionalResult(NamedTuple):
    """What a training run returns: the trained model and its history, one entry per epoch
    ('loss', 'seconds', and the loss's other terms averaged over the epoch)."""

    model: ConditionalVAE
    history: dict


_DEFAULT_TRAIN = TrainConfig()
_NOT_APPLIED = ("objective", "beta", "warmup_epochs", "iwae_k", "capacity_max", "capacity_epochs", "gamma",
                "eval_images", "corruption", "corruption_level")


def _check_pair(model, t, c, *, binary: bool):
    check_images(t, "t (targets)", model.cfg.target_dim, binary=binary)
    check_images(c, "c (conditions)", model.cfg.cond_dim, binary=binary)
    if len(t) != len(c):
        raise ValueError(f"t and c must have one row per example: {len(t)} targets, {len(c)} conditions")
    return jnp.asarray(t, jnp.float32), jnp.asarray(c, jnp.float32)


def _fit(model, cfg: TrainConfig, data: tuple, n: int, batch_loss, desc: str, progress: bool,
         callback=None) -> ConditionalResult:
    """Adam on batch_loss(model, data, idx [batch], key) -> (loss, aux): each epoch one jitted scan
    over a fresh permutation of the n examples, cfg.batch_size of them a step. callback(epoch,
    model) runs after each epoch; returning True stops training there.

    Its own epoch rather than vae_core.train's: the data here are several arrays (target and
    condition; M2's labelled set beside the unlabelled one), not one image array, and the
    batches are not split across devices (one device, as the conditional models are small)."""
    unused = {f: getattr(cfg, f) for f in _NOT_APPLIED if getattr(cfg, f) != getattr(_DEFAULT_TRAIN, f)}
    if unused:
        raise ValueError(f"{desc}: these TrainConfig fields do not apply to this training and must keep their "
                         f"defaults: {unused} (it uses epochs, batch_size, the learning rate and its schedule, "
                         "the Adam settings, binarize and seed)")
    steps = n // cfg.batch_size
    if steps < 1:
        raise ValueError(f"batch_size={cfg.batch_size} is larger than the {n} training examples")
    tx = make_optimizer(cfg, steps)
    graphdef, params = nnx.split(model)
    opt_state = tx.init(params)

    def train_step(carry, batch):
        params, opt_state = carry
        idx, key = batch
        loss_fn = lambda p: batch_loss(nnx.merge(graphdef, p), data, idx, key)  # noqa: E731
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), {"loss": loss, **aux}

    @jax.jit
    def run_epoch(params, opt_state, data, key):
        k_perm, k_steps = jax.random.split(key)
        order = jax.random.permutation(k_perm, n)[: steps * cfg.batch_size].reshape(steps, cfg.batch_size)
        (params, opt_state), metrics = jax.lax.scan(train_step, (params, opt_state),
                                                    (order, jax.random.split(k_steps, steps)))
        return params, opt_state, metrics

    history: dict = {"loss": [], "seconds": []}
    key = jax.random.PRNGKey(cfg.seed)
    for epoch in tqdm(range(1, cfg.epochs + 1), desc=desc, unit="epoch", disable=not progress):
        start = time.perf_counter()
        params, opt_state, metrics = run_epoch(params, opt_state, data, jax.random.fold_in(key, epoch))
        values = {name: np.asarray(v) for name, v in metrics.items()}
        bad = np.flatnonzero(~np.isfinite(values["loss"]))
        if bad.size:
            raise FloatingPointError(f"Training diverged in epoch {epoch}, step {bad[0] + 1} of {steps}: the loss "
                                     f"became {values['loss'][bad[0]]}. Lower the learning rate or check the data "
                                     "for NaN.")
        for name, v in values.items():
            history.setdefault(name, []).append(float(v.mean()))
        history["seconds"].append(time.perf_counter() - start)
        if callback is not None and callback(epoch, nnx.merge(graphdef, params)):
            break
    return ConditionalResult(nnx.merge(graphdef, params), history)


def _binary(key, x, on: bool):
    return rng.bernoulli(key, x).astype(x.dtype) if on else x


def train_conditional(model: ConditionalVAE, cfg: TrainConfig, t, c, *, progress: bool = True,
                      desc: str = "conditional VAE", callback=None) -> ConditionalResult:
    """Train a conditional VAE on pairs (t [n, T], c [n, C]) by maximising ELBO(t | c).

    With cfg.binarize each minibatch's t and c are drawn afresh as Bernoulli(grey level), so a
    one-hot c stays as it is and the two halves of one image are binarized like the whole
    image. cfg gives epochs, batch_size, the learning rate and its schedule, the Adam settings
    and seed; its other fields (objective, beta, warm-up, corruption, ...) must keep their
    defaults (ValueError otherwise). history: 'loss' (mean -ELBO), 'rec', 'kl', 'seconds' per epoch.
    callback(epoch, model) runs after each epoch (e.g. to evaluate); returning True stops there.
    Raises ValueError for shapes or values that do not fit the model, FloatingPointError
    naming the epoch and step if the loss becomes NaN.
    """
    t, c = _check_pair(model, t, c, binary=not cfg.binarize)

    def batch_loss(m, data, idx, key):
        k_t, k_c, k_elbo = jax.random.split(key, 3)
        tb, cb = _binary(k_t, data[0][idx], cfg.binarize), _binary(k_c, data[1][idx], cfg.binarize)
        terms = conditional_elbo_terms(m, tb, cb, k_elbo)
        return -jnp.mean(terms["elbo"]), {"rec": jnp.mean(terms["rec"]), "kl": jnp.mean(terms["kl"])}

    return _fit(model, cfg, (t, c), len(t), batch_loss, desc, progress, callback)


def train_m2(model: ConditionalVAE, cfg: TrainConfig, x_lab, y_lab, x_unl, *, alpha: float,
             labelled_weight: float = 1.0, progress: bool = True, desc: str = "M2",
             callback=None) -> ConditionalResult:
    """Train M2 (:func:`m2_loss`) on a few labelled images and many unlabelled ones.

    x_lab: [n_l, T] with labels y_lab: [n_l] ints; x_unl: [n_u, T]. An epoch is one pass over
    the unlabelled images, cfg.batch_size a step; each step also draws cfg.batch_size labelled
    images with replacement (the labelled set is small: Kingma et al. use 100); alpha and
    labelled_weight weight the loss as in :func:`m2_loss`. Dynamic
    binarization as in :func:`train_conditional`. history: 'loss', 'labelled', 'unlabelled',
    'cross_entropy', 'seconds' per epoch; callback as in :func:`train_conditional`.
    """
    K = model.cfg.n_classes
    if not K:
        raise ValueError("train_m2 needs an M2 model: build_conditional(ConditionalConfig(n_classes=K, cond_dim=K, ...))")
    check_images(x_lab, "x_lab", model.cfg.target_dim, binary=not cfg.binarize)
    check_images(x_unl, "x_unl", model.cfg.target_dim, binary=not cfg.binarize)
    y = jnp.asarray(one_hot(y_lab, K))
    if len(y) != len(x_lab) or len(y) == 0:
        raise ValueError(f"x_lab and y_lab must have one label per image and at least one: {len(x_lab)} images, "
                         f"{len(y)} labels")
    data = (jnp.asarray(x_unl, jnp.float32), jnp.asarray(x_lab, jnp.float32), y)

    def batch_loss(m, data, idx, key):
        x_u, x_l, y_l = data
        k_pick, k_u, k_l, k_loss = jax.random.split(key, 4)
        lab = jax.random.randint(k_pick, (cfg.batch_size,), 0, x_l.shape[0])
        return m2_loss(m, _binary(k_l, x_l[lab], cfg.binarize), y_l[lab], _binary(k_u, x_u[idx], cfg.binarize),
                       k_loss, alpha, labelled_weight)

    return _fit(model, cfg, data, len(x_unl), batch_loss, desc, progress, callback)


def train_classifier(model: ConditionalVAE, cfg: TrainConfig, x_lab, y_lab, *, progress: bool = True,
                     desc: str = "labels only", callback=None) -> ConditionalResult:
    """The baseline M2 is measured against: the same classifier q(y | x) trained on the labelled
    images alone, by cross-entropy (the encoder and decoder get no gradient and stay as built).

    x_lab: [n_l, T] with labels y_lab: [n_l] ints. An epoch is one pass over the labelled
    images, cfg.batch_size a step, with dynamic binarization as in :func:`train_m2`.
    history: 'loss' (mean cross-entropy), 'seconds' per epoch; callback as in :func:`train_conditional`.
    """
    K = model.cfg.n_classes
    if not K:
        raise ValueError("train_classifier needs a model with a classifier: ConditionalConfig(n_classes=K, ...)")
    check_images(x_lab, "x_lab", model.cfg.target_dim, binary=not cfg.binarize)
    y = jnp.asarray(one_hot(y_lab, K))
    if len(y) != len(x_lab) or len(y) == 0:
        raise ValueError(f"x_lab and y_lab must have one label per image and at least one: {len(x_lab)} images, "
                         f"{len(y)} labels")

    def batch_loss(m, data, idx, key):
        x = _binary(key, data[0][idx], cfg.binarize)
        return -jnp.mean(jnp.sum(data[1][idx] * jax.nn.log_softmax(m.classify(x), axis=-1), axis=-1)), {}

    return _fit(model, cfg, (jnp.asarray(x_lab, jnp.float32), y), len(y), batch_loss, desc, progress, callback)


__all__ = ["ConditionalConfig", "ConditionalVAE", "build_conditional", "one_hot", "PARTS", "observed_mask",
           "split_images", "join_images", "conditional_elbo_terms", "CompletionNet", "completion_log_likelihood",
           "train_completion_net",
           "conditional_log_likelihood", "label_bounds", "expected_bound", "m2_unlabelled_bound", "m2_loss",
           "train_classifier", "classify", "decode_conditional", "ConditionalResult", "train_conditional", "train_m2"]
