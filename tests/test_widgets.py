"""Latent explorers: the Explorer base, render functions, PNG encoding, the real
ipywidgets wiring (setting a slider's value fires its observer, as a front end does)
and input checks. Only public names are used.

Tiny untrained models (build_model, no training): a decoder's cost and shapes do not
depend on training, and an untrained decoder still maps different codes to different
images.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from vae_core.evaluate import encode
from vae_core.models import ModelConfig, build_model
from vae_core.widgets import (DISPLAY_PX, Explorer, Interpolator, LatentPad, LatentSliders, TraversalExplorer,
                              decode_images, to_png, upscale)


def _model(latent_dim=4, image_shape=(28, 28), seed=0, **kw):
    return build_model(ModelConfig(latent_dim=latent_dim, hidden=(16,), image_shape=image_shape, **kw), seed)


@pytest.fixture(scope="module")
def small():
    return _model(4)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.random((3, 784), dtype=np.float32)


def _png_array(png: bytes) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(png)))


def _find(widget, kind, description):
    """The one widget of type kind with this description inside a widget tree."""
    found = []

    def walk(w):
        if isinstance(w, kind) and getattr(w, "description", None) == description:
            found.append(w)
        for child in getattr(w, "children", ()):
            walk(child)

    walk(widget)
    assert len(found) == 1, f"{len(found)} {kind.__name__} widgets labelled {description!r}"
    return found[0]


# ---------------------------------------------------------------------------- Explorer base
def test_explorer_builds_its_widget_once():
    import ipywidgets as W

    class Counting(Explorer):
        def __init__(self):
            self.builds = 0

        def _build(self):
            self.builds += 1
            return W.Label("built")

    ex = Counting()
    assert ex.builds == 0  # lazy: nothing built before .widget is read
    first = ex.widget
    assert isinstance(first, W.Label) and ex.builds == 1
    assert ex.widget is first and ex.builds == 1  # the same object, never rebuilt
    assert Counting().widget is not first  # one widget per explorer
    assert Explorer.display_px == DISPLAY_PX
    for cls in (LatentSliders, LatentPad, Interpolator, TraversalExplorer):
        assert issubclass(cls, Explorer)


def test_explorer_without_build_raises():
    class NoBuild(Explorer):
        pass

    with pytest.raises(NotImplementedError, match="NoBuild must implement _build"):
        NoBuild().widget

    class BuildsNothing(Explorer):
        def _build(self):
            return None

    with pytest.raises(TypeError, match="returned None"):
        BuildsNothing().widget


def test_displaying_an_explorer_shows_its_widget(small, monkeypatch):
    """IPython's display machinery (what a cell ending in `explorer` runs) shows .widget."""
    import IPython.display
    from IPython.core.formatters import DisplayFormatter

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
    ls = LatentSliders(small)
    assert DisplayFormatter().format(ls) == ({}, {})  # handled by the explorer, no repr of its own
    DisplayFormatter().format(ls)
    assert len(shown) == 2 and shown[0] is ls.widget and shown[1] is ls.widget


# ---------------------------------------------------------------------------- rendering helpers
def test_upscale_is_nearest_neighbour():
    a = np.array([[0, 1], [2, 3]], np.uint8)
    up = upscale(a, 3)
    assert up.shape == (6, 6)
    assert np.all(up[:3, :3] == 0) and np.all(up[3:, 3:] == 3) and up[0, 5] == 1
    with pytest.raises(ValueError, match="positive"):
        upscale(a, 0)
    with pytest.raises(ValueError, match="2-d"):
        upscale(np.zeros(4), 2)


def test_to_png_roundtrip_scale_invert_and_clip():
    img = np.zeros((28, 28), np.float32)
    img[0, 0] = 1.0
    img[27, 27] = 2.0  # clipped to 1
    img[5, 5] = -1.0  # clipped to 0
    arr = _png_array(to_png(img, display_px=168, invert=False))
    assert arr.shape == (168, 168) and arr.dtype == np.uint8  # factor 6
    # pixel (i, j) becomes the 6x6 block starting at (6i, 6j)
    assert np.all(arr[:6, :6] == 255) and arr[6, 6] == 0  # (0, 0) is 1; (1, 1) is 0
    assert np.all(arr[30:36, 30:36] == 0) and np.all(arr[-6:, -6:] == 255)  # -1 -> 0, 2 -> 1
    inv = _png_array(to_png(img, display_px=168, invert=True))
    assert np.array_equal(inv, 255 - arr)
    # non-square: longer side ~ display_px, integer factor
    assert _png_array(to_png(np.full((20, 40), 0.5), display_px=160)).shape == (80, 160)
    with pytest.raises(ValueError, match="2-d"):
        to_png(np.zeros(784))
    with pytest.raises(ValueError, match="NaN"):
        to_png(np.full((4, 4), np.nan))


def test_decode_images_shapes_and_range(small):
    from vae_core.evaluate import decode_mean

    one = decode_images(small, np.zeros(4))
    z = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    many = decode_images(small, z)
    assert one.shape == (28, 28) and many.shape == (5, 28, 28)
    assert many.min() >= 0 and many.max() <= 1
    np.testing.assert_allclose(many.reshape(5, -1), np.asarray(decode_mean(small, z)), atol=1e-6)
    with pytest.raises(ValueError, match="latent codes of size 4"):
        decode_images(small, np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        decode_images(small, np.full(4, np.nan))


def test_old_model_params_pairs_are_refused(small):
    with pytest.raises(ValueError, match=r"\(model, params\) pairs are gone"):
        TraversalExplorer({"a": (small, None)})
    with pytest.raises(ValueError, match="must be a vae_core VAE"):
        LatentSliders("not a model")
    with pytest.raises(ValueError, match="must be a vae_core VAE"):
        decode_images(object(), np.zeros(4))


# ---------------------------------------------------------------------------- LatentSliders
def test_latent_sliders_render(small):
    ls = LatentSliders(small)
    a = ls.render(np.zeros(4))
    b = ls.render(np.array([3.0, -3.0, 2.0, 0.0]))
    assert a.shape == (28, 28) and a.dtype == np.float32
    assert 0 <= a.min() and a.max() <= 1
    assert not np.allclose(a, b)
    assert ls.order == [0, 1, 2, 3]
    np.testing.assert_allclose(a, decode_images(small, np.zeros(4)), atol=1e-6)
    assert ls.render_png(np.zeros(4)) == to_png(a)
    with pytest.raises(ValueError, match="expected 4 latent values"):
        ls.render(np.zeros(5))


def test_latent_sliders_order_by_kl_and_by_activity(small, images):
    kl = np.array([0.1, 5.0, 0.0, 2.0])
    ls = LatentSliders(small, kl_per_dim=kl)
    assert ls.order == [1, 3, 0, 2]
    assert list(ls.sliders) == [1, 3, 0, 2]  # slider widgets follow the ordering
    assert [s.description for s in ls.sliders.values()] == ["z1", "z3", "z0", "z2"]
    assert all(s.continuous_update for s in ls.sliders.values())
    assert LatentSliders(small, kl_per_dim=kl, max_sliders=2).order == [1, 3]
    assert list(LatentSliders(small, kl_per_dim=kl, max_sliders=2).sliders) == [1, 3]
    assert LatentSliders(small, order=[2, 0]).order == [2, 0]
    by_var = LatentSliders(small, x_data=images)
    var = by_var.activity
    np.testing.assert_allclose(var, np.asarray(encode(small, images).mean).var(axis=0), rtol=1e-5)
    assert by_var.order == list(np.argsort(-var, kind="stable"))
    assert var[by_var.order[0]] >= var[by_var.order[-1]]


def test_latent_sliders_bad_inputs(small):
    with pytest.raises(ValueError, match=r"kl_per_dim must have shape \[4\]"):
        LatentSliders(small, kl_per_dim=np.ones(3))
    with pytest.raises(ValueError, match="order must list distinct"):
        LatentSliders(small, order=[0, 0])
    with pytest.raises(ValueError, match="order must list distinct"):
        LatentSliders(small, order=[4])
    with pytest.raises(ValueError, match="value_range"):
        LatentSliders(small, value_range=(1, -1))
    with pytest.raises(ValueError, match="max_sliders"):
        LatentSliders(small, max_sliders=0)
    with pytest.raises(ValueError, match="x_start has 100 pixels"):
        LatentSliders(small, x_start=np.zeros(100))
    with pytest.raises(ValueError, match="pixel values must lie in"):
        LatentSliders(small, x_start=np.full(784, 3.0))
    with pytest.raises(ValueError, match="x_data has 10 pixels"):
        LatentSliders(small, x_data=np.zeros((2, 10), np.float32))


def test_slider_change_changes_image_bytes(small):
    ls = LatentSliders(small)
    before = ls.image.value
    assert before[:8] == b"\x89PNG\r\n\x1a\n"
    assert _png_array(before).shape == (DISPLAY_PX, DISPLAY_PX)
    ls.sliders[2].value = 2.5  # fires the slider's observer, as a front-end change does
    after = ls.image.value
    assert after != before
    assert ls.values[2] == pytest.approx(2.5)
    np.testing.assert_allclose(ls.values[[0, 1, 3]], 0.0)  # the other dims did not move
    assert after == to_png(ls.render(ls.values))  # the widget shows exactly render()'s image
    ls.sliders[2].value = 0.0
    assert ls.image.value == before


def test_set_values_moves_every_slider_and_redraws_once(small):
    ls = LatentSliders(small, value_range=(-2, 2))
    updates = []
    ls.image.observe(lambda change: updates.append(change["new"]), names="value")
    ls.set_values([1.0, -1.0, 5.0, 0.5])  # 5 is outside the range: clipped to 2
    np.testing.assert_allclose(ls.values, [1.0, -1.0, 2.0, 0.5])
    assert [ls.sliders[d].value for d in range(4)] == pytest.approx([1.0, -1.0, 2.0, 0.5])
    assert len(updates) == 1 and updates[0] == to_png(ls.render(ls.values))  # one decode, not four
    with pytest.raises(ValueError, match="expected 4 latent values"):
        ls.set_values(np.zeros(2))


def test_buttons_zero_and_sample(small):
    import ipywidgets as W

    ls = LatentSliders(small, value_range=(-1, 1))
    ls.sliders[0].value = 0.75
    ls.sliders[3].value = -0.5
    _find(ls.widget, W.Button, "all zero").click()
    np.testing.assert_array_equal(ls.values, np.zeros(4))
    assert all(s.value == 0.0 for s in ls.sliders.values())
    zero_png = ls.image.value
    assert zero_png == to_png(ls.render(np.zeros(4)))
    _find(ls.widget, W.Button, "sample z").click()
    z = ls.values
    assert np.any(z != 0) and np.all(np.abs(z) <= 1)  # a draw, clipped to the range
    assert ls.image.value != zero_png
    _find(ls.widget, W.Button, "sample z").click()
    assert not np.array_equal(ls.values, z)  # a fresh draw each click


def test_set_from_image_moves_sliders_to_posterior_mean(small, images):
    ls = LatentSliders(small, value_range=(-50, 50))
    ls.widget
    z = ls.set_from_image(images[0])
    mean = np.asarray(encode(small, images[:1]).mean)[0]
    np.testing.assert_allclose(z, mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([ls.sliders[d].value for d in range(4)], mean, rtol=1e-5, atol=1e-6)
    assert ls.image.value == to_png(ls.render(mean))
    # an [H, W] image works too; values outside the slider range are clipped
    narrow = LatentSliders(small, value_range=(-1e-3, 1e-3), x_start=images[1].reshape(28, 28))
    assert np.all(np.abs(narrow.values) <= 1e-3)
    with pytest.raises(ValueError, match="x has 10 pixels"):
        ls.set_from_image(np.zeros(10))


def test_non_square_images():
    model = _model(3, image_shape=(20, 36))
    ls = LatentSliders(model)
    assert ls.render(np.ones(3)).shape == (20, 36)
    assert _png_array(ls.image.value).shape == (20 * 5, 36 * 5)  # 168 / 36 -> factor 5
    it = Interpolator(model, np.zeros(720, np.float32), np.ones(720, np.float32), steps=3)
    assert it.strip().shape == (3, 20, 36)


# ---------------------------------------------------------------------------- LatentPad
def test_latent_pad_render_and_widget():
    ae, vae = _model(2, seed=1, deterministic=True), _model(2, seed=2)
    rng = np.random.default_rng(0)
    codes, labels = rng.normal(size=(500, 2)), rng.integers(0, 10, 500)
    pad = LatentPad({"AE": ae, "VAE": vae}, codes, labels, max_points=200)
    assert len(pad.codes) == 200 and len(pad.labels) == 200
    out = pad.render([0.5, -0.5])
    assert set(out) == {"AE", "VAE"}
    assert all(v.shape == (28, 28) and 0 <= v.min() and v.max() <= 1 for v in out.values())
    assert not np.allclose(out["AE"], out["VAE"])  # different decoders, side by side
    np.testing.assert_allclose(out["VAE"], decode_images(vae, np.array([0.5, -0.5])), atol=1e-6)
    before = {k: im.value for k, im in pad.images.items()}
    pad.sliders[0].value = pad.sliders[0].max  # keyboard route
    assert all(pad.images[k].value != before[k] for k in before)
    assert pad.values[0] == pytest.approx(pad.sliders[0].max)
    assert pad.images["AE"].value == pad.render_png(pad.values)["AE"]
    pad.set_z([0.1, 0.2])  # what a click on the scatter does
    np.testing.assert_allclose(pad.values, [0.1, 0.2], atol=1e-6)
    assert pad.sliders[1].value == pytest.approx(0.2, abs=1e-6)
    pad.set_z([1e3, -1e3])  # clipped to the pad
    np.testing.assert_allclose(pad.values, [pad.bounds[1][0], pad.bounds[0][1]], rtol=1e-6)


def test_latent_pad_click_and_drag_events():
    """Mouse events through the ipympl canvas's matplotlib callbacks (press, drag, release) move z."""
    from matplotlib.backend_bases import MouseEvent

    pad = LatentPad({"VAE": _model(2)}, np.random.default_rng(0).normal(size=(50, 2)), np.zeros(50))
    canvas = pad.canvas
    if canvas is None:
        pytest.skip("ipympl is not installed: the pad has no clickable canvas")
    ax = canvas.figure.axes[0]

    def fire(name, x, y):
        px, py = ax.transData.transform((x, y))
        canvas.callbacks.process(name, MouseEvent(name, canvas, px, py, button=1))

    before = pad.images["VAE"].value
    fire("button_press_event", 0.3, 0.4)
    np.testing.assert_allclose(pad.values, [0.3, 0.4], atol=1e-3)
    assert pad.images["VAE"].value != before
    fire("motion_notify_event", -0.2, 0.1)  # drag with the button held
    np.testing.assert_allclose(pad.values, [-0.2, 0.1], atol=1e-3)
    assert pad.sliders[0].value == pytest.approx(pad.values[0], abs=1e-6)
    fire("button_release_event", -0.2, 0.1)
    fire("motion_notify_event", 0.9, 0.9)  # not dragging any more: no change
    np.testing.assert_allclose(pad.values, [-0.2, 0.1], atol=1e-3)
    np.testing.assert_allclose(ax.lines[-1].get_xdata(), [pad.values[0]], atol=1e-6)  # the marker moved


def test_latent_pad_bad_inputs():
    two, four = _model(2), _model(4)
    codes, labels = np.zeros((5, 2)), np.zeros(5)
    with pytest.raises(ValueError, match="2-d latents"):
        LatentPad({"big": four}, codes, labels)
    with pytest.raises(ValueError, match=r"codes must have shape \[n, 2\]"):
        LatentPad({"a": two}, np.zeros((5, 3)), labels)
    with pytest.raises(ValueError, match="labels must have shape"):
        LatentPad({"a": two}, codes, np.zeros(4))
    with pytest.raises(ValueError, match="non-empty dict"):
        LatentPad({}, codes, labels)
    with pytest.raises(ValueError, match=r"models\['a'\] must be a vae_core VAE"):
        LatentPad({"a": "two"}, codes, labels)
    pad = LatentPad({"a": two}, codes, labels)
    with pytest.raises(ValueError, match=r"z must have shape \[2\]"):
        pad.render(np.zeros(3))


# ---------------------------------------------------------------------------- Interpolator
def test_interpolator(small, images):
    it = Interpolator(small, images[0], images[1], steps=5)
    means = np.asarray(encode(small, images[:2]).mean)
    np.testing.assert_allclose(it.code(0.0), means[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(it.code(1.0), means[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(it.code(0.25), 0.75 * means[0] + 0.25 * means[1], rtol=1e-5, atol=1e-6)
    img = it.render(0.5)
    assert img.shape == (28, 28) and 0 <= img.min() and img.max() <= 1
    strip = it.strip()
    assert strip.shape == (5, 28, 28)
    np.testing.assert_allclose(strip[2], img, atol=1e-6)
    assert it.slider.step == pytest.approx(0.25)
    before = it.image.value
    assert before == to_png(it.render(0.0))
    it.slider.value = 1.0
    assert it.image.value != before
    assert it.image.value == to_png(it.render(1.0))
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        it.render(1.5)
    with pytest.raises(ValueError, match="x_b has 783 pixels"):
        Interpolator(small, images[0], images[1][:783])
    with pytest.raises(ValueError, match="steps"):
        Interpolator(small, images[0], images[1], steps=1)


# ---------------------------------------------------------------------------- TraversalExplorer
def test_traversal_explorer(images):
    models = {"beta=1": _model(4, seed=3), "beta=4": _model(6, seed=4)}
    te = TraversalExplorer(models, x_ref=images[0])
    a = te.render("beta=1", 2, -2.0)
    b = te.render("beta=1", 2, 2.0)
    assert a.shape == (28, 28) and not np.allclose(a, b)
    assert te.traversal("beta=4", 5, 7).shape == (7, 28, 28)
    # the other dims sit at x_ref's posterior mean
    m = models["beta=4"]
    z = np.array(encode(m, images[:1]).mean[0])
    z[1] = 0.5
    np.testing.assert_allclose(te.render("beta=4", 1, 0.5), decode_images(m, z), atol=1e-6)
    zero = TraversalExplorer(models)  # no x_ref: others at 0
    np.testing.assert_allclose(zero.render("beta=1", 0, 0.0), decode_images(models["beta=1"], np.zeros(4)),
                               atol=1e-6)
    # widget: model switch adapts the dim slider; value slider changes the image
    assert te.dim_slider.max == 3
    te.dropdown.value = "beta=4"
    assert te.dim_slider.max == 5
    before = te.image.value
    te.value_slider.value = 3.0 if te.value_slider.value < 2.9 else -3.0
    assert te.image.value != before
    assert te.image.value == to_png(te.render("beta=4", te.dim_slider.value, te.value_slider.value))
    strip_before = te.strip_image.value
    te.dim_slider.value = 4
    assert te.strip_image.value != strip_before
    assert te.value_slider.value == pytest.approx(float(np.clip(te.base["beta=4"][4], -3, 3)), abs=1e-6)
    with pytest.raises(ValueError, match="unknown model"):
        te.render("beta=9", 0, 0.0)
    with pytest.raises(ValueError, match=r"dim must be an integer in \[0, 4\)"):
        te.render("beta=1", 4, 0.0)


def test_traversal_explorer_bad_inputs():
    with pytest.raises(ValueError, match="same image shape"):
        TraversalExplorer({"a": _model(2), "b": _model(2, image_shape=(20, 20))})
    with pytest.raises(ValueError, match="non-empty dict"):
        TraversalExplorer({})
    with pytest.raises(ValueError, match="x_ref has 5 pixels"):
        TraversalExplorer({"a": _model(2)}, x_ref=np.zeros(5))


# ---------------------------------------------------------------------------- static snapshots
def _count_renders(explorer, monkeypatch) -> list:
    """Wrap explorer.render so every call is recorded (functools.wraps keeps its signature)."""
    import functools

    calls, real = [], explorer.render

    @functools.wraps(real)
    def counted(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(explorer, "render", counted)
    return calls


def test_snapshots_draw_one_render_per_state(small, monkeypatch):
    ls = LatentSliders(small)
    calls = _count_renders(ls, monkeypatch)
    states = [np.zeros(4), np.array([2.0, 0, 0, 0]), np.array([0, -2.0, 1.0, 0.5])]
    fig = ls.snapshots(states, ncols=2)
    assert len(calls) == 3 and len(fig.axes) == 3  # the 4th cell of the 2x2 grid is removed
    for ax, z in zip(fig.axes, states):
        (im,) = ax.get_images()
        np.testing.assert_allclose(im.get_array(), ls.render(z), atol=1e-6)  # the render's pixels, unchanged
        assert im.get_cmap().name == "gray_r" and im.get_clim() == (0.0, 1.0)  # ink-dark on white
    assert [ax.get_title() for ax in fig.axes] == ["values = (0.00, 0.00, 0.00, ...)",
                                                   "values = (2.00, 0.00, 0.00, ...)",
                                                   "values = (0.00, -2.00, 1.00, ...)"]
    fig = ls.snapshots(states[:2], titles=["start", ""])
    assert [ax.get_title() for ax in fig.axes] == ["start", ""]
    assert LatentSliders(small, invert=False).snapshots([np.zeros(4)]).axes[0].get_images()[0].get_cmap().name == "gray"


def test_snapshots_of_a_dict_render_stack_its_panels(monkeypatch):
    ae, vae = _model(2, seed=1, deterministic=True), _model(2, seed=2)
    pad = LatentPad({"AE": ae, "VAE": vae}, np.random.default_rng(0).normal(size=(50, 2)), np.zeros(50))
    calls = _count_renders(pad, monkeypatch)
    zs = [np.array([-1.0, 0.0]), [0.0, 0.5], np.array([1.0, 0.0])]
    fig = pad.snapshots(zs, ncols=2)
    assert len(calls) == 3 and len(fig.axes) == 6  # 3 states x 2 models; 2 rows of states, one model a row
    ax = fig.axes
    # grid rows: AE, VAE (states 0 and 1), then AE, VAE (state 2)
    assert [a.get_ylabel() for a in ax] == ["AE", "", "VAE", "", "AE", "VAE"]
    assert [a.get_title() for a in ax] == ["z = (-1.00, 0.00)", "z = (0.00, 0.50)", "", "", "z = (1.00, 0.00)", ""]
    np.testing.assert_allclose(ax[3].get_images()[0].get_array(), pad.render(np.array([0.0, 0.5]))["VAE"], atol=1e-6)


def test_snapshots_unpack_tuples_take_row_labels_and_draw_into_a_subfigure(images):
    from matplotlib.figure import Figure

    it = Interpolator(_model(4), images[0], images[1])
    assert [a.get_title() for a in it.snapshots([0.0, 0.5]).axes] == ["t = 0.00", "t = 0.50"]
    te = TraversalExplorer({"a": _model(4, seed=3), "b": _model(3, seed=4)})
    parent = Figure()
    left, right = parent.subfigures(1, 2)
    states = [("a", 1, -2.0), ("a", 1, 2.0), ("b", 0, -2.0), ("b", 0, 2.0)]
    out = te.snapshots(states, ncols=2, row_labels=["a z1", "b z0"], figure=right)
    assert out is right and len(right.axes) == 4 and len(parent.axes) == 4
    assert [a.get_ylabel() for a in right.axes] == ["a z1", "", "b z0", ""]
    assert right.axes[0].get_title() == "name = a, dim = 1, value = -2.00"
    np.testing.assert_allclose(right.axes[3].get_images()[0].get_array(), te.render("b", 0, 2.0), atol=1e-6)


class _Curve(Explorer):
    """An explorer that redraws its own 2 x 1 inch figure: a line of slope a."""

    def __init__(self):
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(2.0, 1.0))
        self.ax = self.figure.subplots()

    def render(self, a):
        self.ax.clear()
        self.ax.plot([0, 1], [0, a])
        return {"slope": float(a)}

    def _snapshot_title(self, args, result):
        return f"slope {result['slope']:.1f}"


def test_snapshots_rasterise_an_explorer_that_draws_a_figure():
    fig = _Curve().snapshots([1.0, -1.0, 0.5], ncols=3)
    assert len(fig.axes) == 3 and [a.get_title() for a in fig.axes] == ["slope 1.0", "slope -1.0", "slope 0.5"]
    raster = fig.axes[0].get_images()[0].get_array()
    assert raster.shape == (100, 200, 4) and raster.dtype == np.uint8  # 2 x 1 inches at 100 dpi, RGBA
    assert not np.array_equal(raster, fig.axes[1].get_images()[0].get_array())  # each state redrawn

    class Nothing(Explorer):
        def render(self, a):
            return None

    with pytest.raises(TypeError, match="needs an image"):
        Nothing().snapshots([0])


def test_snapshots_bad_inputs(small):
    ls = LatentSliders(small)
    z = [np.zeros(4), np.ones(4)]
    with pytest.raises(ValueError, match="at least one state"):
        ls.snapshots([])
    with pytest.raises(ValueError, match="one title per state: 2 states, 1 titles"):
        ls.snapshots(z, titles=["only one"])
    with pytest.raises(ValueError, match="ncols must be >= 1"):
        ls.snapshots(z, ncols=0)
    with pytest.raises(ValueError, match="panel_inches must be a positive width"):
        ls.snapshots(z, panel_inches=0)
    with pytest.raises(ValueError, match="one label per row of panels: 1 rows"):
        ls.snapshots(z, row_labels=["a", "b"])
    with pytest.raises(ValueError, match="expected 4 latent values"):  # render's own check
        ls.snapshots([np.zeros(3)])

    class Mixed(Explorer):
        def render(self, i):
            return {f"m{i}": np.zeros((2, 2))}

    with pytest.raises(ValueError, match="every state must render the same panels"):
        Mixed().snapshots([0, 1])


def test_snapshots_match_holds_for_the_grid_drawn_and_fails_for_any_other(small, images):
    ls = LatentSliders(small)
    states = [np.zeros(4), np.array([2.0, 0, 0, 0]), np.array([0, -2.0, 1.0, 0.5])]
    fig = ls.snapshots(states, ncols=2)
    assert ls.snapshots_match(fig, states)
    assert not ls.snapshots_match(fig, states[::-1])          # another order
    assert not ls.snapshots_match(fig, states[:2])            # a panel no state accounts for
    assert not ls.snapshots_match(fig, states + [np.ones(4)])  # a state with no panel
    fig.axes[0].imshow(np.ones((28, 28)))  # a second image drawn over a panel
    assert not ls.snapshots_match(fig, states)
    fig = ls.snapshots(states, ncols=2)
    fig.axes[2].get_images()[0].set_cmap("viridis")  # the same data in other colours
    assert not ls.snapshots_match(fig, states)
    fig = ls.snapshots(states, ncols=2)
    fig.axes[1].get_images()[0].set_data(np.zeros((28, 28)))  # a panel's image replaced afterwards
    assert not ls.snapshots_match(fig, states)
    # a dict render drawn into a SubFigure, two panels per state
    from matplotlib.figure import Figure

    pad = LatentPad({"AE": _model(2, seed=1, deterministic=True), "VAE": _model(2, seed=2)},
                    np.random.default_rng(0).normal(size=(50, 2)), np.zeros(50))
    left, right = Figure().subfigures(1, 2)
    zs = [np.array([-1.0, 0.0]), np.array([0.0, 0.5]), np.array([1.0, 0.0])]
    pad.snapshots(zs, ncols=2, figure=right)
    assert pad.snapshots_match(right, zs) and not pad.snapshots_match(right, [zs[0], zs[2], zs[1]])
    pad.snapshots(zs, ncols=2, figure=left)  # two grids in one parent figure: ask about each grid
    assert pad.snapshots_match(left, zs) and not pad.snapshots_match(left.figure, zs)


def test_snapshots_match_a_rasterised_figure_and_a_render_that_keeps_state():
    class Drifting(Explorer):
        """A render whose picture depends on how often it was called: its snapshots go stale."""

        def __init__(self):
            self.calls = 0

        def render(self, a):
            self.calls += 1
            return np.full((4, 4), min(self.calls, 2) / 2, dtype=np.float32)  # 0.5, then 1.0 ever after

    ex = Drifting()
    fig = ex.snapshots([0.0, 1.0])
    assert not ex.snapshots_match(fig, [0.0, 1.0])

    c = _Curve()
    fig = c.snapshots([1.0, -1.0], ncols=1)
    assert c.snapshots_match(fig, [1.0, -1.0]) and not c.snapshots_match(fig, [1.0, 0.5])


# ---------------------------------------------------------------------------- conditional sliders
def test_conditional_sliders_draw_one_style_as_every_label():
    from vae_core.conditional import ConditionalConfig, build_conditional
    from vae_core.widgets import ConditionalSliders

    cvae = build_conditional(ConditionalConfig(target_dim=16, cond_dim=3, latent_dim=2, hidden=(8,)), 0)
    cs = ConditionalSliders(cvae, image_shape=(4, 4), labels=["a", "b", "c"])
    z = np.array([0.5, -1.0], np.float32)
    img = cs.render(1, z)
    assert img.shape == (4, 4) and 0 <= img.min() and img.max() <= 1
    every = cs.render_all(z)
    assert every.shape == (3, 4, 4)
    for k in range(3):
        np.testing.assert_allclose(every[k], cs.render(k, z), atol=1e-6)
    assert not np.allclose(every[0], every[2])  # the label reaches the decoder
    # the widget: the label buttons and the sliders redraw the image; set_state moves both
    w = cs.widget
    assert w is cs.widget and len(cs.sliders) == 2 and cs.buttons.options == (("a", 0), ("b", 1), ("c", 2))
    before = cs.image.value
    cs.buttons.value = 2
    assert cs.label == 2 and cs.image.value != before and cs.image.value == to_png(cs.render(2, np.zeros(2)))
    before = cs.image.value
    cs.sliders[1].value = -1.0
    np.testing.assert_allclose(cs.values, [0.0, -1.0])
    assert cs.image.value != before and cs.image.value == to_png(cs.render(2, [0.0, -1.0]))
    cs.set_state(0, [9.0, 0.25])  # clipped to the slider range
    assert cs.buttons.value == 0 and cs.sliders[0].value == 3.0 and cs.image.value == to_png(cs.render(0, [3.0, 0.25]))
    x = (np.arange(16) % 2).astype(np.float32)
    style = cs.set_from_image(x, 1)
    expected = np.clip(cvae.encode(x[None], np.eye(3, dtype=np.float32)[[1]]).mean[0], -3, 3)
    np.testing.assert_allclose(style, expected, atol=1e-6)
    assert cs.label == 1 and cs.buttons.value == 1 and cs.sliders[0].value == pytest.approx(float(expected[0]))
    assert cs.image.value == to_png(cs.render(1, expected))
    started = ConditionalSliders(cvae, image_shape=(4, 4), x_start=x, y_start=2, max_sliders=1)
    assert started.label == 2 and len(started.sliders) == 1
    np.testing.assert_allclose(started.values, np.clip(cvae.encode(x[None], np.eye(3, dtype=np.float32)[[2]]).mean[0],
                                                       -3, 3), atol=1e-6)
    with pytest.raises(ValueError, match="x_start and y_start go together"):
        ConditionalSliders(cvae, image_shape=(4, 4), x_start=x)
    # the static view: one panel per (label, code), titled by the label
    states = [(k, z) for k in range(3)]
    fig = cs.snapshots(states)
    assert [a.get_title() for a in fig.axes] == ["a", "b", "c"] and cs.snapshots_match(fig, states)
    with pytest.raises(ValueError, match="label must be in 0..2"):
        cs.render(3, z)
    with pytest.raises(ValueError, match="expected 2 finite latent values"):
        cs.render(0, [1.0])
    with pytest.raises(ValueError, match="has 9 pixels"):
        ConditionalSliders(cvae, image_shape=(3, 3))
    with pytest.raises(ValueError, match="must name the model's 3"):
        ConditionalSliders(cvae, image_shape=(4, 4), labels=["a"])
    with pytest.raises(ValueError, match="must be a vae_core.conditional.ConditionalVAE"):
        ConditionalSliders(_model(2), image_shape=(28, 28))
