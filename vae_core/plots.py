"""Figures the notebooks share: image grids, training curves, latent scatters.

Every function draws on a given matplotlib Axes (or makes one) and returns the
Figure, so a notebook can lay out panels and then ``save_figure`` them to figures/.
"""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .config import smoke_mode
from .files import atomic_write

FIGURES_DIR = Path(__file__).resolve().parent.parent / "figures"
MNIST_CREDIT = "MNIST: LeCun, Cortes & Burges (CC BY-SA 3.0)"


def tile_images(images, ncols: int | None = None, image_shape=(28, 28), pad: int = 1,
                gap_value: float = 0.0) -> np.ndarray:
    """Tile images [n, H*W] (or [n, H, W]) into one array [rows*(H+pad)-pad, cols*(W+pad)-pad].

    Gaps (and empty cells) are gap_value: 0 (no ink) shows as background under ``gray_r``,
    a small value such as 0.3 as thin grey lines between the images.
    """
    images = np.asarray(images, np.float32).reshape(-1, *image_shape)
    n = len(images)
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    H, W = image_shape
    canvas = np.full((nrows * (H + pad) - pad, ncols * (W + pad) - pad), gap_value, np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, ncols)
        canvas[r * (H + pad): r * (H + pad) + H, c * (W + pad): c * (W + pad) + W] = img
    return canvas


def image_grid(images, ncols: int | None = None, *, titles=None, image_shape=(28, 28), ax=None,
               title: str | None = None, cmap: str = "gray_r"):
    """Show images [n, D] as a grid; titles (one per image) go under each image when given."""
    images = np.asarray(images).reshape(-1, *image_shape)
    n = len(images)
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    if titles is None:
        fig, ax = _fig_ax(ax, (ncols * 0.6 + 0.4, nrows * 0.6 + 0.6))
        ax.imshow(tile_images(images, ncols, image_shape), cmap=cmap, vmin=0, vmax=1)
        ax.set_axis_off()
        if title:
            ax.set_title(title)
        return fig
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 0.9, nrows * 1.1), squeeze=False)
    for i, a in enumerate(axes.flat):
        a.set_axis_off()
        if i < n:
            a.imshow(images[i], cmap=cmap, vmin=0, vmax=1)
            a.set_title(str(titles[i]), fontsize=8, pad=2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_history(history: dict, *, keys=("test_elbo", "test_rec", "test_kl"), label: str | None = None,
                 axes=None):
    """Curves of per-epoch history entries, one panel per key, x axis = epoch."""
    names = {"test_elbo": "test ELBO (nats)", "test_rec": "test log p(x|z) (nats)",
             "test_kl": "test KL(q || p) (nats)", "train_loss": "training loss (nats)",
             "train_rec": "train log p(x|z) (nats)", "train_kl": "train KL (nats)", "kl_weight": "KL weight"}
    if axes is None:
        fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
        axes = axes[0]
    else:
        fig = np.ravel(axes)[0].figure
    for ax, key in zip(np.ravel(axes), keys):
        values = history[key]
        ax.plot(np.arange(1, len(values) + 1), values, marker="o", ms=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(names.get(key, key))
        ax.grid(alpha=0.3)
        if label:
            ax.legend()
    fig.tight_layout()
    return fig


def scatter_latents(codes, labels, *, ax=None, title: str | None = None, s: float = 3, alpha: float = 0.6):
    """2-d codes [n, 2] coloured by digit label [n], with a legend of the ten digits."""
    codes = np.asarray(codes)
    fig, ax = _fig_ax(ax, (5, 4.5))
    sc = ax.scatter(codes[:, 0], codes[:, 1], c=labels, cmap="tab10", s=s, alpha=alpha, vmin=-0.5, vmax=9.5)
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    if title:
        ax.set_title(title)
    fig.colorbar(sc, ax=ax, ticks=range(10), label="digit")
    return fig


def save_figure(fig, name: str, directory=None) -> Path:
    """Save a figure as PNG under figures/ (or directory); returns the path.

    In smoke mode the default folder is a temporary one, so a test run never
    overwrites the committed full-mode figures.
    """
    if directory is None and smoke_mode():
        directory = Path(tempfile.gettempdir()) / "vae_course_smoke_figures"
    path = Path(directory or FIGURES_DIR) / (name if name.endswith(".png") else f"{name}.png")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return atomic_write(path, buffer.getvalue())


def _fig_ax(ax, figsize):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def format_table(rows: list[dict], columns, *, markdown: bool = False) -> str:
    """A table of rows (dicts) as text.

    columns: a list of (key, header, format spec) such as ('elbo', 'test ELBO', '.2f');
    a spec may also be a function value -> str. A missing or None value prints as '-'.
    Plain text aligns text columns left and number columns right; markdown=True gives a
    Markdown pipe table instead (for display with IPython.display.Markdown).
    """
    if not rows:
        raise ValueError("format_table needs at least one row")

    def cell(value, spec):
        if value is None:
            return "-"
        return spec(value) if callable(spec) else format(value, spec)

    header = [h for _, h, _ in columns]
    body = [[cell(row.get(k), spec) for k, _, spec in columns] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in columns) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in body])
    cells = [header] + body
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    text = [all(isinstance(row.get(k), str) for row in rows) for k, _, _ in columns]
    lines = ["  ".join(c.ljust(w) if t else c.rjust(w) for c, w, t in zip(r, widths, text)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


__all__ = ["FIGURES_DIR", "MNIST_CREDIT", "tile_images", "image_grid", "plot_history", "scatter_latents",
           "save_figure", "format_table"]
