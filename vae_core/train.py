"""Training: one jitted ``lax.scan`` per epoch over device-resident data (a jitted step
in a Python loop for convolutional models on CPU, see :func:`make_epoch_fn`).

``train(model_cfg, train_cfg, x_train, x_test)`` is the single entry point the
notebooks use (usually through :func:`vae_core.checkpoint.train_or_load`, which caches
the result). Each epoch shuffles the training set, draws a fresh binarization of every
minibatch (dynamic binarization), takes one optimiser step per minibatch, all inside
one compiled function, and then evaluates the test set. Same seed, same numbers.
"""
from __future__ import annotations

import dataclasses
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from .data import binarize
from .evaluate import check_images, evaluate
from .models import ModelConfig, init_params
from .objectives import capacity_objective, elbo_terms, iwae_bound, linear_warmup

OBJECTIVES = ("elbo", "iwae", "capacity")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train.

    objective:       'elbo' (beta-weighted), 'iwae' (L_k with iwae_k samples) or
                     'capacity' (Burgess et al.: -rec + gamma |KL - C|).
    beta:            weight on the KL term ('elbo'); 0 gives an autoencoder with noise.
    warmup_epochs:   KL weight rises linearly from 0 to beta over these epochs (0: off).
    capacity_max, capacity_epochs, gamma: C rises linearly 0 -> capacity_max nats.
    binarize:        draw x_bin ~ Bernoulli(x) afresh for every minibatch; False uses the
                     data as given (binary sprites, or grey levels for a Gaussian decoder).
    adam_b1, adam_b2, adam_eps: Adam's moments (the IWAE paper uses 0.99, 0.999, 1e-4).
    lr_decay:        optional final learning rate: cosine decay from learning_rate.
    eval_samples:    test images evaluated after each epoch (None: all).
    """

    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    objective: str = "elbo"
    beta: float = 1.0
    warmup_epochs: float = 0.0
    iwae_k: int = 1
    capacity_max: float = 25.0
    capacity_epochs: float = 10.0
    gamma: float = 100.0
    binarize: bool = True
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    adam_eps: float = 1e-8
    lr_decay: float | None = None
    seed: int = 0
    eval_samples: int | None = None

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0 (0 is an autoencoder with noise), got {self.beta}")
        if self.iwae_k < 1:
            raise ValueError(f"iwae_k must be >= 1, got {self.iwae_k}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class TrainResult:
    """What training returns: the model, its parameters and a per-epoch history.

    history: dict of lists, one entry per epoch — 'train_loss', 'train_rec', 'train_kl'
    (minibatch means), 'test_elbo', 'test_rec', 'test_kl', 'test_kl_per_dim' ([L] each),
    'beta' (KL weight at the epoch's end), 'seconds' (wall time of the epoch).
    """

    model: object
    params: dict
    history: dict
    model_config: ModelConfig
    train_config: TrainConfig


def make_optimizer(cfg: TrainConfig, steps_total: int) -> optax.GradientTransformation:
    lr = cfg.learning_rate
    if cfg.lr_decay is not None:
        lr = optax.cosine_decay_schedule(cfg.learning_rate, steps_total, alpha=cfg.lr_decay / cfg.learning_rate)
    return optax.adam(lr, b1=cfg.adam_b1, b2=cfg.adam_b2, eps=cfg.adam_eps)


def make_loss_fn(model, cfg: TrainConfig, steps_per_epoch: int):
    """loss(params, x [batch, D], key, step) -> (scalar loss, (rec [batch], kl [batch]))."""
    warmup_steps = int(round(cfg.warmup_epochs * steps_per_epoch))
    capacity_steps = max(1, int(round(cfg.capacity_epochs * steps_per_epoch)))

    def loss_fn(params, x, key, step):
        if cfg.objective == "iwae":
            k_iw, k_elbo = jax.random.split(key)
            bound = iwae_bound(model, params, x, k_iw, cfg.iwae_k)
            # rec and KL of one draw, for the history only (no gradient through them)
            t = jax.lax.stop_gradient(elbo_terms(model, params, x, k_elbo))
            return -jnp.mean(bound), (t["rec"], t["kl"])
        t = elbo_terms(model, params, x, key)
        if cfg.objective == "capacity":
            c = cfg.capacity_max * jnp.clip(step / capacity_steps, 0.0, 1.0)
            loss = capacity_objective(t["rec"], t["kl"], c, cfg.gamma)
        else:
            weight = linear_warmup(step, warmup_steps, cfg.beta)
            loss = -(t["rec"] - weight * t["kl"])
        return jnp.mean(loss), (t["rec"], t["kl"])

    return loss_fn


def make_epoch_fn(model, cfg: TrainConfig, tx, n_train: int, *, loop: str | None = None):
    """A jitted epoch: run_epoch(params, opt_state, step, data [n, D], key)
      -> params, opt_state, step, metrics {'loss','rec','kl': [steps]}

    loop='scan' compiles the whole epoch into one ``lax.scan`` (no Python between steps);
    loop='python' jits one step and calls it once per minibatch. The default (None) is
    'scan', except for convolutional models on CPU: XLA:CPU runs convolutions inside a
    loop body on a slow path (jax-ml/jax#12868; measured here 11x slower for the sprite
    beta-VAE), so those take the Python loop. Both draw the same permutation and keys.
    """
    if loop is None:
        conv_on_cpu = model.cfg.architecture == "conv" and jax.default_backend() == "cpu"
        loop = "python" if conv_on_cpu else "scan"
    if loop not in ("scan", "python"):
        raise ValueError(f"loop must be 'scan' or 'python', got {loop!r}")
    steps = n_train // cfg.batch_size
    loss_fn = make_loss_fn(model, cfg, steps)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def train_step(carry, batch_key):
        params, opt_state, step, data = carry
        idx, key = batch_key
        k_bin, k_loss = jax.random.split(key)
        x = data[idx]
        if cfg.binarize:
            x = binarize(k_bin, x)
        (loss, (rec, kl)), grads = grad_fn(params, x, k_loss, step)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        metrics = {"loss": loss, "rec": jnp.mean(rec), "kl": jnp.mean(kl)}
        return (params, opt_state, step + 1, data), metrics

    @jax.jit
    def epoch_plan(key):
        k_perm, k_steps = jax.random.split(key)
        order = jax.random.permutation(k_perm, n_train)[: steps * cfg.batch_size]
        return order.reshape(steps, cfg.batch_size), jax.random.split(k_steps, steps)

    if loop == "scan":
        @partial(jax.jit, donate_argnums=(0, 1))
        def run_epoch(params, opt_state, step, data, key):
            batches, keys = epoch_plan(key)
            (params, opt_state, step, _), metrics = jax.lax.scan(
                train_step, (params, opt_state, step, data), (batches, keys), unroll=2)
            return params, opt_state, step, metrics

        return run_epoch

    @partial(jax.jit, donate_argnums=(0, 1))
    def one_step(params, opt_state, step, data, idx, key):
        (params, opt_state, step, _), metrics = train_step((params, opt_state, step, data), (idx, key))
        return params, opt_state, step, metrics

    def run_epoch_python(params, opt_state, step, data, key):
        batches, keys = epoch_plan(key)
        history = []
        for i in range(steps):
            params, opt_state, step, metrics = one_step(params, opt_state, step, data, batches[i], keys[i])
            history.append(metrics)
        return params, opt_state, step, jax.tree_util.tree_map(lambda *m: jnp.stack(m), *history)

    return run_epoch_python


def train(model_cfg: ModelConfig, cfg: TrainConfig, x_train, x_test=None, *,
          params=None, progress: bool = True, desc: str = "training") -> TrainResult:
    """Train a model; returns a :class:`TrainResult`.

    x_train: [n, D] images in [0, 1] (grey levels; binarized per minibatch when
    cfg.binarize). x_test: optional [m, D] test images, evaluated after every epoch on a
    fixed binarization (seeded), so test numbers are comparable across epochs and runs.
    params: start from these instead of a fresh initialisation.
    Raises FloatingPointError naming the epoch, step and term if the loss becomes NaN.
    """
    check_images(x_train, "x_train", model_cfg.input_dim, binary=not cfg.binarize and model_cfg.likelihood == "bernoulli")
    if x_test is not None:
        check_images(x_test, "x_test", model_cfg.input_dim)
    if len(x_train) < cfg.batch_size:
        raise ValueError(f"x_train has {len(x_train)} images, fewer than batch_size={cfg.batch_size}")

    key = jax.random.PRNGKey(cfg.seed)
    k_init, k_test, k_train = jax.random.split(key, 3)
    data = jnp.asarray(x_train, jnp.float32)
    model, fresh = init_params(model_cfg, k_init, data_mean=jnp.mean(data, 0))
    # copy given parameters: the epoch function donates (reuses) its input buffers
    params = fresh if params is None else jax.tree_util.tree_map(jnp.array, params)
    steps_per_epoch = len(x_train) // cfg.batch_size
    tx = make_optimizer(cfg, steps_per_epoch * cfg.epochs)
    opt_state = tx.init(params)
    run_epoch = make_epoch_fn(model, cfg, tx, len(x_train))

    test = None
    if x_test is not None:
        test = jnp.asarray(x_test[: cfg.eval_samples], jnp.float32)
        if cfg.binarize:
            test = binarize(k_test, test)

    history = {k: [] for k in ("train_loss", "train_rec", "train_kl", "test_elbo", "test_rec",
                               "test_kl", "test_kl_per_dim", "beta", "seconds")}
    step = jnp.zeros((), jnp.int32)
    bar = tqdm(range(1, cfg.epochs + 1), desc=desc, unit="epoch", disable=not progress)
    for epoch, k_epoch in zip(bar, jax.random.split(k_train, cfg.epochs)):
        start = time.perf_counter()
        params, opt_state, step, m = run_epoch(params, opt_state, step, data, k_epoch)
        m = jax.device_get(m)
        _raise_if_nan(m, epoch)
        history["train_loss"].append(float(np.mean(m["loss"])))
        history["train_rec"].append(float(np.mean(m["rec"])))
        history["train_kl"].append(float(np.mean(m["kl"])))
        history["beta"].append(_kl_weight(cfg, int(step), steps_per_epoch))
        if test is not None:
            ev = evaluate(model, params, test, jax.random.fold_in(k_test, epoch), beta=1.0, check=False)
            for name in ("elbo", "rec", "kl"):
                history[f"test_{name}"].append(float(ev[name]))
            history["test_kl_per_dim"].append(np.asarray(ev["kl_per_dim"]).tolist())
        history["seconds"].append(time.perf_counter() - start)
        post = {"loss": f"{history['train_loss'][-1]:.2f}"}
        if test is not None:
            post["test ELBO"] = f"{history['test_elbo'][-1]:.2f}"
        bar.set_postfix(post)
    return TrainResult(model, params, history, model_cfg, cfg)


def _kl_weight(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    if cfg.objective != "elbo":
        return 1.0
    return float(linear_warmup(step, int(round(cfg.warmup_epochs * steps_per_epoch)), cfg.beta))


def _raise_if_nan(metrics: dict, epoch: int) -> None:
    for term in ("rec", "kl", "loss"):
        values = np.asarray(metrics[term])
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            label = {"rec": "reconstruction term log p(x|z)", "kl": "KL term", "loss": "loss"}[term]
            raise FloatingPointError(
                f"Training diverged in epoch {epoch}, step {bad[0] + 1} of {values.size}: the {label} "
                f"became {values[bad[0]]}. Lower the learning rate, check the data for NaN, "
                "or use KL warm-up.")
