"""Checkpoints, resumable training and the model cache the notebooks share.

A checkpoint is one msgpack file holding the model's parameters (the NNX state as
plain arrays, keyed by path such as ``decoder/output/kernel``), the ModelConfig and
TrainConfig that made them, the training history, and a SHA-256 of the payload.
Arrays are stored as host numpy arrays, so a file written on a GPU loads on a CPU.
Writes are atomic (:func:`vae_core.files.atomic_write`), so an interrupted save never
leaves half a file behind.

``train_or_load`` turns this into a cache: a notebook that was run once loads its model
instead of retraining it. ``train_resumable`` trains in chunks that survive being
stopped: the full training state (optimiser included) is saved every few seconds.

Cache folder: ``$VAE_CACHE_DIR`` if set, else ``~/.cache/vae_course/models``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from . import __version__
from . import shipped
from .conditional import (CompletionNet, ConditionalConfig, ConditionalResult, ConditionalVAE, classify,
                          completion_log_likelihood, conditional_elbo_terms, observed_mask, one_hot, split_images)
from .config import device_name
from .data import binarize, load_mnist
from .evaluate import evaluate
from .files import atomic_write
from .models import VAE, ModelConfig, build_model, load_arrays, model_from_arrays, params_to_arrays
from .train import EpochEnd, TrainConfig, TrainingState, TrainResult, make_optimizer, train

CACHE_ENV = "VAE_CACHE_DIR"
FORMAT = "vae_core-checkpoint-2"
STATE_FORMAT = "vae_core-training-state-2"
OLD_FORMATS = {"vae_core-checkpoint-1": "an earlier vae_core built on Flax Linen"}


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or was made for a different configuration."""


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "vae_course" / "models")).expanduser()


def _model_from_arrays(cfg: ModelConfig, arrays: dict, where: str) -> VAE:
    try:
        return model_from_arrays(cfg, arrays)
    except ValueError as err:
        raise CheckpointError(f"{where} does not fit its model config: {err}") from err


# ----------------------------------------------------------------------------- sealed files
def _seal(payload: dict, fmt: str) -> bytes:
    body = flax.serialization.msgpack_serialize(payload)
    return flax.serialization.msgpack_serialize({"format": fmt, "sha256": hashlib.sha256(body).hexdigest(),
                                                 "payload": body})


def _unseal(path: Path, fmt: str, fix: str) -> dict:
    if not path.exists():
        raise CheckpointError(f"No checkpoint at {path}.")
    try:
        outer = flax.serialization.msgpack_restore(path.read_bytes())
        body, found = outer["payload"], outer.get("format")
    except Exception as err:
        raise CheckpointError(f"Checkpoint {path} is corrupt ({type(err).__name__}: {err}). {fix}") from err
    if found in OLD_FORMATS:
        raise CheckpointError(f"Checkpoint {path} was written by {OLD_FORMATS[found]} and cannot be read by "
                              f"this version. {fix}")
    if found != fmt or hashlib.sha256(body).hexdigest() != outer.get("sha256"):
        raise CheckpointError(f"Checkpoint {path} is corrupt: its checksum or format ({found!r}) does not "
                              f"match. {fix}")
    return flax.serialization.msgpack_restore(body)


def _check_configs(path, saved: tuple, given: tuple) -> None:
    for g, s, what in zip(given, saved, ("model", "training")):
        if g is not None and g != s:
            asked = g.to_dict()
            diff = {k: (v, asked[k]) for k, v in s.to_dict().items() if asked[k] != v}
            raise CheckpointError(f"Checkpoint {path} was made with a different {what} config: "
                                  f"saved vs asked {diff}.")


RETRAIN_HINT = "Delete it, or call train_or_load(..., on_corrupt='retrain')."


def save_checkpoint(path, result: TrainResult, extra: dict | None = None, dtype=None) -> Path:
    """Write parameters, configs and history to ``path`` atomically. Returns the path.

    extra: optional JSON-able facts stored beside them (e.g. the device a cached model was
    trained on; a shipped model's card lives in cards.json, see :mod:`vae_core.shipped`).
    dtype: store the parameters in this dtype (e.g. 'float16'); loading casts them back
    to the model's float32. A parameter that does not fit the dtype (overflow to inf)
    raises ValueError naming it. With a dtype (a shipped model) the history's numeric series
    are also stored compactly, as float32 arrays (4 bytes a number instead of about 20 of
    JSON: 3,280 epochs of 50 KL values per latent took 3.6 MB as JSON); they load as lists.
    """
    history, series = result.history, {}
    if dtype is not None:
        series = {k: np.asarray(v, np.float32) for k, v in history.items() if _is_numeric_series(v)}
        history = {k: v for k, v in history.items() if k not in series}
    meta = {"model_config": result.model_config.to_dict(), "train_config": result.train_config.to_dict(),
            "history": history, "history_order": list(result.history), "vae_core_version": __version__,
            "extra": extra or {}}
    params = params_to_arrays(result.model)
    if dtype is not None:
        with np.errstate(over="ignore"):  # an overflow is reported below, by name
            cast = {k: np.asarray(v, dtype) for k, v in params.items()}
        bad = [k for k, v in cast.items() if not np.all(np.isfinite(v)) and np.all(np.isfinite(params[k]))]
        if bad:
            raise ValueError(f"parameters {bad} do not fit in {dtype} (values beyond its range); store float32")
        params = cast
    return atomic_write(path, _seal({"params": params, "meta": json.dumps(meta), "history": series}, FORMAT))


def _is_numeric_series(values) -> bool:
    """A non-empty list of numbers, or of equal-length lists of numbers (e.g. KL per latent per epoch)."""
    try:
        a = np.asarray(values)
    except ValueError:  # ragged
        return False
    return isinstance(values, (list, tuple, np.ndarray)) and a.size > 0 and a.dtype.kind in "fiu"


def _history(inner: dict, meta: dict) -> dict:
    """The history as saved: JSON lists, plus the numeric series stored as arrays, in the saved order."""
    history = dict(meta["history"])
    history.update({k: np.asarray(v).tolist() for k, v in (inner.get("history") or {}).items()})
    order = meta.get("history_order", list(history))
    return {k: history[k] for k in order if k in history} | {k: v for k, v in history.items() if k not in order}


def load_checkpoint(path, *, model_config: ModelConfig | None = None,
                    train_config: TrainConfig | None = None, fix: str = RETRAIN_HINT) -> TrainResult:
    """Read a checkpoint; with configs given, refuse one made with different ones.

    Raises CheckpointError naming the problem (missing, corrupt, older format, config
    mismatch, parameters that do not fit). The extra facts are in ``result.extra``.
    """
    path = Path(path)
    inner = _unseal(path, FORMAT, fix)
    meta = json.loads(inner["meta"])
    saved = (ModelConfig.from_dict(meta["model_config"]), TrainConfig.from_dict(meta["train_config"]))
    _check_configs(path, saved, (model_config, train_config))
    model = _model_from_arrays(saved[0], inner["params"], f"Checkpoint {path}")
    return TrainResult(model, _history(inner, meta), *saved, extra=meta.get("extra", {}))


# ----------------------------------------------------------------------------- conditional models
CONDITIONAL_FORMAT = "vae_core-conditional-checkpoint-1"


def save_conditional(path, result, train_config: TrainConfig, extra: dict | None = None, dtype=None) -> Path:
    """Write a trained conditional model (:class:`vae_core.conditional.ConditionalResult`: a
    ConditionalVAE or CompletionNet and its history) with its configs, atomically. Returns the path.

    extra: JSON-able facts beside it (e.g. M2's alpha and the label draw's seed); dtype as in
    :func:`save_checkpoint`.
    """
    model = result.model
    meta = {"kind": "completion_net" if isinstance(model, CompletionNet) else "conditional_vae",
            "config": dataclasses.asdict(model.cfg), "train_config": train_config.to_dict(),
            "history": result.history, "vae_core_version": __version__, "extra": extra or {}}
    params = params_to_arrays(model)
    if dtype is not None:
        params = {k: np.asarray(v, dtype) for k, v in params.items()}
        bad = [k for k, v in params.items() if not np.all(np.isfinite(v))]
        if bad:
            raise ValueError(f"parameters {bad} do not fit in {dtype} (values beyond its range); store float32")
    return atomic_write(path, _seal({"params": params, "meta": json.dumps(meta)}, CONDITIONAL_FORMAT))


def load_conditional(path, *, config=None, train_config: TrainConfig | None = None, fix: str = RETRAIN_HINT):
    """Read what :func:`save_conditional` wrote -> (ConditionalResult, TrainConfig, extra).

    With config (a ConditionalConfig) or train_config given, a file made with other ones raises
    CheckpointError, as a missing, corrupt or mis-shaped file does, naming the problem.
    """
    path = Path(path)
    inner = _unseal(path, CONDITIONAL_FORMAT, fix)
    meta = json.loads(inner["meta"])
    saved_cfg = ConditionalConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()})
    saved_train = TrainConfig.from_dict(meta["train_config"])
    if config is not None and config != saved_cfg:
        raise CheckpointError(f"Checkpoint {path} was made with a different conditional model config: saved "
                              f"{saved_cfg}, asked {config}. {fix}")
    if train_config is not None and train_config != saved_train:
        raise CheckpointError(f"Checkpoint {path} was made with a different training config: saved "
                              f"{saved_train}, asked {train_config}. {fix}")
    cls = CompletionNet if meta["kind"] == "completion_net" else ConditionalVAE
    try:
        model = load_arrays(cls(saved_cfg, rngs=nnx.Rngs(params=0)), inner["params"])
    except ValueError as err:
        raise CheckpointError(f"Checkpoint {path} does not fit its model config: {err}. {fix}") from err
    return ConditionalResult(model, meta["history"]), saved_train, meta.get("extra", {})


def train_or_load_conditional(name: str, config, train_config: TrainConfig, fit, *, data: tuple,
                              spec: dict | None = None, test: tuple | None = None, retrain: bool = False,
                              directory=None):
    """The shipped conditional model for these configs, data and settings, else the cached one,
    else ``fit()``, cached.

    fit: a function () -> ConditionalResult that trains it (e.g. ``lambda: train_m2(...)``);
    config: the ConditionalConfig the trained model must have; data: the arrays it trains on
    (their fingerprints go in the cache key, with both configs and spec); spec: JSON-able
    settings outside the configs: its 'task' says what the condition is ('label', or the part
    of :func:`vae_core.conditional.observed_mask` that is seen), the rest are the training's
    own (M2's alpha, the label draw). test: (x_test [n, 784], y_test [n]), the MNIST test
    images and labels the card's metrics are measured on when the model is shipped.
    retrain=True or ``VAE_RETRAIN=1`` trains again and overwrites the cache file. A damaged
    file raises CheckpointError naming it and how to retrain. Prints one line saying what it
    loaded or trained. With ``VAE_SHIP`` set (scripts/ship_models.py) the model is also
    written as the shipped model ``name``, with its card.
    """
    retrain = retrain or retrain_requested()
    notebook = shipped.ship_requested()
    spec = spec or {}
    fingerprints = [shipped.data_fingerprint(a) for a in data]
    card = None if retrain or notebook else shipped.find_conditional_card(
        dataclasses.asdict(config), train_config, fingerprints, spec)
    if card is not None:
        result = load_shipped_conditional(card["name"])
        print(shipped.describe(card))
        return result
    key = json.dumps([dataclasses.asdict(config), train_config.to_dict(), fingerprints, spec, __version__],
                     sort_keys=True, default=str)
    path = Path(directory or cache_dir()) / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.msgpack"
    fix = f"Delete {path}, or pass retrain=True (VAE_RETRAIN=1) to train it again."
    if path.exists() and not retrain:
        result, _, extra = load_conditional(path, config=config, train_config=train_config, fix=fix)
        print(f"cached model {name}: {len(result.history.get('loss', []))} epochs, trained in "
              f"{extra.get('wall_seconds', float('nan')):.0f} s on {extra.get('device', '?')}")
    else:
        start = time.perf_counter()
        result = fit()
        if result.model.cfg != config:
            raise ValueError(f"fit() returned a model of config {result.model.cfg}, not the {config} it was cached "
                             "for")
        extra = {"spec": spec, "device": device_name(), "wall_seconds": round(time.perf_counter() - start, 1)}
        save_conditional(path, result, train_config, extra=extra)
        print(f"trained model {name}: {len(result.history.get('loss', []))} epochs in {extra['wall_seconds']:.0f} s "
              f"(cached in {path})")
    if notebook:
        if test is None:
            print(f"not shipping {name}: train_or_load_conditional got no test=(x_test, y_test) to measure it on")
        else:
            ship_conditional(name, result, train_config, data, spec, test, {
                "notebook": notebook, "command": shipped.rebuild_command(name, notebook),
                "device": extra.get("device", "not recorded"), "wall_seconds": extra.get("wall_seconds")})
    return result


def conditional_test_pairs(task: str, x_test, y_test, train_config: TrainConfig, n_classes: int = 10):
    """The fixed test pairs (t, c) of a conditional task, from the test images binarized once
    (:func:`fixed_test_set`): task 'label' -> (images [n, 784], one-hot labels [n, n_classes]);
    a part name of :func:`vae_core.conditional.observed_mask` -> (missing part, seen part)."""
    x = np.asarray(fixed_test_set(x_test, train_config))
    if task == "label":
        return x, one_hot(y_test, n_classes)
    seen, hidden = split_images(x, observed_mask(task))
    return hidden, seen


def conditional_test_metrics(model, task: str, x_test, y_test, train_config: TrainConfig) -> dict:
    """The numbers on a shipped conditional model's card, measured on :func:`conditional_test_pairs`:
    'test_elbo' (mean ELBO(t | c), one sample per image with key LOGPX_SEED; for a
    CompletionNet its exact mean log p(t | c)), 'test_metric' (which of the two), and for M2
    'test_error' (the classifier's error on the test images)."""
    n_classes = model.cfg.cond_dim if task == "label" else 10
    t, c = conditional_test_pairs(task, x_test, y_test, train_config, n_classes)
    if isinstance(model, CompletionNet):
        return {"test_metric": "log p(t|c)", "test_elbo": float(np.mean(completion_log_likelihood(model, t, c)))}
    terms = conditional_elbo_terms(model, jnp.asarray(t), jnp.asarray(c), jax.random.PRNGKey(shipped.LOGPX_SEED))
    out = {"test_metric": "ELBO(t|c)", "test_elbo": float(jnp.mean(terms["elbo"]))}
    if model.cfg.n_classes:
        out["test_error"] = float(np.mean(classify(model, t) != np.asarray(y_test)))
    return out


def ship_conditional(name: str, result: ConditionalResult, train_config: TrainConfig, data: tuple, spec: dict,
                     test: tuple, card: dict) -> dict:
    """Store a trained conditional model as the shipped model ``name`` (float16) with its card:
    configs, spec, the training data's fingerprints, the metrics of :func:`conditional_test_metrics`
    on the stored weights and on the float32 ones, the file's SHA-256 and size, the training time.
    card: the facts the caller knows (notebook, device, command, ...). Returns the card."""
    path = shipped.shipped_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    x_test, y_test = test
    before = conditional_test_metrics(result.model, spec["task"], x_test, y_test, train_config)
    save_conditional(path, result, train_config, extra={"spec": spec}, dtype=shipped.STORED_DTYPE)
    stored, _, _ = load_conditional(path)
    after = conditional_test_metrics(stored.model, spec["task"], x_test, y_test, train_config)
    seconds = float(np.sum(result.history.get("seconds", [0.0])))
    card = {
        "name": name, "kind": "conditional", "purpose": shipped.PURPOSES.get(name, card.get("purpose", "")),
        "model_kind": "completion_net" if isinstance(result.model, CompletionNet) else "conditional_vae",
        "epochs": len(result.history.get("loss", [])), "train_minutes": round(seconds / 60, 1),
        "train_seconds": round(seconds, 1), **card,
        "config": dataclasses.asdict(result.model.cfg), "train_config": train_config.to_dict(), "spec": spec,
        "train_data": [shipped.data_fingerprint(a) for a in data],
        "train_shape": list(np.shape(max(data, key=len))),  # the largest array: M2's unlabelled images
        "test_data": shipped.data_fingerprint(x_test), "test_images": int(len(x_test)),
        "test_binarization_seed": shipped.TEST_BINARIZATION_SEED if train_config.binarize else None,
        **after, "test_elbo_float32": round(before["test_elbo"], 4), "stored_dtype": shipped.STORED_DTYPE,
        "mnist_sha256": shipped.mnist_checksum() if is_mnist_split(x_test, "test") else None,
        "file_sha256": file_sha256(path), "file_bytes": path.stat().st_size,
    }
    card["test_elbo"] = round(card["test_elbo"], 4)
    if "test_error" in before:
        card["test_error_float32"] = before["test_error"]
    if not card["purpose"]:
        print(f"warning: shipped model {name} has no purpose; add it to vae_core.shipped.PURPOSES")
    card = json.loads(json.dumps(card))
    shipped.write_card(card)
    return card


def load_shipped_conditional(name: str) -> ConditionalResult:
    """Load a shipped conditional model by name (its card: ``shipped.load_cards()[name]``). A
    missing, damaged or altered file raises CheckpointError naming the file and the fix."""
    cards = shipped.load_cards()
    if cards.get(name, {}).get("kind") != "conditional":
        raise KeyError(f"no shipped conditional model named {name!r}; MODELS.md lists the shipped models")
    card = cards[name]
    path, fix = _verified_shipped_file(name, card)
    config = ConditionalConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in card["config"].items()})
    result, _, _ = load_conditional(path, config=config, train_config=TrainConfig.from_dict(card["train_config"]),
                                    fix=fix)
    return result


# ----------------------------------------------------------------------------- resumable training
def save_training_state(path, state: TrainingState, model_config: ModelConfig, train_config: TrainConfig) -> Path:
    """Write a :class:`TrainingState` (parameters, Adam moments, history) atomically."""
    payload = {"params": params_to_arrays(nnx.merge(nnx.graphdef(build_model(model_config, 0)), state.params)),
               "opt_state": {str(i): np.asarray(jax.device_get(leaf))
                             for i, leaf in enumerate(jax.tree_util.tree_leaves(state.opt_state))},
               "meta": json.dumps({"model_config": model_config.to_dict(), "train_config": train_config.to_dict(),
                                   "epochs_done": state.epochs_done, "history": state.history})}
    return atomic_write(path, _seal(payload, STATE_FORMAT))


def load_training_state(path, model_config: ModelConfig, train_config: TrainConfig) -> TrainingState:
    """Read what :func:`save_training_state` wrote, for these configs only."""
    path = Path(path)
    inner = _unseal(path, STATE_FORMAT, "Delete it to start training afresh.")
    meta = json.loads(inner["meta"])
    saved = (ModelConfig.from_dict(meta["model_config"]), TrainConfig.from_dict(meta["train_config"]))
    _check_configs(path, saved, (model_config, train_config))
    params = nnx.state(_model_from_arrays(model_config, inner["params"], f"Training state {path}"))
    template = make_optimizer(train_config, 1).init(params)
    leaves, treedef = jax.tree_util.tree_flatten(template)
    saved_leaves = [inner["opt_state"].get(str(i)) for i in range(len(leaves))]
    if len(inner["opt_state"]) != len(leaves) or any(
            a is None or np.shape(a) != np.shape(b) for a, b in zip(saved_leaves, leaves)):
        raise CheckpointError(f"Training state {path} holds an optimiser state that does not fit this optimiser. "
                              "Delete it to start training afresh.")
    opt_state = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(a) for a in saved_leaves])
    return TrainingState(params, opt_state, int(meta["epochs_done"]), meta["history"])


def train_resumable(state_path, model_config: ModelConfig, train_config: TrainConfig, x_train, x_test=None, *,
                    save_every_s: float = 60.0, max_seconds: float | None = None, progress: bool = True,
                    desc: str = "training") -> tuple[TrainResult, bool]:
    """Train, saving the training state to ``state_path`` every ``save_every_s`` seconds and
    at the end, and continue from that file when it exists.

    max_seconds: stop after the first epoch that ends past this many seconds (a chunk).
    Returns (result so far, finished: True when every epoch is done).
    """
    state_path = Path(state_path)
    resume = load_training_state(state_path, model_config, train_config) if state_path.exists() else None
    if resume is not None and resume.epochs_done >= train_config.epochs:
        model = nnx.merge(nnx.graphdef(build_model(model_config, 0)), resume.params)
        return TrainResult(model, resume.history, model_config, train_config, source="cache"), True
    start = last_save = time.perf_counter()

    def on_epoch(end: EpochEnd) -> bool:
        nonlocal last_save
        now = time.perf_counter()
        over = max_seconds is not None and now - start > max_seconds
        if end.epoch == train_config.epochs or over or now - last_save > save_every_s:
            save_training_state(state_path, end.state(), model_config, train_config)
            last_save = time.perf_counter()
        return over

    result = train(model_config, train_config, x_train, x_test, resume=resume, callback=on_epoch,
                   progress=progress, desc=desc)
    return result, len(result.history["train_loss"]) >= train_config.epochs


# ----------------------------------------------------------------------------- shipped models and the cache
def file_sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _verified_shipped_file(name: str, card: dict) -> tuple[Path, str]:
    """(path, fix) of the shipped model ``name`` after checking that its file exists and has the
    card's SHA-256 (CheckpointError naming the file and how to rebuild, restore or retrain otherwise)."""
    path = shipped.shipped_path(name)
    fix = (f"Rebuild it with `{shipped.rebuild_command(name, card.get('notebook'))}`, restore it with "
           f"`git checkout -- vae_core/shipped_models/{path.name}`, or set {shipped.RETRAIN_ENV}=1 to "
           f"train the notebook's model from scratch instead.")
    if not path.exists():
        raise CheckpointError(f"The shipped model file {path} is missing. {fix}")
    if file_sha256(path) != card["file_sha256"]:
        raise CheckpointError(f"The shipped model file {path} is corrupt or was changed: its SHA-256 is not "
                              f"the one in {shipped.cards_path().name}. {fix}")
    return path, fix


def load_shipped(name: str) -> TrainResult:
    """Load a shipped model by name, its card in ``result.extra``. A missing, damaged or
    altered file (SHA-256 not the card's) raises CheckpointError naming the file and how
    to rebuild it or train instead."""
    cards = shipped.load_cards()
    if name not in cards:
        raise KeyError(f"no shipped model named {name!r}; the shipped models are {sorted(cards)} "
                       f"(MODELS.md lists them; train_or_load trains a model that is not shipped)")
    if cards[name].get("kind") == "conditional":
        raise KeyError(f"{name!r} is a shipped conditional model: load it with load_shipped_conditional({name!r})")
    card = cards[name]
    path, fix = _verified_shipped_file(name, card)
    result = load_checkpoint(path, model_config=ModelConfig.from_dict(card["model_config"]),
                             train_config=TrainConfig.from_dict(card["train_config"]), fix=fix)
    result.source, result.extra = "shipped", card
    return result


def fixed_test_set(x_test, train_config: TrainConfig):
    """The test images every shipped metric uses: binarized once with TEST_BINARIZATION_SEED
    when the model was trained on binarized data, else as they are. x_test: [n, D]."""
    x = jnp.asarray(x_test, jnp.float32)
    return binarize(jax.random.PRNGKey(shipped.TEST_BINARIZATION_SEED), x) if train_config.binarize else x


def ship_model(name: str, result: TrainResult, x_train, x_test, card: dict) -> dict:
    """Store ``result`` as the shipped model ``name`` (float16 parameters) with its card.

    x_train: [n, D] the images it was trained on (their fingerprint goes in the card, so
    only a notebook asking for the same data gets this model); x_test: [m, D] the images
    its test ELBO is measured on (one sample per image, key LOGPX_SEED, on
    :func:`fixed_test_set`), on the stored weights, beside the float32 weights' value.
    The card also gets the configs, the file's SHA-256 and size, and the training time.
    card: the facts the caller knows (notebook, device, command, ...). Returns the card.
    """
    path = shipped.shipped_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = fixed_test_set(x_test, result.train_config)
    key = jax.random.PRNGKey(shipped.LOGPX_SEED)
    before = {k: float(v) for k, v in evaluate(result.model, x, key).items() if k != "kl_per_dim"}
    save_checkpoint(path, result, dtype=shipped.STORED_DTYPE)
    stored = load_checkpoint(path).model
    after = {k: float(v) for k, v in evaluate(stored, x, key).items() if k != "kl_per_dim"}
    history = result.history
    card = {
        "name": name, "purpose": shipped.PURPOSES.get(name, card.get("purpose", "")),
        "epochs": len(history.get("train_loss", [])),
        "train_minutes": round(float(np.sum(history.get("seconds", [0.0]))) / 60, 1),
        "train_seconds": round(float(np.sum(history.get("seconds", [0.0]))), 1),
        **card,
        "model_config": result.model_config.to_dict(), "train_config": result.train_config.to_dict(),
        "train_data": shipped.data_fingerprint(x_train), "train_shape": list(np.shape(x_train)),
        "test_data": shipped.data_fingerprint(x_test), "test_images": int(len(x)),
        "test_binarization_seed": shipped.TEST_BINARIZATION_SEED if result.train_config.binarize else None,
        "test_elbo": round(after["elbo"], 4), "test_rec": round(after["rec"], 4), "test_kl": round(after["kl"], 4),
        "test_elbo_float32": round(before["elbo"], 4), "stored_dtype": shipped.STORED_DTYPE,
        "file_sha256": file_sha256(path), "file_bytes": path.stat().st_size,
    }
    if not card["purpose"]:
        print(f"warning: shipped model {name} has no purpose; add it to vae_core.shipped.PURPOSES")
    card = json.loads(json.dumps(card))  # plain JSON types, as load_cards() returns them
    shipped.write_card(card)
    return card


def retrain_requested() -> bool:
    """True when ``VAE_RETRAIN`` is set to 1/true/yes: train even where a model is shipped or cached."""
    return os.environ.get(shipped.RETRAIN_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def train_or_load(name: str, model_config: ModelConfig, train_config: TrainConfig, x_train, x_test=None,
                  *, retrain: bool = False, on_corrupt: str = "error", progress: bool = True,
                  directory=None) -> TrainResult:
    """The shipped model for these configs, else the cached one, else train it and cache it.

    A model shipped with the course (:mod:`vae_core.shipped`) trained with exactly these
    configs on this data is loaded first (its SHA-256 checked), with one printed line
    saying what it is; ``VAE_RETRAIN=1`` or retrain=True trains from scratch into the
    cache instead.
    name: a readable prefix of the cache file; the file name also carries a hash of both
    configs and the data, so changing any setting trains a new model, and a model that
    another notebook cached under another name with the same settings is loaded.
    on_corrupt: 'error' raises CheckpointError for a damaged or outdated cache file;
    'retrain' trains again and overwrites it.
    With ``VAE_SHIP`` set (scripts/ship_models.py) the model is also written as the
    shipped model ``name``, with its card.
    ``result.source`` says what happened: 'shipped', 'cache' (loaded) or 'trained'.
    """
    if on_corrupt not in ("error", "retrain"):
        raise ValueError(f"on_corrupt must be 'error' or 'retrain', got {on_corrupt!r}")
    retrain = retrain or retrain_requested()
    notebook = shipped.ship_requested()  # building the shipped models: never load one
    card = None if retrain or notebook else shipped.find_card(model_config, train_config, x_train)
    if card is not None:
        result = load_shipped(card["name"])
        print(shipped.describe(result))
        return result
    path = cache_path(name, model_config, train_config, x_train, directory)
    found = find_cached(path)
    result = None
    if found is not None and not retrain:
        try:
            result = load_checkpoint(found, model_config=model_config, train_config=train_config)
            result.source = "cache"
        except CheckpointError:
            if on_corrupt == "error":
                raise
    if result is None:
        start = time.perf_counter()
        result = train(model_config, train_config, x_train, x_test, progress=progress, desc=name)
        result.extra = {"device": device_name(), "wall_seconds": round(time.perf_counter() - start, 1)}
        save_checkpoint(path, result, extra=result.extra)
    if notebook:
        _ship_from_notebook(name, result, x_train, x_test, notebook)
    return result


def _ship_from_notebook(name: str, result: TrainResult, x_train, x_test, notebook: str) -> None:
    """train_or_load's VAE_SHIP branch. A model shipped twice under two names keeps the
    name that has a purpose in shipped.PURPOSES (the other card and file are removed)."""
    if x_test is None:
        print(f"not shipping {name}: train_or_load got no x_test to measure it on")
        return
    twin = shipped.find_card(result.model_config, result.train_config, x_train)
    if twin is not None and twin["name"] != name:
        if twin["name"] in shipped.PURPOSES or name not in shipped.PURPOSES:
            print(f"not shipping {name}: the same model is shipped as {twin['name']}")
            return
        print(f"shipping {name} in place of {twin['name']} (the same model)")
        shipped.remove_card(twin["name"])
        shipped.shipped_path(twin["name"]).unlink(missing_ok=True)
    ship_model(name, result, x_train, x_test, {
        "notebook": notebook, "command": shipped.rebuild_command(name, notebook),
        "device": result.extra.get("device", "not recorded (trained before devices were recorded)"),
        "wall_seconds": result.extra.get("wall_seconds"),
        "mnist_sha256": shipped.mnist_checksum() if is_mnist_split(x_train, "train") else None})


def is_mnist_split(x, split: str) -> bool:
    """x: [n, 784] is the first n images of MNIST's ``split`` ("train" or "test"), so a card
    can carry MNIST's checksum."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if np.ndim(x) != 2 or np.shape(x)[1] != 784:
        return False
    try:
        reference = getattr(load_mnist(), f"x_{split}")
    except Exception:  # no MNIST here: then x is not it either
        return False
    return len(x) <= len(reference) and \
        shipped.data_fingerprint(x) == shipped.data_fingerprint(reference[:len(x)])


def find_cached(path: Path) -> Path | None:
    """``path`` if it exists, else a file with the same configs hash under another name, else None."""
    if path.exists():
        return path
    same = sorted(path.parent.glob("*-" + path.name.rsplit("-", 1)[1]))
    return same[0] if same else None


# TrainConfig fields added after models were cached, with their defaults: left out of the
# cache key while at the default, so adding a field does not orphan every cached model.
ADDED_TRAIN_FIELDS = {"corruption": None, "corruption_level": 0.0}


def cache_path(name, model_config, train_config, x_train, directory=None) -> Path:
    """Where ``train_or_load`` keeps this model: <cache>/<name>-<hash of configs and data>.msgpack."""
    train = {k: v for k, v in train_config.to_dict().items()
             if not (k in ADDED_TRAIN_FIELDS and v == ADDED_TRAIN_FIELDS[k])}
    spec = json.dumps([model_config.to_dict(), train, list(np.shape(x_train)),
                       float(np.asarray(x_train[:64]).sum()), __version__], sort_keys=True)
    digest = hashlib.sha256(spec.encode()).hexdigest()[:12]
    return Path(directory or cache_dir()) / f"{name}-{digest}.msgpack"


__all__ = ["CACHE_ENV", "CheckpointError", "cache_dir", "save_checkpoint", "save_conditional", "load_conditional", "train_or_load_conditional",
           "conditional_test_pairs", "conditional_test_metrics", "ship_conditional", "load_shipped_conditional",
           "load_checkpoint", "file_sha256", "load_shipped", "fixed_test_set", "ship_model", "retrain_requested", "save_training_state", "load_training_state", "train_resumable", "train_or_load",
           "find_cached", "cache_path", "is_mnist_split"]
