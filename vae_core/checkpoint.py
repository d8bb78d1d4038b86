"""Checkpoints and the model cache the notebooks share.

A checkpoint is one msgpack file holding the parameters, the ModelConfig and
TrainConfig that made them, the training history, and a SHA-256 of the payload.
Writes are atomic (a temporary file renamed into place), so an interrupted save never
leaves half a file behind. ``train_or_load`` turns this into a cache: a notebook that
was run once loads its model instead of retraining it.

Cache folder: ``$VAE_CACHE_DIR`` if set, else ``~/.cache/vae_course/models``.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import flax.serialization
import jax
import numpy as np

from . import __version__
from .models import VAE, ModelConfig, init_params
from .train import TrainConfig, TrainResult, train

CACHE_ENV = "VAE_CACHE_DIR"
FORMAT = "vae_core-checkpoint-1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or was made for a different configuration."""


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "vae_course" / "models")).expanduser()


def save_checkpoint(path, result: TrainResult) -> Path:
    """Write params, configs and history to ``path`` atomically. Returns the path."""
    path = Path(path)
    payload = flax.serialization.msgpack_serialize({
        "params": jax.device_get(result.params),
        "meta": json.dumps({
            "model_config": result.model_config.to_dict(),
            "train_config": result.train_config.to_dict(),
            "history": result.history,
            "vae_core_version": __version__,
        }),
    })
    blob = flax.serialization.msgpack_serialize({
        "format": FORMAT, "sha256": hashlib.sha256(payload).hexdigest(), "payload": payload})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_checkpoint(path, *, model_config: ModelConfig | None = None,
                    train_config: TrainConfig | None = None) -> TrainResult:
    """Read a checkpoint; with configs given, refuse one made with different ones.

    Raises CheckpointError naming the problem (missing, corrupt, config mismatch).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"No checkpoint at {path}.")
    try:
        outer = flax.serialization.msgpack_restore(path.read_bytes())
        payload = outer["payload"]
        ok = outer.get("format") == FORMAT and hashlib.sha256(payload).hexdigest() == outer.get("sha256")
    except Exception as err:
        raise CheckpointError(f"Checkpoint {path} is corrupt ({type(err).__name__}: {err}). "
                              "Delete it, or call train_or_load(..., on_corrupt='retrain').") from err
    if not ok:
        raise CheckpointError(f"Checkpoint {path} is corrupt: its checksum does not match its content. "
                              "Delete it, or call train_or_load(..., on_corrupt='retrain').")
    inner = flax.serialization.msgpack_restore(payload)
    meta = json.loads(inner["meta"])
    saved_model = ModelConfig.from_dict(_tuples(meta["model_config"]))
    saved_train = TrainConfig(**meta["train_config"])
    for given, saved, what in [(model_config, saved_model, "model"), (train_config, saved_train, "training")]:
        if given is not None and given != saved:
            asked = given.to_dict()
            diff = {k: (v, asked[k]) for k, v in saved.to_dict().items() if asked[k] != v}
            raise CheckpointError(f"Checkpoint {path} was made with a different {what} config: "
                                  f"saved vs asked {diff}.")
    model, template = init_params(saved_model, jax.random.PRNGKey(0))
    try:
        params = flax.serialization.from_state_dict(template, inner["params"])
        jax.tree_util.tree_map(_same_shape, template, params)
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"Checkpoint {path} does not fit its model config: {err}") from err
    return TrainResult(model, params, meta["history"], saved_model, saved_train)


def train_or_load(name: str, model_config: ModelConfig, train_config: TrainConfig, x_train, x_test=None,
                  *, retrain: bool = False, on_corrupt: str = "error", progress: bool = True,
                  directory=None) -> TrainResult:
    """Load the cached model for these configs, or train it and cache it.

    name: a readable prefix of the cache file; the file name also carries a hash of both
    configs and the data, so changing any setting trains a new model, and a model that
    another notebook cached under another name with the same settings is loaded.
    on_corrupt: 'error' raises CheckpointError for a damaged cache file; 'retrain'
    trains again and overwrites it. retrain=True ignores the cache.
    """
    if on_corrupt not in ("error", "retrain"):
        raise ValueError(f"on_corrupt must be 'error' or 'retrain', got {on_corrupt!r}")
    path = cache_path(name, model_config, train_config, x_train, directory)
    if not retrain:
        # the same configs under another name (another notebook trained it): reuse it
        same = [path] if path.exists() else sorted(path.parent.glob("*-" + path.name.rsplit("-", 1)[1]))
        for found in same[:1]:
            try:
                return load_checkpoint(found, model_config=model_config, train_config=train_config)
            except CheckpointError:
                if on_corrupt == "error":
                    raise
    result = train(model_config, train_config, x_train, x_test, progress=progress, desc=name)
    save_checkpoint(path, result)
    return result


def cache_path(name, model_config, train_config, x_train, directory=None) -> Path:
    spec = json.dumps([model_config.to_dict(), train_config.to_dict(), list(np.shape(x_train)),
                       float(np.asarray(x_train[:64]).sum()), __version__], sort_keys=True)
    digest = hashlib.sha256(spec.encode()).hexdigest()[:12]
    return Path(directory or cache_dir()) / f"{name}-{digest}.msgpack"


def _tuples(d: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()} if isinstance(d, dict) else d


def _same_shape(a, b):
    if np.shape(a) != np.shape(b):
        raise ValueError(f"parameter shape {np.shape(b)} where the model has {np.shape(a)}")


__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "train_or_load", "cache_dir",
           "cache_path", "VAE"]
