"""Sprites with known generative factors: a procedural stand-in for dSprites.

dSprites (Matthey et al. 2017) holds every combination of five factors as a binary
64x64 image: 3 shapes x 6 scales x 40 orientations x 32 x-positions x 32 y-positions
= 737,280 images. The data file cannot be downloaded on an offline machine, so this
module *renders* sprites on the same factor grid:

============  ======  =========================================
factor        values  grid
============  ======  =========================================
shape         3       square, ellipse, heart
scale         6       linspace(0.5, 1.0, 6)
orientation   40      linspace(0, 2*pi, 40)  (radians)
posX          32      linspace(0, 1, 32)
posY          32      linspace(0, 1, 32)
============  ======  =========================================

It is a **stand-in**, not the dSprites file: the outlines of the shapes and the pixel
extent of the position range are this module's own choices (documented at
:func:`render`), so numbers measured on it are comparable across this course's runs,
not digit-for-digit with papers that used the real file. Where a network is
available, :func:`load_tfds_dsprites` loads the real images through TFDS.

Images are returned flattened, ``[n, size*size]`` float32 with values exactly 0 or 1,
the layout every :mod:`vae_core` model takes. ``size`` is 64 (dSprites' size) or 32
(four times fewer pixels; the course's CPU default).

Factors travel as integer *indices* ``[n, 5]`` into the grid (column order
:data:`FACTOR_NAMES`); :func:`factor_values` turns them into the physical values.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import logging
import os

import numpy as np

from .files import can_connect

FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
SHAPE_NAMES = ("square", "ellipse", "heart")
FACTOR_VALUES = {
    "shape": np.arange(3, dtype=np.float32),
    "scale": np.linspace(0.5, 1.0, 6, dtype=np.float32),
    "orientation": np.linspace(0.0, 2 * np.pi, 40, dtype=np.float32),
    "posX": np.linspace(0.0, 1.0, 32, dtype=np.float32),
    "posY": np.linspace(0.0, 1.0, 32, dtype=np.float32),
}
FACTOR_SIZES = tuple(len(FACTOR_VALUES[n]) for n in FACTOR_NAMES)  # (3, 6, 40, 32, 32)
NUM_COMBINATIONS = math.prod(FACTOR_SIZES)  # 737,280
IMAGE_SIZES = (64, 32)

# Geometry, as fractions of the image side: a sprite of scale 1 has a half-extent of
# HALF_EXTENT (square: half its side); its centre moves over [MARGIN, 1 - MARGIN] as
# posX/posY go 0 -> 1, so a full-size sprite touches but never leaves the frame.
HALF_EXTENT = 0.16
MARGIN = 0.17


def factor_values(factors) -> dict:
    """Physical values of factor indices [n, 5] -> {name: [n] array}."""
    factors = _check_factors(factors)
    return {name: FACTOR_VALUES[name][factors[:, k]] for k, name in enumerate(FACTOR_NAMES)}


def factors_to_index(factors) -> np.ndarray:
    """Row-major position of each factor combination in the full grid. [n, 5] -> [n] int64."""
    factors = _check_factors(factors)
    return np.ravel_multi_index(tuple(factors.T), FACTOR_SIZES).astype(np.int64)


def index_to_factors(index) -> np.ndarray:
    """Inverse of :func:`factors_to_index`: [n] grid positions -> factor indices [n, 5]."""
    index = np.asarray(index, np.int64).reshape(-1)
    if index.size and (index.min() < 0 or index.max() >= NUM_COMBINATIONS):
        raise ValueError(f"grid positions must lie in [0, {NUM_COMBINATIONS}), got "
                         f"[{index.min()}, {index.max()}]")
    return np.stack(np.unravel_index(index, FACTOR_SIZES), axis=1).astype(np.int64)


def sample_factors(n: int, seed: int = 0, *, replace: bool = False) -> np.ndarray:
    """n factor combinations drawn uniformly from the grid -> indices [n, 5].

    replace=False (default) draws n *distinct* combinations (n <= 737,280).
    """
    rng = np.random.default_rng(seed)
    if not replace and n > NUM_COMBINATIONS:
        raise ValueError(f"only {NUM_COMBINATIONS} distinct combinations exist; asked for {n}")
    index = rng.choice(NUM_COMBINATIONS, size=n, replace=replace)
    return index_to_factors(index)


def _inside(shape_id: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Membership of sprite-frame points (u right, v up; unit = half-extent) in each shape."""
    square = np.maximum(np.abs(u), np.abs(v)) <= 1.0
    ellipse = u**2 + (v / 0.5) ** 2 <= 1.0                      # 2:1, long axis along u
    hx, hy = u * 1.15, v * 1.15 + 0.15                           # heart curve, centred
    heart = (hx**2 + hy**2 - 1.0) ** 3 - hx**2 * hy**3 <= 0.0   # lobes up, point down
    return np.where(shape_id == 0, square, np.where(shape_id == 1, ellipse, heart))


def render(factors, size: int = 64, *, chunk: int = 4096) -> np.ndarray:
    """Draw sprites for factor indices [n, 5] -> binary images [n, size*size] float32.

    Geometry (this module's choice, stated so it can be checked in a figure): a pixel
    belongs to the sprite if its centre lies inside the shape. The shape is rotated
    counter-clockwise by `orientation` about its centre, scaled by `scale`
    (half-extent ``scale * HALF_EXTENT * size`` pixels), and centred at
    ``MARGIN + pos * (1 - 2 MARGIN)`` of the image side, posX to the right and posY
    downwards (row index), as in dSprites. Square: a square of that half-side; ellipse:
    semi-axes 1 and 0.5 of it; heart: the curve (x^2+y^2-1)^3 = x^2 y^3, lobes up.
    """
    if size not in IMAGE_SIZES:
        raise ValueError(f"size must be one of {IMAGE_SIZES}, got {size}")
    factors = _check_factors(factors)
    vals = factor_values(factors)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size  # pixel centres in [0, 1]
    out = np.empty((len(factors), size * size), np.float32)
    for start in range(0, len(factors), chunk):
        sl = slice(start, start + chunk)
        cx = MARGIN + vals["posX"][sl, None, None] * (1 - 2 * MARGIN)
        cy = MARGIN + vals["posY"][sl, None, None] * (1 - 2 * MARGIN)
        dx = coords[None, None, :] - cx          # columns: right
        dy = -(coords[None, :, None] - cy)       # rows go down; dy is "up"
        theta = vals["orientation"][sl, None, None]
        c, s = np.cos(theta), np.sin(theta)
        radius = vals["scale"][sl, None, None] * HALF_EXTENT
        u = (c * dx + s * dy) / radius           # rotate the point by -theta
        v = (-s * dx + c * dy) / radius
        img = _inside(factors[sl, 0, None, None], u, v)
        out[sl] = img.reshape(len(img), -1)
    return out


@dataclasses.dataclass
class Sprites:
    """A set of rendered sprites: images [n, size*size] in {0,1} and factor indices [n, 5]."""

    images: np.ndarray
    factors: np.ndarray
    size: int
    source: str

    @property
    def image_shape(self) -> tuple[int, int]:
        return (self.size, self.size)

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return (f"Sprites({len(self)} images of {self.size}x{self.size}, factors {FACTOR_NAMES}, "
                f"source={self.source!r})")


def make_sprites(n: int, size: int = 64, seed: int = 0) -> Sprites:
    """n distinct random factor combinations, rendered. Same seed, same set."""
    factors = sample_factors(n, seed)
    return Sprites(render(factors, size), factors, size, "procedural stand-in (vae_core.sprites)")


def factor_sweep(factor: str, base=(0, 5, 0, 16, 16)) -> np.ndarray:
    """Factor indices [n_values, 5] that step one factor through all its values, others at base."""
    if factor not in FACTOR_NAMES:
        raise ValueError(f"factor must be one of {FACTOR_NAMES}, got {factor!r}")
    k = FACTOR_NAMES.index(factor)
    rows = np.tile(np.asarray(base, np.int64), (FACTOR_SIZES[k], 1))
    rows[:, k] = np.arange(FACTOR_SIZES[k])
    return _check_factors(rows)


def _check_factors(factors) -> np.ndarray:
    factors = np.asarray(factors)
    if factors.ndim != 2 or factors.shape[1] != len(FACTOR_NAMES):
        raise ValueError(f"factors must be integer indices of shape [n, {len(FACTOR_NAMES)}] "
                         f"(columns {FACTOR_NAMES}), got shape {factors.shape}")
    if not np.issubdtype(factors.dtype, np.integer):
        raise ValueError(f"factors must be integer grid indices, got dtype {factors.dtype}")
    factors = factors.astype(np.int64)
    if factors.size:
        bad = (factors < 0) | (factors >= np.asarray(FACTOR_SIZES))
        if bad.any():
            k = int(np.argwhere(bad)[0, 1])
            raise ValueError(f"factor {FACTOR_NAMES[k]!r} has {FACTOR_SIZES[k]} values: indices must "
                             f"lie in [0, {FACTOR_SIZES[k]}), got {factors[:, k].min()}..{factors[:, k].max()}")
    return factors


# ----------------------------------------------------------------------------- TFDS dSprites
TFDS_HOST = ("storage.googleapis.com", 443)


class SpritesUnavailable(RuntimeError):
    """The real dSprites data cannot be loaded here (no TFDS copy and no network)."""


def network_available(host=TFDS_HOST) -> bool:
    """True if a TCP connection to host = (name, port) opens (``vae_core.files.can_connect``)."""
    return can_connect(*host) is None


@contextlib.contextmanager
def _quiet_absl():
    """Hide absl (TFDS) warnings inside the block; errors still show."""
    log = logging.getLogger("absl")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def load_tfds_dsprites(n: int | None = None, size: int = 64, seed: int = 0, *, data_dir=None) -> Sprites:
    """The real dSprites images through TFDS (``tfds.builder('dsprites')``).

    Uses a prepared copy under data_dir (default ``$TFDS_DATA_DIR`` or
    ``~/tensorflow_datasets``) when there is one; otherwise downloads it, which needs
    a network. With neither, raises :class:`SpritesUnavailable` within a few seconds
    instead of hanging. n: optional number of random images (seeded); size=32 halves
    each side by 2x2 max-pooling (a pixel is on if any of its four source pixels is).
    Reading TFDS' TFRecord files needs TensorFlow installed.
    """
    if size not in IMAGE_SIZES:
        raise ValueError(f"size must be one of {IMAGE_SIZES}, got {size}")
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:  # pragma: no cover - tfds is a course dependency
        raise SpritesUnavailable(f"tensorflow_datasets is not installed ({err}).") from err
    data_dir = data_dir or os.environ.get("TFDS_DATA_DIR")
    with _quiet_absl():  # TFDS warns about variant folders it finds, naming the machine's paths
        builder = tfds.builder("dsprites", data_dir=data_dir)
        prepared = builder.is_prepared()
    if not prepared:
        offline = can_connect(*TFDS_HOST)
        if offline is not None:
            raise SpritesUnavailable(
                f"dSprites is not prepared under {builder.data_dir} and {TFDS_HOST[0]} cannot be "
                f"reached ({offline}). Use the procedural stand-in "
                "vae_core.sprites.make_sprites(...) offline, or run once with a network "
                "(TFDS caches the download).")
        builder.download_and_prepare()
    try:
        with _quiet_absl():
            data = tfds.as_numpy(builder.as_dataset(split="train", batch_size=-1))
    except Exception as err:  # TFRecord reading needs TensorFlow
        raise SpritesUnavailable(f"TFDS could not read dsprites ({type(err).__name__}: {err}); "
                                 "reading TFDS' TFRecord files needs TensorFlow installed.") from err
    images = np.asarray(data["image"], np.float32).reshape(-1, 64, 64)
    factors = np.stack([np.asarray(data[f"label_{k}"]) for k in
                        ("shape", "scale", "orientation", "x_position", "y_position")], 1).astype(np.int64)
    if n is not None:
        keep = np.random.default_rng(seed).choice(len(images), size=n, replace=False)
        images, factors = images[keep], factors[keep]
    if size == 32:
        images = images.reshape(-1, 32, 2, 32, 2).max(axis=(2, 4))
    return Sprites(images.reshape(len(images), -1), _check_factors(factors), size, "dSprites via TFDS")


__all__ = ["FACTOR_NAMES", "FACTOR_SIZES", "FACTOR_VALUES", "SHAPE_NAMES", "NUM_COMBINATIONS", "Sprites",
           "SpritesUnavailable", "factor_values", "factors_to_index", "index_to_factors", "sample_factors",
           "render", "make_sprites", "factor_sweep", "load_tfds_dsprites", "network_available"]
