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
from .files import atomic_write
from .models import VAE, ModelConfig, build_model, model_from_arrays, params_to_arrays
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


def save_checkpoint(path, result: TrainResult, extra: dict | None = None) -> Path:
    """Write parameters, configs and history to ``path`` atomically. Returns the path.

    extra: optional JSON-able facts stored beside them (a shipped model's card).
    """
    meta = {"model_config": result.model_config.to_dict(), "train_config": result.train_config.to_dict(),
            "history": result.history, "vae_core_version": __version__, "extra": extra or {}}
    return atomic_write(path, _seal({"params": params_to_arrays(result.model), "meta": json.dumps(meta)}, FORMAT))


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
    return TrainResult(model, meta["history"], *saved, extra=meta.get("extra", {}))


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
def load_shipped(name: str) -> TrainResult:
    """Load a shipped model by name; a damaged or missing file raises CheckpointError
    naming the file and the command that rebuilds it."""
    if name not in shipped.SPECS:
        raise KeyError(f"no shipped model named {name!r}; the shipped models are {sorted(shipped.SPECS)}")
    spec = shipped.SPECS[name]
    path = shipped.shipped_path(name)
    fix = (f"Rebuild it with `python scripts/train_shipped.py {name}` (resumable), "
           f"or set {shipped.RETRAIN_ENV}=1 to train the notebook's model from scratch instead.")
    if not path.exists():
        raise CheckpointError(f"The shipped model file {path} is missing. {fix}")
    result = load_checkpoint(path, model_config=spec.model_config, train_config=spec.train_config, fix=fix)
    result.source = "shipped"
    return result


def retrain_requested() -> bool:
    """True when ``VAE_RETRAIN`` is set to 1/true/yes: train even where a model is shipped or cached."""
    return os.environ.get(shipped.RETRAIN_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def train_or_load(name: str, model_config: ModelConfig, train_config: TrainConfig, x_train, x_test=None,
                  *, retrain: bool = False, on_corrupt: str = "error", progress: bool = True,
                  directory=None) -> TrainResult:
    """Load the cached model for these configs, or train it and cache it.

    name: a readable prefix of the cache file; the file name also carries a hash of both
    configs and the data, so changing any setting trains a new model, and a model that
    another notebook cached under another name with the same settings is loaded.
    on_corrupt: 'error' raises CheckpointError for a damaged or outdated cache file;
    'retrain' trains again and overwrites it. retrain=True ignores the cache.
    A model shipped with the course (:mod:`vae_core.shipped`) for exactly these configs is
    loaded first, with one printed line saying what it is; ``VAE_RETRAIN=1`` or
    retrain=True trains from scratch into the cache instead.
    ``result.source`` says what happened: 'shipped', 'cache' (loaded) or 'trained'.
    """
    if on_corrupt not in ("error", "retrain"):
        raise ValueError(f"on_corrupt must be 'error' or 'retrain', got {on_corrupt!r}")
    retrain = retrain or retrain_requested()
    spec = shipped.find_spec(model_config, train_config)
    if spec is not None and not retrain and shipped.shipped_path(spec.name).exists():
        result = load_shipped(spec.name)
        print(shipped.describe(result))
        return result
    path = cache_path(name, model_config, train_config, x_train, directory)
    found = find_cached(path)
    if found is not None and not retrain:
        try:
            result = load_checkpoint(found, model_config=model_config, train_config=train_config)
            result.source = "cache"
            return result
        except CheckpointError:
            if on_corrupt == "error":
                raise
    result = train(model_config, train_config, x_train, x_test, progress=progress, desc=name)
    save_checkpoint(path, result)
    return result


def find_cached(path: Path) -> Path | None:
    """``path`` if it exists, else a file with the same configs hash under another name, else None."""
    if path.exists():
        return path
    same = sorted(path.parent.glob("*-" + path.name.rsplit("-", 1)[1]))
    return same[0] if same else None


def cache_path(name, model_config, train_config, x_train, directory=None) -> Path:
    """Where ``train_or_load`` keeps this model: <cache>/<name>-<hash of configs and data>.msgpack."""
    spec = json.dumps([model_config.to_dict(), train_config.to_dict(), list(np.shape(x_train)),
                       float(np.asarray(x_train[:64]).sum()), __version__], sort_keys=True)
    digest = hashlib.sha256(spec.encode()).hexdigest()[:12]
    return Path(directory or cache_dir()) / f"{name}-{digest}.msgpack"


__all__ = ["CACHE_ENV", "CheckpointError", "cache_dir", "save_checkpoint",
           "load_checkpoint", "load_shipped", "retrain_requested", "save_training_state", "load_training_state", "train_resumable", "train_or_load",
           "find_cached", "cache_path"]
