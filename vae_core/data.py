"""MNIST for the course: loading, verification, dynamic binarization and corruptions.

Where the images come from, in this order:

1. a local ``mnist.npz`` given as ``load_mnist(path=...)`` (a file or its folder);
2. a local copy in the folder named by the environment variable ``VAE_DATA_DIR``;
3. the cache a previous download left in the TFDS data folder
   (``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``);
4. a download of the MNIST files through tensorflow-datasets' download manager
   (the same files and checksums as TFDS's ``mnist`` builder), cached for next time.

Every array is checked against known SHA-256 sums, so a truncated or altered file
is named instead of silently training on it. With no local copy and no network the
loader fails within seconds with a message that says how to fix it.

Corruptions (flipped pixels, a blanked square) make a denoising VAE's inputs; they are
jit-friendly, so training draws fresh ones for every minibatch (``TrainConfig.corruption``).
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import io
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from . import rng
from .files import NETWORK_CHECK_SECONDS, atomic_write, can_connect

DATA_DIR_ENV = "VAE_DATA_DIR"
FILENAME = "mnist.npz"
IMAGE_SHAPE = (28, 28)
N_PIXELS = 28 * 28

# SHA-256 of each uint8 array's raw C-order bytes (``hashlib.sha256(a.tobytes())``).
SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
SHAPES = {
    "x_train": (60000, 28, 28),
    "y_train": (60000,),
    "x_test": (10000, 28, 28),
    "y_test": (10000,),
}
# The files TFDS's mnist builder downloads (tensorflow_datasets/image_classification/mnist.py).
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}

HOW_TO_FIX = (
    "How to fix: either\n"
    "  * connect to the internet once (the download is cached), or\n"
    f"  * put a copy of mnist.npz in a folder and set {DATA_DIR_ENV}=/that/folder\n"
    "    (e.g. `export VAE_DATA_DIR=$PWD/../shared/data`), or pass\n"
    "    load_mnist(path='/path/to/mnist.npz')."
)


class MNISTNotFoundError(RuntimeError):
    """No local copy of MNIST and no way to download it."""


class ChecksumError(ValueError):
    """A file holds MNIST-shaped data whose content is not MNIST."""


@dataclasses.dataclass(frozen=True)
class MNIST:
    """MNIST as float images in [0, 1] with their labels.

    x_train: [60000, 784] float32   y_train: [60000] int32
    x_test:  [10000, 784] float32   y_test:  [10000] int32
    source:  where the arrays were read from.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    def __repr__(self) -> str:
        return (
            f"MNIST(train={self.x_train.shape}, test={self.x_test.shape}, "
            f"pixels in [{self.x_train.min():.0f}, {self.x_train.max():.0f}], source={self.short_source()!r})"
        )

    def short_source(self) -> str:
        """The source without the machine's folders (what a printed notebook shows)."""
        if self.source.startswith("tensorflow-datasets download"):
            return "tensorflow-datasets download (cached)"
        return f"{Path(self.source).name} (local copy)" if self.source else ""


def load_mnist(path: str | os.PathLike | None = None, *, verify: bool = True) -> MNIST:
    """Load MNIST (train 60k, test 10k) with labels; pixels scaled to [0, 1].

    path: an ``mnist.npz`` file or a folder holding one. Without it the loader tries
    ``$VAE_DATA_DIR``, then the download cache, then tensorflow-datasets' download.
    verify: check every array against its known SHA-256 (about 0.1 s).
    """
    npz = _find_local_copy(path)
    if npz is not None:
        raw = _read_npz(npz)
        source = str(npz)
    else:
        cache = _download_cache_path()
        if cache.exists():
            raw, source = _read_npz(cache), str(cache)
        else:
            raw = download_mnist(cache.parent)
            _atomic_save_npz(cache, raw)
            source = f"tensorflow-datasets download, cached at {cache}"
    check_arrays(raw, verify=verify, source=source)
    return MNIST(
        x_train=to_unit_interval(raw["x_train"]),
        y_train=raw["y_train"].astype(np.int32),
        x_test=to_unit_interval(raw["x_test"]),
        y_test=raw["y_test"].astype(np.int32),
        source=source,
    )


def to_unit_interval(images: np.ndarray) -> np.ndarray:
    """uint8 images [n, 28, 28] -> float32 [n, 784] in [0, 1] (pixel / 255)."""
    return (images.reshape(len(images), -1).astype(np.float32) / 255.0)


@jax.jit
def binarize(key: jax.Array, x: jax.Array) -> jax.Array:
    """Dynamic binarization: x_bin ~ Bernoulli(x), elementwise, same shape and dtype.

    key: a PRNG key; x: [..., 784] grey levels in [0, 1]. A fresh key gives a fresh
    binary image each time, which is the IWAE paper's training protocol. The draws are
    ``jax.random.bernoulli``'s, bit for bit, made in one fused pass (:mod:`vae_core.rng`).
    """
    return rng.bernoulli(key, x).astype(x.dtype)



# ----------------------------------------------------------------------------- corruptions
CORRUPTIONS = ("flip", "mask")


def flip_noise(key: jax.Array, x: jax.Array, p: float) -> jax.Array:
    """Flip each pixel of binary images x: [n, D] with probability p (salt-and-pepper noise). -> [n, D]."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [0, 1], got {p}")
    x = jnp.asarray(x, jnp.float32)
    return jnp.where(rng.bernoulli(key, p, x.shape), 1.0 - x, x)


def mask_patches(key: jax.Array, x: jax.Array, size: int, image_shape=IMAGE_SHAPE,
                 margin: int = 4) -> tuple[jax.Array, jax.Array]:
    """Blank one size x size square per image (pixels set to 0) at a random place.

    The square's corner is drawn uniformly so that the square lies inside the image with
    at least ``margin`` pixels to each border (where the digits are). x: [n, H*W].
    Returns (masked images [n, D], mask [n, D] with 1 where pixels were blanked).
    """
    H, W = image_shape
    size, margin = int(size), int(margin)
    if size < 1 or size + 2 * margin > min(H, W):
        raise ValueError(f"size={size} with margin={margin} does not fit a {H}x{W} image")
    x = jnp.asarray(x, jnp.float32)
    n = x.shape[0]
    k_r, k_c = jax.random.split(key)
    rows = jax.random.randint(k_r, (n,), margin, H - margin - size + 1)[:, None, None]
    cols = jax.random.randint(k_c, (n,), margin, W - margin - size + 1)[:, None, None]
    r, c = jnp.arange(H)[None, :, None], jnp.arange(W)[None, None, :]
    inside = (r >= rows) & (r < rows + size) & (c >= cols) & (c < cols + size)
    mask = inside.reshape(n, H * W).astype(jnp.float32)
    return x * (1.0 - mask), mask


def corrupt(key: jax.Array, x: jax.Array, kind: str, level: float, image_shape=IMAGE_SHAPE) -> jax.Array:
    """A denoising VAE's input: x [n, D] corrupted by ``kind`` -> [n, D].

    kind='flip': each pixel flipped with probability ``level``; kind='mask': one
    ``level`` x ``level`` square blanked per image (:func:`mask_patches`).
    """
    if kind == "flip":
        return flip_noise(key, x, level)
    if kind == "mask":
        return mask_patches(key, x, int(level), image_shape)[0]
    raise ValueError(f"corruption must be one of {CORRUPTIONS}, got {kind!r}")


def check_arrays(raw: dict, *, verify: bool = True, source: str = "") -> None:
    """Raise a clear error when keys, shapes, dtypes or checksums are not MNIST's."""
    where = f" in {source}" if source else ""
    missing = [k for k in SHA256 if k not in raw]
    if missing:
        raise ChecksumError(f"MNIST arrays {missing} are missing{where}; expected keys {list(SHA256)}.")
    for key, shape in SHAPES.items():
        a = raw[key]
        if a.shape != shape or a.dtype != np.uint8:
            raise ChecksumError(
                f"MNIST array '{key}'{where} has shape {a.shape} and dtype {a.dtype}; "
                f"expected {shape} uint8. The file is not the MNIST copy this course uses."
            )
    if verify:
        for key, expected in SHA256.items():
            got = hashlib.sha256(np.ascontiguousarray(raw[key]).tobytes()).hexdigest()
            if got != expected:
                raise ChecksumError(
                    f"MNIST array '{key}'{where} fails its checksum: sha256 {got[:16]}... "
                    f"but expected {expected[:16]}... The file is corrupt or a different "
                    "dataset; delete it and load again (or fetch a fresh copy)."
                )


def download_mnist(dest_dir: str | os.PathLike, base_url: str | None = None) -> dict:
    """Download the four MNIST IDX files with tensorflow-datasets' download manager.

    dest_dir: where the downloaded files are kept. base_url: defaults to the URL that
    TFDS's ``mnist`` builder uses. Fails fast (a few seconds) when the host cannot be
    reached, instead of retrying for minutes. Returns uint8 arrays keyed like the npz.
    """
    if base_url is None:
        from tensorflow_datasets.image_classification import mnist as tfds_mnist

        base_url = tfds_mnist._MNIST_URL
    _check_reachable(base_url)
    import tensorflow_datasets as tfds

    manager = tfds.download.DownloadManager(download_dir=os.fspath(Path(dest_dir) / "downloads"))
    urls = {key: base_url.rstrip("/") + "/" + name for key, name in IDX_FILES.items()}
    try:
        paths = manager.download(urls)
    except Exception as err:  # the manager wraps network errors in many types
        raise MNISTNotFoundError(f"Downloading MNIST from {base_url} failed: {err}\n{HOW_TO_FIX}") from err
    return {key: read_idx(paths[key]) for key in IDX_FILES}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one (optionally gzipped) IDX file of unsigned bytes into a NumPy array."""
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ChecksumError(f"{path} is not an IDX file of unsigned bytes.")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ChecksumError(f"{path} is truncated: {body.size} bytes for shape {dims}.")
    return body.reshape(dims)


def _find_local_copy(path) -> Path | None:
    candidates = []
    if path is not None:
        p = Path(path).expanduser()
        candidates.append(p / FILENAME if p.is_dir() else p)
        if not candidates[0].exists():
            raise MNISTNotFoundError(f"No MNIST file at {candidates[0]}.\n{HOW_TO_FIX}")
        return candidates[0]
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        p = Path(env).expanduser()
        p = p / FILENAME if p.is_dir() else p
        if not p.exists():
            raise MNISTNotFoundError(f"{DATA_DIR_ENV}={env} but there is no {FILENAME} there.\n{HOW_TO_FIX}")
        return p
    return None


def _read_npz(path: Path) -> dict:
    try:
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    except Exception as err:
        raise ChecksumError(f"Cannot read {path} as an .npz archive ({err}); the file is corrupt. "
                            "Delete it and load again.") from err


def _download_cache_path() -> Path:
    root = Path(os.environ.get("TFDS_DATA_DIR", Path.home() / "tensorflow_datasets")).expanduser()
    return root / "vae_core" / FILENAME


def _atomic_save_npz(path: Path, arrays: dict) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write(path, buffer.getvalue())


def _check_reachable(url: str, timeout: float = NETWORK_CHECK_SECONDS) -> None:
    """Open one TCP connection to the URL's host; raise MNISTNotFoundError if it fails."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    error = can_connect(host, port, timeout)
    if error is not None:
        raise MNISTNotFoundError(
            f"MNIST is not on this machine and {host}:{port} cannot be reached ({error}).\n{HOW_TO_FIX}"
        )


def check_images(x, name: str, input_dim: int | None = None, *, binary: bool = False) -> None:
    """Raise ValueError naming ``name`` unless x is a finite float [n, D] array in [0, 1].

    binary=True also requires every value to be exactly 0 or 1 (targets of a Bernoulli
    decoder when no binarization is applied).
    """
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != 2:
        raise ValueError(f"{name} must be a 2-d array [n_images, n_pixels], got shape {shape}; "
                         "flatten images with x.reshape(len(x), -1).")
    if input_dim is not None and shape[1] != input_dim:
        raise ValueError(f"{name} has {shape[1]} pixels per image but the model expects {input_dim}.")
    dtype = np.dtype(x.dtype)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"{name} has dtype {dtype}; use float32 in [0, 1] (e.g. uint8 images / 255).")
    arr = np.asarray(x)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf values.")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0 or hi > 1:
        raise ValueError(f"{name} has values in [{lo:g}, {hi:g}]; pixel values must lie in [0, 1].")
    if binary and not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"{name} must be binary (0/1) for a Bernoulli decoder without binarization; "
                         "binarize it (vae_core.binarize) or train with binarize=True.")


__all__ = ["DATA_DIR_ENV", "FILENAME", "IMAGE_SHAPE", "N_PIXELS", "SHA256", "SHAPES", "IDX_FILES", "MNISTNotFoundError",
           "ChecksumError", "MNIST", "load_mnist", "to_unit_interval", "binarize", "check_arrays", "download_mnist",
           "read_idx", "check_images", "CORRUPTIONS", "flip_noise", "mask_patches", "corrupt"]
