"""Interactive latent-space explorers for a trained decoder (ipywidgets).

Every explorer is an :class:`Explorer` (the one base class; notebook 02's ELBO
explorer in ``course/nb02_elbo.py`` is one too) and is built the same way:

* a plain ``render(...)`` method that maps the widget's values to decoded image(s)
  ``[H, W]`` floats in [0, 1] -- no widget, no display needed, so tests and ordinary
  notebook cells can call it;
* a ``.widget`` (an ipywidgets container) built once, on first access, by the
  subclass's ``_build()``; its callbacks call ``render`` and push the result as PNG
  bytes into an ``ipywidgets.Image``. Ending a cell with the explorer itself shows it.

No matplotlib figure is created per event. An explorer splits its model once, when it
is made (:func:`vae_core.evaluate.decoder_function`), and compiles the decoder then, so
every slider event costs one small jitted decoder call plus a PNG encode; the kernel-side
latency is measured by ``benchmarks/widget_latency.py`` (results in BENCHMARKS.md).
Sliders therefore use ``continuous_update=True``. An explorer decodes with the model
object it was given; ``vae_core.train`` returns a new model (``result.model``), so after
more training make a new explorer.

Explorers (each takes a vae_core ``VAE``, or a dict {name: VAE}):

``LatentSliders``     one slider per latent dimension, ordered by use; encode-then-edit.
``LatentPad``         click / drag on a scatter of 2-d codes; several models side by side.
``Interpolator``      slide t in [0, 1] between the codes of two images.
``TraversalExplorer`` pick a model, a latent dimension and its value.
``ConditionalSliders`` a conditional VAE: pick the label, slide the style code z.

Images are shown ink-dark on white (``invert=True``, like the ``gray_r`` colour map
that :mod:`vae_core.plots` uses) and upscaled by nearest neighbour to about
``display_px`` pixels on their longer side, so a 28x28 digit stays sharp and visible.

A widget shows nothing without a kernel (GitHub, nbviewer, the course website), so every
explorer also draws a static picture of what it shows: ``explorer.snapshots(states)``
(:meth:`Explorer.snapshots`) calls the explorer's own ``render(...)`` once per state and
lays the results out as a grid in one matplotlib Figure, to save and display under the
widget's cell.
"""
from __future__ import annotations

import inspect
import io
import math
from typing import Callable, Mapping, Sequence

import jax
import numpy as np

from .data import check_images
from .evaluate import decoder_function, encode
from .models import VAE, ModelConfig

DISPLAY_PX = 168

__all__ = ["Explorer", "to_png", "upscale", "decode_images", "LatentSliders", "ConditionalSliders", "LatentPad",
           "Interpolator", "TraversalExplorer", "DISPLAY_PX"]


# ----------------------------------------------------------------------------- base class
class Explorer:
    """The one base class of every explorer: a widget built lazily, once.

    A subclass sets ``display_px`` (pixels on the longer side of a shown image) and
    implements ``_build() -> ipywidgets.Widget``; it keeps a plain ``render(...)``
    method free of widgets, so tests and ordinary cells can call it without a front end.

    ``widget``:  built by ``_build()`` on first access, then the same object every time
                 (callbacks and state set up in ``_build`` live as long as the explorer).
    ``_ipython_display_()``:  an explorer at the end of a cell shows ``explorer.widget``.

    ``snapshots(states)``:  a static Figure of several states, drawn from ``render`` (for
                 readers without a kernel); a subclass needs nothing more for it.
    ``snapshots_match(figure, states)``:  True when that Figure still shows exactly what a
                 fresh ``render`` of each state gives (the check under a notebook's static grid).

    There is no ``__init__`` to call: the unbuilt state is the class attribute
    ``_widget = None``.
    """

    display_px: int = DISPLAY_PX
    _widget = None  # the built widget; None until .widget is first read

    def _build(self):
        """Create and return the explorer's ipywidgets container (called once, lazily)."""
        raise NotImplementedError(f"{type(self).__name__} must implement _build() -> ipywidgets.Widget")

    @property
    def widget(self):
        """The ipywidgets container: built by ``_build()`` on first access, then reused."""
        if self._widget is None:
            built = self._build()
            if built is None:
                raise TypeError(f"{type(self).__name__}._build() returned None; it must return the "
                                "ipywidgets container to display")
            self._widget = built
        return self._widget

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    # -- static view -------------------------------------------------------------
    def snapshots(self, states: Sequence, titles: Sequence[str] | None = None, *, ncols: int | None = None,
                  row_labels: Sequence[str] | None = None, panel_inches: float | None = None, figure=None):
        """A static grid of what the widget shows at several states: one ``render`` call per state.

        states:     the states to draw, in order; a tuple is unpacked into ``render``'s
                    positional arguments (``(name, dim, value)``), anything else is its one
                    argument (a code ``[L]`` as a list or array, a float t). So a 2-d code goes
                    in as ``[0.5, -0.5]`` or an array, not as the tuple ``(0.5, -0.5)``.
        titles:     one title per state ('' for none); default: render's arguments by name
                    (``"t = 0.50"``), or what the subclass's ``_snapshot_title`` says.
        ncols:      states per row of the grid (default: all in one row).
        row_labels: one label per row of panels (written left of the row's first panel);
                    by default the names of a dict result, none for a single image.
        panel_inches: width of one panel in inches (default 1.3 for an image; a rasterised
                    figure keeps its own size at 100 dpi).
        figure:     a matplotlib Figure or SubFigure to draw into; default a new Figure
                    (constrained layout, not managed by pyplot: display or save it).

        What ``render`` returns decides the panels of one state:

        * an image ``[H, W]`` in [0, 1] -> one panel, ink-dark on white (``gray_r``, or
          ``gray`` when the explorer has ``invert=False``), pixel values unchanged;
        * a dict ``{name: image [H, W]}`` -> one panel per name, stacked in the state's column
          (one row per name; a grid of several rows of states repeats them);
        * anything else, from an explorer that redraws its own ``self.figure`` (notebook 02's
          ELBO explorer) -> that figure, rasterised at 100 dpi as RGBA ``[h, w, 4]``. Such an
          explorer's figure is left at the last state.

        Returns the Figure (or the given SubFigure) holding len(states) x (panels per state)
        axes. Raises ValueError for no states, a titles or row_labels list of the wrong
        length, ncols < 1, panel_inches <= 0, or states whose results have different panels.
        """
        states = list(states)
        if not states:
            raise ValueError("snapshots needs at least one state (a list of render's arguments)")
        n = len(states)
        if titles is not None:
            titles = [str(t) for t in titles]
            if len(titles) != n:
                raise ValueError(f"titles must give one title per state: {n} states, {len(titles)} titles")
        ncols = n if ncols is None else int(ncols)
        if ncols < 1:
            raise ValueError(f"ncols must be >= 1, got {ncols}")
        ncols = min(ncols, n)
        if panel_inches is not None and not float(panel_inches) > 0:
            raise ValueError(f"panel_inches must be a positive width in inches, got {panel_inches}")
        panels, auto = [], []
        for state in states:
            args = state if isinstance(state, tuple) else (state,)
            result = self.render(*args)
            panels.append(self._snapshot_panels(result))
            auto.append(self._snapshot_title(args, result))
        titles = auto if titles is None else titles
        names = list(panels[0])
        for i, p in enumerate(panels):
            if list(p) != names:
                raise ValueError(f"state {i} renders panels {list(p)}, state 0 renders {names}: every state must "
                                 "render the same panels")
        k, bands = len(names), math.ceil(n / ncols)
        nrows = bands * k
        if row_labels is not None:
            row_labels = [str(r) for r in row_labels]
            if len(row_labels) != nrows:
                raise ValueError(f"row_labels must give one label per row of panels: {nrows} rows "
                                 f"({bands} row(s) of states x {k} panel(s) each), got {len(row_labels)}")
        elif k > 1:
            row_labels = names * bands
        first = panels[0][names[0]]
        h, w = first.shape[:2]
        pw = float(panel_inches) if panel_inches is not None else (w / 100 if first.ndim == 3 else 1.3)
        if figure is None:
            from matplotlib.figure import Figure

            label_in = 0.07 * max(map(len, row_labels)) if row_labels else 0.0  # ~ width of 8-pt text
            titled = sum(any(titles[b * ncols:(b + 1) * ncols]) for b in range(bands))  # bands with a title
            figure = Figure(figsize=(ncols * pw + label_in + 0.1, nrows * pw * h / w + 0.3 * titled + 0.08 * nrows),
                            layout="constrained")
        axes = figure.subplots(nrows, ncols, squeeze=False)
        cmap = "gray" if getattr(self, "invert", True) is False else "gray_r"
        for i in range(bands * ncols):
            band, col = divmod(i, ncols)
            for j, name in enumerate(names):
                ax = axes[band * k + j, col]
                if i >= n:
                    ax.remove()
                    continue
                img = panels[i][name]
                if img.ndim == 2:
                    ax.imshow(img, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
                else:
                    ax.imshow(img)
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_color("#ccc")  # the widget's 1px #ccc border
                if j == 0 and titles[i]:
                    ax.set_title(titles[i], fontsize=8)
                if col == 0 and row_labels:
                    ax.set_ylabel(row_labels[band * k + j], fontsize=8, rotation=0, ha="right", va="center")
        return figure

    def snapshots_match(self, figure, states: Sequence) -> bool:
        """Whether ``figure`` (drawn by :meth:`snapshots` from ``states``) still shows, for each
        state in order, exactly the pictures a fresh ``render`` of that state gives now.

        The check a reader without a kernel relies on: the static grid is the widget's picture
        of those states. A grid from other states or in another order, a missing or extra
        panel, a panel whose image was replaced or has a second image drawn over it, an image
        panel shown with another colour map or other limits than :meth:`snapshots` uses, or a
        render that depends on the previous state all give False. Each panel's image data is
        compared element for element with the render (a rasterised figure as its RGBA bytes at
        100 dpi). ``figure`` is the Figure or SubFigure :meth:`snapshots` drew into (the grid's
        own, not a parent holding several grids). An explorer that redraws its own figure is
        left at the last state, as after :meth:`snapshots`.
        """
        states = list(states)
        cmap = "gray" if getattr(self, "invert", True) is False else "gray_r"
        by_cell, ncols = {}, None
        for ax in figure.axes:
            spec, images = ax.get_subplotspec(), ax.get_images()
            if spec is None or not images:
                continue
            cell = (spec.rowspan.start, spec.colspan.start)
            if len(images) != 1 or cell in by_cell:  # a second image, or two grids in one figure
                return False
            by_cell[cell] = images[0]
            ncols = spec.get_gridspec().ncols
        if not by_cell or not states:
            return False
        drawn = 0
        for i, state in enumerate(states):
            panels = self._snapshot_panels(self.render(*(state if isinstance(state, tuple) else (state,))))
            band, col = divmod(i, ncols)
            for j, img in enumerate(panels.values()):
                shown = by_cell.get((band * len(panels) + j, col))
                if shown is None or not np.array_equal(np.asarray(shown.get_array()), img):
                    return False
                if img.ndim == 2 and (shown.get_cmap().name != cmap or shown.get_clim() != (0.0, 1.0)):
                    return False
                drawn += 1
        return drawn == len(by_cell)  # no panel left over that no state accounts for

    def _snapshot_panels(self, result) -> dict:
        """{panel name: image} of one render result (see :meth:`snapshots`); '' names a lone panel."""
        if isinstance(result, Mapping) and result and all(np.ndim(v) == 2 for v in result.values()):
            return {str(name): np.asarray(img) for name, img in result.items()}
        if np.ndim(result) == 2:
            return {"": np.asarray(result)}
        figure = getattr(self, "figure", None)
        if figure is None:
            raise TypeError(f"{type(self).__name__}.render returned {type(result).__name__}; snapshots needs an "
                            "image [H, W], a dict {name: image}, or a render that redraws self.figure")
        from PIL import Image as PILImage

        buf = io.BytesIO()
        figure.savefig(buf, format="png", dpi=100)
        return {"": np.asarray(PILImage.open(io.BytesIO(buf.getvalue())).convert("RGBA"))}

    def _snapshot_title(self, args: tuple, result) -> str:
        """Default title of one state: render's arguments by name, e.g. ``"t = 0.50"``."""
        params = [p for p in inspect.signature(self.render).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        return ", ".join(f"{p.name} = {_format_value(a)}" for p, a in zip(params, args))


def _format_value(value) -> str:
    """A short text for one render argument: strings as they are, numbers to 2 decimals,
    a vector as (a, b, ...) (its first three entries and "..." when longer)."""
    if isinstance(value, str):
        return value
    a = np.asarray(value)
    if a.ndim == 0:
        return f"{a.item():.2f}" if a.dtype.kind == "f" else str(a.item())
    shown = ", ".join(f"{float(v):.2f}" for v in a.ravel()[:3])
    return f"({shown}{', ...' if a.size > 3 else ''})"


# ----------------------------------------------------------------------------- rendering
def upscale(image, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling: image [H, W] -> [H*factor, W*factor] (same dtype)."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-d [H, W], got shape {image.shape}")
    factor = int(factor)
    if factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    if factor == 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def _scale_for(shape, display_px: int) -> int:
    return max(1, int(round(display_px / max(shape))))


def to_png(image, *, display_px: int = DISPLAY_PX, invert: bool = True) -> bytes:
    """Encode one grey image [H, W] with values in [0, 1] as PNG bytes.

    The image is clipped to [0, 1], optionally inverted (dark ink on white paper) and
    upscaled by an integer factor (nearest neighbour) so its longer side is about
    display_px pixels. Returns the bytes of an 8-bit greyscale PNG.
    """
    from PIL import Image as PILImage  # Pillow ships with matplotlib

    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-d [H, W], got shape {img.shape}")
    if not np.all(np.isfinite(img)):
        raise ValueError("image contains NaN or inf values")
    img = np.clip(img, 0.0, 1.0)
    if invert:
        img = 1.0 - img
    u8 = np.round(img * 255.0).astype(np.uint8)
    u8 = upscale(u8, _scale_for(u8.shape, display_px))
    buf = io.BytesIO()
    PILImage.fromarray(u8, mode="L").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _decode_with(decode: Callable, cfg: ModelConfig, z) -> np.ndarray:
    """Codes z [n, L] (or [L]) -> images [n, H, W] (or [H, W]) in [0, 1] through decode."""
    z = np.asarray(z, dtype=np.float32)
    single = z.ndim == 1
    z2 = z[None] if single else z
    L = cfg.latent_dim
    if z2.ndim != 2 or z2.shape[1] != L:
        raise ValueError(f"expected latent codes of size {L} (shape [{L}] or [n, {L}]), got shape {z.shape}")
    if not np.all(np.isfinite(z2)):
        raise ValueError("latent codes contain NaN or inf values")
    pixels = np.asarray(decode(z2))
    images = np.clip(pixels, 0.0, 1.0).reshape(len(z2), *cfg.image_shape)
    return images[0] if single else images


def decode_images(model: VAE, z) -> np.ndarray:
    """Decode codes z [n, L] (or one code [L]) to images [n, H, W] (or [H, W]) in [0, 1].

    One-off use; the explorers keep a :func:`vae_core.evaluate.decoder_function` instead
    (split once). A Gaussian decoder's means are clipped to [0, 1] for display.
    """
    _check_model(model, "model")
    return _decode_with(decoder_function(model), model.cfg, z)


def _check_model(model, where: str) -> VAE:
    if isinstance(model, tuple):
        raise ValueError(f"{where} must be a vae_core VAE (an nnx.Module holding its parameters), got a "
                         "tuple; (model, params) pairs are gone: pass the model alone (e.g. result.model)")
    if not isinstance(model, VAE):
        raise ValueError(f"{where} must be a vae_core VAE (an nnx.Module), got {type(model).__name__}")
    return model


def _check_models(models, what: str) -> dict[str, VAE]:
    if not isinstance(models, Mapping) or not models:
        raise ValueError(f"models must be a non-empty dict {{name: VAE}} ({what})")
    return {str(n): _check_model(m, f"models[{n!r}]") for n, m in models.items()}


def _posterior_mean(model: VAE, x, name: str) -> np.ndarray:
    """Posterior mean [L] of one image x [D] (a flat vector or an [H, W] image)."""
    x = np.asarray(x, dtype=np.float32)
    D = model.cfg.input_dim
    if x.size != D:
        raise ValueError(f"{name} has {x.size} pixels but the model expects {D} "
                         f"(image shape {model.cfg.image_shape})")
    flat = x.reshape(1, D)
    check_images(flat, name, D)
    return np.array(encode(model, flat).mean[0], dtype=np.float32)  # writable copy


def _image_widget(display_px: int, shape):
    import ipywidgets as W

    s = _scale_for(shape, display_px)
    img = W.Image(format="png", width=shape[1] * s, height=shape[0] * s,
                  layout=W.Layout(border="1px solid #ccc", margin="2px"))
    img.add_class("vae-decoded-image")  # a stable CSS hook (tests/test_browser.py)
    return img


def _captioned(image_widget, caption: str):
    import ipywidgets as W

    return W.VBox([W.HTML(f"<b>{caption}</b>"), image_widget],
                  layout=W.Layout(align_items="center", margin="0 6px"))


# ----------------------------------------------------------------------------- sliders
class LatentSliders(Explorer):
    """One slider per latent dimension of a decoder, ordered by how much it is used.

    model:          a trained (or freshly built) vae_core VAE.
    order:          optional sequence of latent indices to show, top first (a subset or a
                    permutation of range(L)); dims not shown stay at their start value.
    value_range:    (low, high) of every slider (prior N(0, 1) -> (-3, 3) covers 99.7%).
    x_start:        optional image [D] whose posterior mean is the starting code.
    kl_per_dim:     optional [L] average KL per dimension (e.g. history['test_kl_per_dim'][-1]);
                    sliders are then ordered by KL, largest first, and the KL is shown.
    x_data:         optional images [n, D]; without kl_per_dim, order by the variance of
                    their posterior means (Burda et al.'s activity), largest first.
    max_sliders:    show only the first max_sliders dims of the ordering.
    key:            PRNG key for the "sample z ~ N(0, I)" button.

    ``render(values [L]) -> image [H, W]``; ``set_from_image(x [D])`` moves the sliders to
    x's posterior mean (values outside value_range are clipped to it); ``.widget``,
    ``.sliders`` ({dim: FloatSlider}), ``.image`` (the ipywidgets.Image).
    """

    def __init__(self, model: VAE, order: Sequence[int] | None = None, value_range=(-3.0, 3.0),
                 x_start=None, kl_per_dim=None, *, x_data=None, max_sliders: int | None = None,
                 key: jax.Array | None = None, display_px: int = DISPLAY_PX, invert: bool = True,
                 step: float = 0.05):
        self.model = _check_model(model, "model")
        self._decode = decoder_function(model)  # split once: the hot path of every slider event
        self.latent_dim = L = model.cfg.latent_dim
        self.image_shape = tuple(model.cfg.image_shape)
        lo, hi = (float(v) for v in value_range)
        if not lo < hi:
            raise ValueError(f"value_range must be (low, high) with low < high, got {value_range}")
        self.value_range = (lo, hi)
        self.kl_per_dim = None
        if kl_per_dim is not None:
            kl = np.asarray(kl_per_dim, dtype=np.float64)
            if kl.shape != (L,):
                raise ValueError(f"kl_per_dim must have shape [{L}] (one value per latent dim), got "
                                 f"{kl.shape}; from a training history use history['test_kl_per_dim'][-1]")
            self.kl_per_dim = kl
        self.order = self._ordering(order, x_data)
        if max_sliders is not None:
            if int(max_sliders) < 1:
                raise ValueError(f"max_sliders must be >= 1, got {max_sliders}")
            self.order = self.order[: int(max_sliders)]
        self.display_px, self.invert, self.step = display_px, invert, float(step)
        self._key = jax.random.key(0) if key is None else key
        self._z = np.zeros(L, np.float32)
        if x_start is not None:
            self._z = self._clip(_posterior_mean(model, x_start, "x_start"))
        self._hold = False
        self.render(self._z)  # compiles the decoder now, not on the first slider event

    # -- plain functions ------------------------------------------------------
    def _ordering(self, order, x_data) -> list[int]:
        L = self.latent_dim
        if order is not None:
            order = [int(i) for i in order]
            if not order or len(set(order)) != len(order) or not all(0 <= i < L for i in order):
                raise ValueError(f"order must list distinct latent indices in [0, {L}), got {order}")
            return order
        if self.kl_per_dim is not None:
            return [int(i) for i in np.argsort(-self.kl_per_dim, kind="stable")]
        if x_data is not None:
            x_data = np.asarray(x_data, dtype=np.float32)
            check_images(x_data, "x_data", self.model.cfg.input_dim)
            var = np.asarray(encode(self.model, x_data).mean).var(axis=0)
            self.activity = var
            return [int(i) for i in np.argsort(-var, kind="stable")]
        return list(range(L))

    def _clip(self, z) -> np.ndarray:
        return np.clip(np.asarray(z, np.float32), *self.value_range)

    def _check_values(self, values) -> np.ndarray:
        z = np.asarray(values, dtype=np.float32)
        if z.shape != (self.latent_dim,):
            raise ValueError(f"expected {self.latent_dim} latent values (shape [{self.latent_dim}]), "
                             f"got shape {z.shape}")
        return z

    def render(self, values) -> np.ndarray:
        """Decode one code values [L] -> image [H, W] floats in [0, 1]."""
        return _decode_with(self._decode, self.model.cfg, self._check_values(values))

    def render_png(self, values) -> bytes:
        """PNG bytes of :meth:`render` (upscaled, inverted as configured)."""
        return to_png(self.render(values), display_px=self.display_px, invert=self.invert)

    @property
    def values(self) -> np.ndarray:
        """The current code [L] (a copy)."""
        return self._z.copy()

    def set_values(self, values) -> None:
        """Put the code at values [L] (clipped to value_range) and refresh the widget once."""
        self._z = self._clip(self._check_values(values))
        self._sync_widget()

    def set_from_image(self, x) -> np.ndarray:
        """Encode x [D] and put the sliders at its posterior mean (clipped); returns that code [L]."""
        z = _posterior_mean(self.model, x, "x")
        self.set_values(z)
        return self.values

    # -- widget -----------------------------------------------------------------
    @property
    def sliders(self) -> dict:
        """{latent index: FloatSlider} of the shown dims (builds the widget)."""
        self.widget
        return self._sliders

    @property
    def image(self):
        """The ipywidgets.Image showing the decoded code (builds the widget)."""
        self.widget
        return self._image

    def _label(self, d: int) -> str:
        return f"z{d}"

    def _build(self):
        import ipywidgets as W

        lo, hi = self.value_range
        self._sliders = {}
        rows = []
        for d in self.order:
            tip = f"latent dimension {d}"
            if self.kl_per_dim is not None:
                tip += f", average KL {self.kl_per_dim[d]:.2f} nats"
            s = W.FloatSlider(value=float(self._z[d]), min=lo, max=hi, step=self.step,
                              description=self._label(d), description_allow_html=False,
                              continuous_update=True, readout_format=".2f", tooltip=tip,
                              style={"description_width": "36px"},
                              layout=W.Layout(width="300px"))
            s.observe(self._on_slider, names="value")
            s.add_class("vae-latent-slider")
            self._sliders[d] = s
            if self.kl_per_dim is not None:
                rows.append(W.HBox([s, W.HTML(f"<small>KL {self.kl_per_dim[d]:.2f}</small>")]))
            else:
                rows.append(s)
        self._image = _image_widget(self.display_px, self.image_shape)
        self._image.value = self.render_png(self._z)
        zero = W.Button(description="all zero", tooltip="set every latent to 0 (the prior mean)",
                        layout=W.Layout(width="96px"))
        zero.on_click(lambda _: self.set_values(np.zeros(self.latent_dim)))
        sample = W.Button(description="sample z", tooltip="draw z ~ N(0, I) (clipped to the slider range)",
                          layout=W.Layout(width="96px"))
        sample.on_click(lambda _: self._sample())
        ordering = ("ordered by KL, largest first" if self.kl_per_dim is not None else
                    "ordered by posterior-mean variance" if hasattr(self, "activity") else
                    "in index order" if list(self.order) == list(range(self.latent_dim)) else "in the given order")
        head = W.HTML(f"<small>{len(self.order)} of {self.latent_dim} latent dims, {ordering}</small>")
        side = W.VBox([self._image, W.HBox([zero, sample])], layout=W.Layout(align_items="center"))
        box = W.VBox(rows, layout=W.Layout(max_height="460px", overflow="auto", padding="0 8px 0 0"))
        return W.VBox([head, W.HBox([box, side])])

    def _sample(self) -> None:
        self._key, sub = jax.random.split(self._key)
        self.set_values(self._clip(jax.random.normal(sub, (self.latent_dim,))))

    def _on_slider(self, change) -> None:
        if self._hold:
            return
        owner = change["owner"]
        for d, s in self._sliders.items():
            if s is owner:
                self._z[d] = change["new"]
                break
        self._image.value = self.render_png(self._z)

    def _sync_widget(self) -> None:
        if self._widget is None:
            return
        self._hold = True  # one decode for the whole update, not one per slider
        try:
            for d, s in self._sliders.items():
                s.value = float(self._z[d])
        finally:
            self._hold = False
        self._image.value = self.render_png(self._z)


# ----------------------------------------------------------------------------- conditional sliders
def _widget_part(attr: str, doc: str) -> property:
    """A property that builds the explorer's widget on first access, then returns one of its parts."""

    def get(self):
        self.widget
        return getattr(self, attr)

    return property(get, doc=doc)


class ConditionalSliders(Explorer):
    """A conditional VAE's decoder under a label selector and one slider per latent: one style
    code z drawn as any of the labels (:class:`vae_core.conditional.ConditionalVAE` whose
    condition is a one-hot label, e.g. the ten digits).

    model:        a ConditionalVAE (cond_dim = the number of labels; target_dim = H * W).
    image_shape:  (H, W) of the decoded target (default 28 x 28).
    labels:       the names of the labels on the buttons (default '0', '1', ...).
    value_range:  (low, high) of every slider; max_sliders shows only the first latents.
    x_start, y_start: optional image [H * W] and its label (both or neither); the explorer
                  starts at that label, the sliders at the posterior mean of q(z | x_start,
                  y_start): the image's style.

    ``render(label, values [L]) -> image [H, W]``; ``render_all(values) -> images [K, H, W]``
    (one style as every label); ``set_from_image(x, y)``; ``.widget``, ``.buttons``
    (ToggleButtons of the label), ``.sliders`` ({dim: FloatSlider}), ``.image``.
    """

    def __init__(self, model, image_shape=(28, 28), labels=None, value_range=(-3.0, 3.0), *, x_start=None,
                 y_start=None, max_sliders: int | None = None, key: jax.Array | None = None,
                 display_px: int = DISPLAY_PX, invert: bool = True, step: float = 0.05):
        from flax import nnx

        from .conditional import ConditionalVAE

        if not isinstance(model, ConditionalVAE):
            raise ValueError(f"model must be a vae_core.conditional.ConditionalVAE, got {type(model).__name__}")
        cfg = model.cfg
        self.image_shape = tuple(int(s) for s in image_shape)
        if math.prod(self.image_shape) != cfg.target_dim:
            raise ValueError(f"image_shape {self.image_shape} has {math.prod(self.image_shape)} pixels; the "
                             f"model draws {cfg.target_dim}")
        self.n_labels, self.latent_dim = cfg.cond_dim, cfg.latent_dim
        self.labels = [str(i) for i in range(self.n_labels)] if labels is None else [str(n) for n in labels]
        if len(self.labels) != self.n_labels:
            raise ValueError(f"labels must name the model's {self.n_labels} conditions, got {len(self.labels)}")
        lo, hi = (float(v) for v in value_range)
        if not lo < hi:
            raise ValueError(f"value_range must be (low, high) with low < high, got {value_range}")
        self.value_range = (lo, hi)
        n = self.latent_dim if max_sliders is None else int(max_sliders)
        if not 1 <= n <= self.latent_dim:
            raise ValueError(f"max_sliders must be in 1..{self.latent_dim}, got {max_sliders}")
        self.order = list(range(n))
        self.model, self.display_px, self.invert, self.step = model, display_px, invert, float(step)
        graphdef, params = nnx.split(model)
        params = jax.tree_util.tree_map(jax.numpy.copy, params)  # the parameters as they are now
        eye = np.eye(self.n_labels, dtype=np.float32)
        decode = jax.jit(lambda z, c: jax.nn.sigmoid(nnx.merge(graphdef, params).decoder_output(z, c)))
        self._decode = lambda z, labels: np.asarray(decode(np.asarray(z, np.float32), eye[labels]))
        self._key = jax.random.key(0) if key is None else key
        self._z, self._label, self._hold = np.zeros(self.latent_dim, np.float32), 0, False
        if (x_start is None) != (y_start is None):
            raise ValueError("x_start and y_start go together: the style of an image is read under its label "
                             "(pass both, e.g. x_start=x_test[0], y_start=y_test[0])")
        if x_start is not None:
            self._z = self._style(x_start, y_start)
            self._label = self._check_label(y_start)
        self.render(self._label, self._z)  # compiles the decoder now, not on the first event

    # -- plain functions ------------------------------------------------------
    def _check_label(self, label) -> int:
        label = int(label)
        if not 0 <= label < self.n_labels:
            raise ValueError(f"label must be in 0..{self.n_labels - 1}, got {label}")
        return label

    def _check_values(self, values) -> np.ndarray:
        z = np.asarray(values, np.float32)
        if z.shape != (self.latent_dim,) or not np.all(np.isfinite(z)):
            raise ValueError(f"expected {self.latent_dim} finite latent values (shape [{self.latent_dim}]), "
                             f"got shape {z.shape}")
        return z

    def _style(self, x, y) -> np.ndarray:
        x = np.asarray(x, np.float32).reshape(1, -1)
        check_images(x, "x", self.model.cfg.target_dim)
        c = np.eye(self.n_labels, dtype=np.float32)[[self._check_label(y)]]
        z = np.asarray(self.model.encode(jax.numpy.asarray(x), jax.numpy.asarray(c)).mean[0])
        return np.clip(z, *self.value_range).astype(np.float32)

    def render(self, label, values) -> np.ndarray:
        """Decode the code values [L] under one label -> image [H, W] in [0, 1]."""
        z = self._check_values(values)[None]
        return self._decode(z, [self._check_label(label)])[0].reshape(self.image_shape)

    def render_all(self, values) -> np.ndarray:
        """The same code values [L] under every label -> images [K, H, W] (style transfer)."""
        z = np.repeat(self._check_values(values)[None], self.n_labels, axis=0)
        return self._decode(z, list(range(self.n_labels))).reshape(self.n_labels, *self.image_shape)

    def _snapshot_title(self, args, result) -> str:
        return self.labels[int(args[0])]

    @property
    def values(self) -> np.ndarray:
        """The current code [L] (a copy)."""
        return self._z.copy()

    @property
    def label(self) -> int:
        return self._label

    def set_state(self, label, values) -> None:
        """Show values [L] (clipped to value_range) under label, refreshing the widget once."""
        self._label = self._check_label(label)
        self._z = np.clip(self._check_values(values), *self.value_range)
        self._sync_widget()

    def set_from_image(self, x, y) -> np.ndarray:
        """Show image x [H * W] as the model reads it: the label y and the sliders at the posterior
        mean of q(z | x, y) (clipped to value_range); returns that code [L]."""
        self.set_state(y, self._style(x, y))
        return self.values

    # -- widget -----------------------------------------------------------------
    buttons = _widget_part("_buttons", "The ToggleButtons of the label (builds the widget).")
    sliders = _widget_part("_sliders", "{latent index: FloatSlider} (builds the widget).")
    image = _widget_part("_image", "The ipywidgets.Image of the decoded code (builds the widget).")

    def _png(self) -> bytes:
        return to_png(self.render(self._label, self._z), display_px=self.display_px, invert=self.invert)

    def _build(self):
        import ipywidgets as W

        lo, hi = self.value_range
        self._buttons = W.ToggleButtons(options=[(n, i) for i, n in enumerate(self.labels)], value=self._label,
                                        style={"button_width": "32px"}, tooltips=[f"draw as {n}" for n in self.labels])
        self._buttons.observe(self._on_label, names="value")
        self._sliders = {}
        for d in self.order:
            s = W.FloatSlider(value=float(self._z[d]), min=lo, max=hi, step=self.step, description=f"z{d}",
                              continuous_update=True, readout_format=".2f", style={"description_width": "36px"},
                              layout=W.Layout(width="300px"))
            s.observe(self._on_slider, names="value")
            s.add_class("vae-latent-slider")
            self._sliders[d] = s
        self._image = _image_widget(self.display_px, self.image_shape)
        self._image.value = self._png()
        sample = W.Button(description="sample z", tooltip="draw z ~ N(0, I) (clipped to the slider range)",
                          layout=W.Layout(width="96px"))
        sample.on_click(lambda _: self._sample())
        box = W.VBox(list(self._sliders.values()), layout=W.Layout(max_height="460px", overflow="auto"))
        return W.VBox([self._buttons, W.HBox([box, W.VBox([self._image, sample])])])

    def _sample(self) -> None:
        self._key, sub = jax.random.split(self._key)
        self.set_state(self._label, np.asarray(jax.random.normal(sub, (self.latent_dim,))))

    def _on_label(self, change) -> None:
        self._label = int(change["new"])
        if not self._hold:
            self._image.value = self._png()

    def _on_slider(self, change) -> None:
        if self._hold:
            return
        for d, s in self._sliders.items():
            if s is change["owner"]:
                self._z[d] = change["new"]
                break
        self._image.value = self._png()

    def _sync_widget(self) -> None:
        if self._widget is None:
            return
        self._hold = True  # one decode for the whole update, not one per control
        try:
            self._buttons.value = self._label
            for d, s in self._sliders.items():
                s.value = float(self._z[d])
        finally:
            self._hold = False
        self._image.value = self._png()


# ----------------------------------------------------------------------------- 2-d pad
class LatentPad(Explorer):
    """Click or drag on a scatter of 2-d codes; every model decodes the picked z.

    models: {name: VAE}, each with latent_dim == 2 (e.g. {'AE': ..., 'VAE': ...}).
    codes:  [n, 2] codes to draw (e.g. test-set posterior means of one model).
    labels: [n] integer labels colouring the points (digits 0-9).
    max_points: at most this many points are drawn (a fixed random subset, key-chosen).

    ``render(z [2]) -> {name: image [H, W]}``; ``.widget`` holds the clickable scatter
    (``.canvas``, an ipympl canvas; drag with the mouse button held; None without ipympl,
    then a static picture) and two sliders z1, z2 (``.sliders``) as the keyboard route
    (focus a slider, then arrow keys); ``.images`` is {name: ipywidgets.Image}.
    """

    def __init__(self, models: Mapping[str, VAE], codes, labels, *, max_points: int = 3000,
                 key: jax.Array | None = None, display_px: int = 140, invert: bool = True,
                 title: str | None = None):
        self.models = _check_models(models, "each with latent_dim == 2")
        for name, m in self.models.items():
            if m.cfg.latent_dim != 2:
                raise ValueError(f"LatentPad needs 2-d latents; model {name!r} has latent_dim={m.cfg.latent_dim}")
        self._decoders = {name: decoder_function(m) for name, m in self.models.items()}
        codes = np.asarray(codes, dtype=np.float32)
        if codes.ndim != 2 or codes.shape[1] != 2 or len(codes) == 0:
            raise ValueError(f"codes must have shape [n, 2] with n >= 1, got {codes.shape}")
        if not np.all(np.isfinite(codes)):
            raise ValueError("codes contain NaN or inf values")
        labels = np.asarray(labels)
        if labels.shape != (len(codes),):
            raise ValueError(f"labels must have shape [{len(codes)}] (one per code), got {labels.shape}")
        if len(codes) > max_points:
            key = jax.random.key(0) if key is None else key
            keep = np.asarray(jax.random.choice(key, len(codes), (max_points,), replace=False))
            codes, labels = codes[keep], labels[keep]
        self.codes, self.labels = codes, labels
        lo, hi = codes.min(axis=0), codes.max(axis=0)
        pad = 0.05 * np.maximum(hi - lo, 1e-3)
        self.bounds = (lo - pad, hi + pad)  # ([2], [2]) limits of the pad and sliders
        self.display_px, self.invert, self.title = display_px, invert, title
        self._z = np.zeros(2, np.float32)
        self._dragging = False
        self._hold = False
        self.render(self._z)  # compile every decoder now

    def render(self, z) -> dict[str, np.ndarray]:
        """Decode z [2] with every model -> {name: image [H, W] in [0, 1]}."""
        z = np.asarray(z, dtype=np.float32)
        if z.shape != (2,):
            raise ValueError(f"z must have shape [2], got {z.shape}")
        return {name: _decode_with(self._decoders[name], m.cfg, z) for name, m in self.models.items()}

    def render_png(self, z) -> dict[str, bytes]:
        """{name: PNG bytes} of :meth:`render`."""
        return {n: to_png(img, display_px=self.display_px, invert=self.invert)
                for n, img in self.render(z).items()}

    @property
    def values(self) -> np.ndarray:
        """The picked code [2] (a copy)."""
        return self._z.copy()

    def set_z(self, z) -> None:
        """Move the picked point to z [2] (clipped to the pad) and redraw the decoded images."""
        z = np.asarray(z, dtype=np.float32)
        if z.shape != (2,):
            raise ValueError(f"z must have shape [2], got {z.shape}")
        self._z = np.clip(z, self.bounds[0], self.bounds[1]).astype(np.float32)
        if self._widget is None:
            return
        self._hold = True
        try:
            self._sliders[0].value, self._sliders[1].value = float(self._z[0]), float(self._z[1])
        finally:
            self._hold = False
        self._refresh()

    @property
    def sliders(self) -> list:
        """[FloatSlider z1, FloatSlider z2] (builds the widget)."""
        self.widget
        return self._sliders

    @property
    def images(self) -> dict:
        """{name: ipywidgets.Image} (builds the widget)."""
        self.widget
        return self._images

    @property
    def canvas(self):
        """The ipympl canvas of the clickable scatter, or None without ipympl (builds the widget)."""
        self.widget
        return self._canvas

    def _build(self):
        import ipywidgets as W

        self._sliders = []
        for i in range(2):
            lo, hi = float(self.bounds[0][i]), float(self.bounds[1][i])
            s = W.FloatSlider(value=float(np.clip(self._z[i], lo, hi)), min=lo, max=hi,
                              step=(hi - lo) / 200, description=f"z{i + 1}", continuous_update=True,
                              readout_format=".2f", style={"description_width": "30px"},
                              layout=W.Layout(width="320px"))
            s.observe(self._on_slider, names="value")
            self._sliders.append(s)
        self._z = np.array([s.value for s in self._sliders], np.float32)
        self._images = {}
        panels = []
        pngs = self.render_png(self._z)
        for name, m in self.models.items():
            img = _image_widget(self.display_px, m.cfg.image_shape)
            img.value = pngs[name]
            self._images[name] = img
            panels.append(_captioned(img, name))
        self._canvas = self._make_canvas()
        hint = W.HTML("<small>click or drag on the scatter to pick z; or focus a slider and use the arrow keys</small>")
        right = W.VBox([W.HBox(panels), *self._sliders, hint])
        left = [self._canvas] if self._canvas is not None else [self._static_scatter()]
        return W.HBox([*left, right], layout=W.Layout(align_items="center"))

    def _scatter_figure(self):
        from matplotlib.figure import Figure

        from .plots import scatter_latents

        fig = Figure(figsize=(4.4, 3.8), dpi=80)
        ax = fig.add_subplot()
        scatter_latents(self.codes, self.labels, ax=ax, title=self.title or "click or drag to pick z")
        ax.set_xlim(self.bounds[0][0], self.bounds[1][0])
        ax.set_ylim(self.bounds[0][1], self.bounds[1][1])
        (self._marker,) = ax.plot([self._z[0]], [self._z[1]], marker="x", ms=12, mew=3, color="k", zorder=5)
        self._ax = ax
        fig.tight_layout()
        return fig

    def _make_canvas(self):
        """An ipympl canvas widget of the scatter wired to mouse events; None without ipympl."""
        try:
            from ipympl.backend_nbagg import Canvas, FigureManager
        except Exception:  # ipympl missing: static scatter, sliders only
            return None
        fig = self._scatter_figure()
        canvas = Canvas(fig)
        self._manager = FigureManager(canvas, 0)
        canvas.header_visible = False
        canvas.footer_visible = False
        canvas.toolbar_visible = False
        canvas.resizable = False
        canvas.capture_scroll = False
        canvas.mpl_connect("button_press_event", self._on_press)
        canvas.mpl_connect("motion_notify_event", self._on_move)
        canvas.mpl_connect("button_release_event", self._on_release)
        return canvas

    def _static_scatter(self):
        import ipywidgets as W

        fig = self._scatter_figure()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return W.Image(value=buf.getvalue(), format="png")

    def _on_press(self, event) -> None:
        if event.inaxes is self._ax and event.xdata is not None:
            self._dragging = True
            self.set_z([event.xdata, event.ydata])

    def _on_move(self, event) -> None:
        if self._dragging and event.inaxes is self._ax and event.xdata is not None:
            self.set_z([event.xdata, event.ydata])

    def _on_release(self, event) -> None:
        self._dragging = False

    def _on_slider(self, change) -> None:
        if self._hold:
            return
        self._z = np.array([s.value for s in self._sliders], np.float32)
        self._refresh()

    def _refresh(self) -> None:
        for name, png in self.render_png(self._z).items():
            self._images[name].value = png
        if getattr(self, "_marker", None) is not None:
            self._marker.set_data([self._z[0]], [self._z[1]])
            if self._canvas is not None:
                self._canvas.draw_idle()


# ----------------------------------------------------------------------------- interpolation
class Interpolator(Explorer):
    """Decode (1 - t) z_a + t z_b, the path between the posterior means of two images.

    model: a vae_core VAE. x_a, x_b: images [D] (or [H, W]). steps: number of slider
    positions from t=0 to t=1 (and the length of the strip). ``render(t) -> image [H, W]``;
    ``strip() -> images [steps, H, W]``; ``.widget`` shows x_a, the decoded point, x_b;
    ``.slider`` (t) and ``.image`` are its parts.
    """

    def __init__(self, model: VAE, x_a, x_b, steps: int = 11, *, display_px: int = DISPLAY_PX,
                 invert: bool = True):
        self.model = _check_model(model, "model")
        if int(steps) < 2:
            raise ValueError(f"steps must be >= 2 (t=0 and t=1), got {steps}")
        self.steps = int(steps)
        self._decode = decoder_function(model)
        self.image_shape = tuple(model.cfg.image_shape)
        self.x_a = np.asarray(x_a, np.float32).reshape(-1)
        self.x_b = np.asarray(x_b, np.float32).reshape(-1)
        self.z_a = _posterior_mean(model, x_a, "x_a")  # [L]
        self.z_b = _posterior_mean(model, x_b, "x_b")  # [L]
        self.display_px, self.invert = display_px, invert
        self.render(0.0)

    def code(self, t: float) -> np.ndarray:
        """The interpolated code (1 - t) z_a + t z_b -> [L]."""
        t = float(t)
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"t must lie in [0, 1], got {t}")
        return ((1.0 - t) * self.z_a + t * self.z_b).astype(np.float32)

    def render(self, t: float) -> np.ndarray:
        """Decoded image [H, W] in [0, 1] at position t of the path."""
        return _decode_with(self._decode, self.model.cfg, self.code(t))

    def strip(self) -> np.ndarray:
        """Decoded images [steps, H, W] at t = 0, 1/(steps-1), ..., 1."""
        z = np.stack([self.code(t) for t in np.linspace(0.0, 1.0, self.steps)])
        return _decode_with(self._decode, self.model.cfg, z)

    @property
    def slider(self):
        """The FloatSlider of t (builds the widget)."""
        self.widget
        return self._slider

    @property
    def image(self):
        """The ipywidgets.Image of the decoded point (builds the widget)."""
        self.widget
        return self._image

    def _png(self, t: float) -> bytes:
        return to_png(self.render(t), display_px=self.display_px, invert=self.invert)

    def _build(self):
        import ipywidgets as W

        self._slider = W.FloatSlider(value=0.0, min=0.0, max=1.0, step=1.0 / (self.steps - 1),
                                     description="t", continuous_update=True, readout_format=".2f",
                                     style={"description_width": "20px"}, layout=W.Layout(width="420px"))
        self._image = _image_widget(self.display_px, self.image_shape)
        self._image.value = self._png(0.0)
        self._slider.observe(lambda ch: setattr(self._image, "value", self._png(ch["new"])), names="value")
        ends = []
        for x, cap in [(self.x_a, "image A (t = 0)"), (self.x_b, "image B (t = 1)")]:
            im = _image_widget(self.display_px, self.image_shape)
            im.value = to_png(x.reshape(self.image_shape), display_px=self.display_px, invert=self.invert)
            ends.append(_captioned(im, cap))
        middle = _captioned(self._image, "decoded (1-t) z_A + t z_B")
        return W.VBox([W.HBox([ends[0], middle, ends[1]]), self._slider])


# ----------------------------------------------------------------------------- traversal
class TraversalExplorer(Explorer):
    """Pick a model, a latent dimension and its value; the other dims stay fixed.

    models: {name: VAE} (e.g. {'beta=1': ..., 'beta=4': ...}); all must decode images
            of the same shape.
    x_ref:  optional image [D] whose posterior mean (under each model) fixes the other
            dims; without it they are 0 (the prior mean).
    value_range: range of the value slider.

    ``render(name, dim, value) -> image [H, W]``; ``traversal(name, dim, n) -> [n, H, W]``
    (the strip shown under the image); ``.widget`` with parts ``.dropdown``,
    ``.dim_slider``, ``.value_slider``, ``.image`` and ``.strip_image``.
    """

    def __init__(self, models: Mapping[str, VAE], x_ref=None, *, value_range=(-3.0, 3.0),
                 n_strip: int = 9, display_px: int = DISPLAY_PX, invert: bool = True):
        self.models = _check_models(models, "all decoding the same image shape")
        shapes = {tuple(m.cfg.image_shape) for m in self.models.values()}
        if len(shapes) != 1:
            raise ValueError(f"all models must decode the same image shape, got {sorted(shapes)}")
        self.image_shape = shapes.pop()
        lo, hi = (float(v) for v in value_range)
        if not lo < hi:
            raise ValueError(f"value_range must be (low, high) with low < high, got {value_range}")
        self.value_range = (lo, hi)
        self.n_strip = int(n_strip)
        self._decoders = {name: decoder_function(m) for name, m in self.models.items()}
        self.base = {}  # name -> [L] code the other dims are fixed at
        for name, m in self.models.items():
            self.base[name] = (np.zeros(m.cfg.latent_dim, np.float32) if x_ref is None
                               else _posterior_mean(m, x_ref, "x_ref"))
        self.display_px, self.invert = display_px, invert
        for name in self.models:  # compile every decoder now
            self.render(name, 0, 0.0)

    def _code(self, name: str, dim: int, value: float) -> np.ndarray:
        if name not in self.models:
            raise ValueError(f"unknown model {name!r}; choose one of {list(self.models)}")
        L = self.models[name].cfg.latent_dim
        if not (isinstance(dim, (int, np.integer)) and 0 <= dim < L):
            raise ValueError(f"dim must be an integer in [0, {L}) for model {name!r}, got {dim!r}")
        z = self.base[name].copy()
        z[dim] = float(value)
        return z

    def render(self, name: str, dim: int, value: float) -> np.ndarray:
        """Decode model name's reference code with dim set to value -> image [H, W]."""
        z = self._code(name, dim, value)  # validates name and dim
        return _decode_with(self._decoders[name], self.models[name].cfg, z)

    def traversal(self, name: str, dim: int, n: int | None = None) -> np.ndarray:
        """Images [n, H, W] for dim swept over value_range (others fixed)."""
        n = self.n_strip if n is None else int(n)
        z = np.stack([self._code(name, dim, v) for v in np.linspace(*self.value_range, n)])
        return _decode_with(self._decoders[name], self.models[name].cfg, z)

    @property
    def dropdown(self):
        """The model Dropdown (builds the widget)."""
        self.widget
        return self._dropdown

    @property
    def dim_slider(self):
        """The IntSlider of the latent dimension (builds the widget)."""
        self.widget
        return self._dim_slider

    @property
    def value_slider(self):
        """The FloatSlider of the dimension's value (builds the widget)."""
        self.widget
        return self._value_slider

    @property
    def image(self):
        """The ipywidgets.Image of the decoded code (builds the widget)."""
        self.widget
        return self._image

    @property
    def strip_image(self):
        """The ipywidgets.Image of the traversal strip (builds the widget)."""
        self.widget
        return self._strip_image

    def _build(self):
        import ipywidgets as W

        from .plots import tile_images

        names = list(self.models)
        dropdown = W.Dropdown(options=names, value=names[0], description="model",
                              style={"description_width": "50px"}, layout=W.Layout(width="260px"))
        L0 = self.models[names[0]].cfg.latent_dim
        dim_slider = W.IntSlider(value=0, min=0, max=L0 - 1, description="dim", continuous_update=True,
                                 style={"description_width": "50px"}, layout=W.Layout(width="320px"))
        lo, hi = self.value_range
        value_slider = W.FloatSlider(value=float(self.base[names[0]][0]), min=lo, max=hi, step=0.05,
                                     description="value", continuous_update=True, readout_format=".2f",
                                     style={"description_width": "50px"}, layout=W.Layout(width="320px"))
        image = _image_widget(self.display_px, self.image_shape)
        H, W_ = self.image_shape
        strip_w = self.n_strip * (W_ + 1) - 1
        s = max(1, int(round(560 / strip_w)))
        strip_image = W.Image(format="png", width=strip_w * s, height=H * s)
        strip_px = max(H, strip_w) * s
        self._dropdown, self._dim_slider, self._value_slider = dropdown, dim_slider, value_slider
        self._image, self._strip_image = image, strip_image
        self._hold = False

        def refresh(_=None):
            if self._hold:
                return
            image.value = to_png(self.render(dropdown.value, dim_slider.value, value_slider.value),
                                 display_px=self.display_px, invert=self.invert)

        def refresh_strip(_=None):
            if self._hold:
                return
            strip = tile_images(self.traversal(dropdown.value, dim_slider.value), self.n_strip, self.image_shape)
            strip_image.value = to_png(strip, display_px=strip_px, invert=self.invert)

        def on_model(_):
            name = dropdown.value
            self._hold = True
            try:
                dim_slider.max = self.models[name].cfg.latent_dim - 1
                value_slider.value = float(np.clip(self.base[name][dim_slider.value], lo, hi))
            finally:
                self._hold = False
            refresh()
            refresh_strip()

        def on_dim(_):
            self._hold = True
            try:
                value_slider.value = float(np.clip(self.base[dropdown.value][dim_slider.value], lo, hi))
            finally:
                self._hold = False
            refresh()
            refresh_strip()

        dropdown.observe(on_model, names="value")
        dim_slider.observe(on_dim, names="value")
        value_slider.observe(refresh, names="value")
        refresh()
        refresh_strip()
        caption = W.HTML(f"<small>strip: the chosen dim swept over [{lo:g}, {hi:g}], other dims fixed</small>")
        return W.VBox([W.HBox([W.VBox([dropdown, dim_slider, value_slider]), image]), strip_image, caption])
