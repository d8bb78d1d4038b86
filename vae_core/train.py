"""Training: one jitted ``lax.scan`` per epoch over device-resident data (a jitted step
in a Python loop for convolutional models on CPU, see :func:`make_epoch_fn`).

``train(model_cfg, train_cfg, x_train, x_test)`` is the single entry point the
notebooks use (usually through :func:`vae_core.checkpoint.train_or_load`, which caches
the result). Each epoch shuffles the training set, draws a fresh binarization of every
minibatch (dynamic binarization), takes one optimiser step per minibatch, all inside
one compiled function, and then evaluates the test set. Same seed, same numbers.

The NNX model is split once into its static graph and its parameters (``nnx.split``);
the compiled epoch carries the parameters and rebuilds the model inside the trace
(``nnx.merge``), which compiles to the same program as a hand-written pure function.
The loss is :func:`vae_core.objectives.training_loss`, the only place where beta,
warm-up, capacity and the IWAE bound are turned into a number to minimise.

``train`` does no file I/O: a per-epoch ``callback`` sees a :class:`EpochEnd` (history,
a copy of the model, the full training state), and ``resume=`` continues from such a
state. :func:`vae_core.checkpoint.train_resumable` joins the two into training that
survives being stopped.

With several local devices each minibatch is split across them (:mod:`vae_core.parallel`):
the same jitted epoch, the parameters replicated, the gradients summed by XLA.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from flax import nnx

from .data import CORRUPTIONS, binarize, check_images, corrupt
from .evaluate import evaluate
from .models import VAE, ModelConfig, build_model
from .objectives import LossSpec, training_loss
from .parallel import local_mesh, replicate, shard_batch, splits

OBJECTIVES = ("elbo", "iwae", "capacity", "beta_tcvae")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train.

    objective:       'elbo' (beta-weighted), 'iwae' (L_k with iwae_k samples),
                     'capacity' (Burgess et al.: -rec + gamma |KL - C|) or 'beta_tcvae'
                     (Chen et al.: -rec + MI + beta TC + dimension-wise KL, the TC estimated
                     on each minibatch, see :func:`vae_core.objectives.training_loss`).
    beta:            weight on the KL term ('elbo'), on the total correlation ('beta_tcvae');
                     0 gives an autoencoder with noise ('elbo').
    warmup_epochs:   KL weight rises linearly from 0 to beta over these epochs (0: off);
                     'beta_tcvae': all three KL terms are scaled from 0 to their weights.
    capacity_max, capacity_epochs, gamma: C rises linearly 0 -> capacity_max nats.
    binarize:        draw x_bin ~ Bernoulli(x) afresh for every minibatch; False uses the
                     data as given (binary sprites, or grey levels for a Gaussian decoder).
    adam_b1, adam_b2, adam_eps: Adam's moments (the IWAE paper uses 0.99, 0.999, 1e-4).
    final_learning_rate: optional; the learning rate decays from learning_rate to this
                     one along a cosine over all steps (None: constant).
    lr_stages:       optional IWAE-paper schedule: a tuple of (epochs, learning rate)
                     stages run one after the other (overrides final_learning_rate).
    eval_images:     how many test images are evaluated after each epoch (None: all).
    corruption:      None, or a denoising VAE's input corruption (:func:`vae_core.data.corrupt`):
                     'flip' (each pixel flipped with probability corruption_level) or 'mask'
                     (a corruption_level x corruption_level square blanked), drawn afresh for
                     every minibatch; the encoder sees the corrupted image, the decoder is scored
                     on the clean one ('elbo' and 'capacity' objectives). The per-epoch test
                     numbers stay those of clean inputs.
    corruption_level: the flip probability ('flip') or the square's side in pixels ('mask').
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
    final_learning_rate: float | None = None
    lr_stages: tuple[tuple[int, float], ...] | None = None
    seed: int = 0
    eval_images: int | None = None
    corruption: str | None = None
    corruption_level: float = 0.0

    def __post_init__(self):
        if self.corruption is not None:
            if self.corruption not in CORRUPTIONS:
                raise ValueError(f"corruption must be None or one of {CORRUPTIONS}, got {self.corruption!r}")
            if self.objective not in ("elbo", "capacity"):
                raise ValueError(f"corruption (a denoising VAE) needs objective 'elbo' or 'capacity', "
                                 f"not {self.objective!r}")
            bad = (not 0 < self.corruption_level <= 1 if self.corruption == "flip"
                   else self.corruption_level < 1 or self.corruption_level != int(self.corruption_level))
            if bad:
                raise ValueError(f"corruption_level={self.corruption_level} does not fit corruption "
                                 f"{self.corruption!r}: a probability in (0, 1] for 'flip', a whole number "
                                 "of pixels >= 1 for 'mask'")
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
        if self.lr_stages is not None:
            stages = tuple((int(e), float(lr)) for e, lr in self.lr_stages)
            if sum(e for e, _ in stages) != self.epochs:
                raise ValueError(f"lr_stages cover {sum(e for e, _ in stages)} epochs, not epochs={self.epochs}")
            object.__setattr__(self, "lr_stages", stages)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        if d.get("lr_stages") is not None:
            d["lr_stages"] = tuple(tuple(s) for s in d["lr_stages"])
        return cls(**d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class TrainResult:
    """What training returns: the trained model and a per-epoch history.

    history: dict of lists, one entry per epoch — 'train_loss', 'train_rec', 'train_kl'
    (minibatch means), 'kl_weight' (mean weight the loss put on the KL term in the
    epoch, see :func:`vae_core.objectives.training_loss`), 'test_elbo', 'test_rec',
    'test_kl', 'test_kl_per_dim' ([L] each), 'seconds' (wall time of the epoch);
    'train_mi', 'train_tc', 'train_dim_kl' (minibatch means of the MWS terms of
    :func:`vae_core.objectives.tc_decomposition`) fill only for objective 'beta_tcvae'.
    source: where the model came from ('trained', 'cache', 'shipped'), set by
    :func:`vae_core.checkpoint.train_or_load`.
    extra: facts stored beside the model: a shipped model's card (from cards.json), or
    the device and wall time of a model train_or_load trained.
    """

    model: VAE
    history: dict
    model_config: ModelConfig
    train_config: TrainConfig
    source: str = "trained"
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class TrainingState:
    """Everything needed to continue training: parameters, optimiser state, epochs done."""

    params: nnx.State
    opt_state: optax.OptState
    epochs_done: int
    history: dict


@dataclasses.dataclass
class EpochEnd:
    """What a per-epoch callback of :func:`train` sees.

    params and opt_state are the live buffers, which the next epoch donates (reuses):
    keep ``model()`` or ``state()`` (copies), never the buffers themselves.
    """

    epoch: int
    history: dict
    graphdef: nnx.GraphDef
    params: nnx.State
    opt_state: optax.OptState

    def model(self) -> VAE:
        """A copy of the model as it is now (safe to keep after training goes on)."""
        return nnx.merge(self.graphdef, jax.tree_util.tree_map(jnp.copy, self.params))

    def state(self) -> TrainingState:
        """A copy of the training state (parameters, optimiser state, history)."""
        copy = lambda tree: jax.tree_util.tree_map(jnp.copy, tree)  # noqa: E731
        return TrainingState(copy(self.params), copy(self.opt_state), self.epoch,
                             {k: list(v) for k, v in self.history.items()})


HISTORY_KEYS = ("train_loss", "train_rec", "train_kl", "kl_weight", "test_elbo", "test_rec", "test_kl",
                "test_kl_per_dim", "seconds", "train_mi", "train_tc", "train_dim_kl")
TC_TERMS = ("mi", "tc", "dim_kl")  # what a 'beta_tcvae' loss adds to its aux and the history records


def make_optimizer(cfg: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """Adam with the configured moments and learning-rate schedule."""
    lr = cfg.learning_rate
    if cfg.lr_stages is not None:
        values = [rate for _, rate in cfg.lr_stages]
        bounds = list(np.cumsum([e * steps_per_epoch for e, _ in cfg.lr_stages])[:-1])
        lr = optax.join_schedules([optax.constant_schedule(v) for v in values], [int(b) for b in bounds])
    elif cfg.final_learning_rate is not None:
        lr = optax.cosine_decay_schedule(cfg.learning_rate, steps_per_epoch * cfg.epochs,
                                         alpha=cfg.final_learning_rate / cfg.learning_rate)
    return optax.adam(lr, b1=cfg.adam_b1, b2=cfg.adam_b2, eps=cfg.adam_eps)


def loss_spec(cfg: TrainConfig, steps_per_epoch: int) -> LossSpec:
    """The objective of a TrainConfig with its schedules converted from epochs to steps."""
    return LossSpec(objective=cfg.objective, beta=cfg.beta,
                    warmup_steps=int(round(cfg.warmup_epochs * steps_per_epoch)), iwae_k=cfg.iwae_k,
                    capacity_max=cfg.capacity_max,
                    capacity_steps=max(1, int(round(cfg.capacity_epochs * steps_per_epoch))), gamma=cfg.gamma)


def make_epoch_fn(model: VAE, cfg: TrainConfig, tx, n_train: int, *, loop: str | None = None, loss=None):
    """A jitted epoch: run_epoch(params, opt_state, step, data [n, D], key)
      -> params, opt_state, step, metrics {'loss', 'rec', 'kl', 'kl_weight': [steps]}
    (plus 'mi', 'tc', 'dim_kl' [steps] when the loss's aux has them, as the 'beta_tcvae' loss's does)

    loss: optional replacement for :func:`vae_core.objectives.training_loss`, called as
    loss(model, x [batch, D], key, step) -> (scalar, {'rec': [batch], 'kl': [batch],
    'kl_weight': []}) — e.g. notebook 03's surrogate losses for other gradient estimators.
    params is ``nnx.split(model)[1]``; ``nnx.merge(graphdef, params)`` gives the model back.
    loop='scan' compiles the whole epoch into one ``lax.scan`` (no Python between steps);
    loop='python' jits one step and calls it once per minibatch. The default (None) is
    'scan', except for convolutional models on CPU: XLA:CPU runs convolutions inside a
    loop body on a slow path (jax-ml/jax#12868; ``benchmarks/conv_speed.py`` measured
    7.3x slower for notebook 05's sprite net), so those take the Python loop. Both draw
    the same permutation and keys.
    """
    if loop is None:
        conv_on_cpu = model.cfg.architecture == "conv" and jax.default_backend() == "cpu"
        loop = "python" if conv_on_cpu else "scan"
    if loop not in ("scan", "python"):
        raise ValueError(f"loop must be 'scan' or 'python', got {loop!r}")
    graphdef = nnx.graphdef(model)
    steps = n_train // cfg.batch_size
    spec = loss_spec(cfg, steps)

    if loss is not None and cfg.corruption is not None:
        raise ValueError("a replacement loss cannot be combined with cfg.corruption (a denoising VAE)")

    def loss_fn(params, x, key, step):
        if loss is not None:
            return loss(nnx.merge(graphdef, params), x, key, step)
        if cfg.corruption is None:
            return training_loss(nnx.merge(graphdef, params), x, key, step, spec)
        # a fresh corruption per minibatch, from a key no other draw uses (folding keeps the
        # binarization and posterior draws of an uncorrupted run unchanged)
        noisy = corrupt(jax.random.fold_in(key, 1), x, cfg.corruption, cfg.corruption_level, model.cfg.image_shape)
        return training_loss(nnx.merge(graphdef, params), noisy, key, step, spec, target=x)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def train_step(carry, batch_key):
        params, opt_state, step, data = carry
        idx, key = batch_key
        k_bin, k_loss = jax.random.split(key)
        x = shard_batch(data[idx])  # split across local devices when there are several
        if cfg.binarize:
            x = binarize(k_bin, x)
        (loss, aux), grads = grad_fn(params, x, k_loss, step)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        metrics = {"loss": loss, "rec": jnp.mean(aux["rec"]), "kl": jnp.mean(aux["kl"]),
                   "kl_weight": aux["kl_weight"]}
        metrics.update({name: jnp.mean(aux[name]) for name in TC_TERMS if name in aux})
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


def train(model_cfg: ModelConfig, cfg: TrainConfig, x_train, x_test=None, *, init: VAE | None = None,
          resume: TrainingState | None = None, callback=None, loss=None, progress: bool = True,
          desc: str = "training") -> TrainResult:
    """Train a model; returns a :class:`TrainResult`.

    x_train: [n, D] images in [0, 1] (grey levels; binarized per minibatch when
    cfg.binarize). x_test: optional [m, D] test images, evaluated after every epoch on a
    fixed binarization (seeded), so test numbers are comparable across epochs and runs.
    init: start from this model's parameters instead of a fresh initialisation.
    resume: continue from a :class:`TrainingState` (same configs); the remaining epochs
    use the same keys as an uninterrupted run, so the result is the same.
    callback: called as callback(EpochEnd) after every epoch; returning True stops
    training there (the result then holds the epochs done so far).
    loss: optional replacement for the configured objective (see :func:`make_epoch_fn`).
    Raises FloatingPointError naming the epoch, step and term if the loss becomes NaN.
    """
    check_images(x_train, "x_train", model_cfg.input_dim,
                 binary=not cfg.binarize and model_cfg.likelihood == "bernoulli")
    if x_test is not None:
        check_images(x_test, "x_test", model_cfg.input_dim)
    if len(x_train) < cfg.batch_size:
        raise ValueError(f"x_train has {len(x_train)} images, fewer than batch_size={cfg.batch_size}")

    key = jax.random.PRNGKey(cfg.seed)
    k_init, k_test, k_train = jax.random.split(key, 3)
    data = jnp.asarray(x_train, jnp.float32)
    model = build_model(model_cfg, k_init, data_mean=jnp.mean(data, 0))
    graphdef, params = nnx.split(model)
    if init is not None and init.cfg != model_cfg:
        raise ValueError(f"init is a model of another config ({init.cfg}) than model_cfg ({model_cfg})")
    if init is not None:  # copy: the epoch function donates (reuses) its input buffers
        params = jax.tree_util.tree_map(jnp.array, nnx.state(init))
    steps_per_epoch = len(x_train) // cfg.batch_size
    tx = make_optimizer(cfg, steps_per_epoch)
    opt_state = tx.init(params)
    history = {k: [] for k in HISTORY_KEYS}
    first = 1
    if resume is not None:
        params = jax.tree_util.tree_map(jnp.array, resume.params)
        opt_state = jax.tree_util.tree_map(jnp.array, resume.opt_state)
        history = {k: list(resume.history.get(k, [])) for k in HISTORY_KEYS}
        first = resume.epochs_done + 1
    # one device: unchanged; several: every device holds the parameters, the optimizer state and the data
    params, opt_state, data = replicate((params, opt_state, data))
    if local_mesh() is not None and not splits(cfg.batch_size):
        warnings.warn(f"batch_size={cfg.batch_size} is not a multiple of the {local_mesh().size} local devices, "
                      "so each device computes every minibatch in full (same numbers, no speed-up); choose a "
                      f"multiple of {local_mesh().size} to split it", stacklevel=2)
    run_epoch = make_epoch_fn(model, cfg, tx, len(x_train), loss=loss)

    test = None
    if x_test is not None:
        test = jnp.asarray(x_test[: cfg.eval_images], jnp.float32)
        if cfg.binarize:
            test = binarize(k_test, test)

    step = jnp.asarray((first - 1) * steps_per_epoch, jnp.int32)
    epoch_keys = jax.random.split(k_train, cfg.epochs)
    bar = tqdm(range(first, cfg.epochs + 1), desc=desc, unit="epoch", disable=not progress,
               initial=first - 1, total=cfg.epochs)
    for epoch in bar:
        start = time.perf_counter()
        params, opt_state, step, m = run_epoch(params, opt_state, step, data, epoch_keys[epoch - 1])
        m = jax.device_get(m)
        _raise_if_nan(m, epoch)
        for name, key_ in (("train_loss", "loss"), ("train_rec", "rec"), ("train_kl", "kl"), ("kl_weight", "kl_weight")):
            history[name].append(float(np.mean(m[key_])))
        for name in TC_TERMS:
            if name in m:
                history[f"train_{name}"].append(float(np.mean(m[name])))
        if test is not None:
            ev = evaluate(nnx.merge(graphdef, params), test, jax.random.fold_in(k_test, epoch), check=False)
            for name in ("elbo", "rec", "kl"):
                history[f"test_{name}"].append(float(ev[name]))
            history["test_kl_per_dim"].append(np.asarray(ev["kl_per_dim"]).tolist())
        history["seconds"].append(time.perf_counter() - start)
        post = {"loss": f"{history['train_loss'][-1]:.2f}"}
        if test is not None:
            post["test ELBO"] = f"{history['test_elbo'][-1]:.2f}"
        bar.set_postfix(post)
        if callback is not None and callback(EpochEnd(epoch, history, graphdef, params, opt_state)):
            break
    return TrainResult(nnx.merge(graphdef, params), history, model_cfg, cfg)


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


__all__ = ["OBJECTIVES", "TrainConfig", "TrainResult", "TrainingState", "EpochEnd", "HISTORY_KEYS", "TC_TERMS",
           "make_optimizer", "loss_spec", "make_epoch_fn", "train"]
