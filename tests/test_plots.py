import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from vae_core import plots  # noqa: E402


def test_tile_images_layout():
    canvas = plots.tile_images(np.ones((5, 784)), ncols=3)
    assert canvas.shape == (2 * 29 - 1, 3 * 29 - 1)
    assert canvas[28, :].max() == 0 and canvas[:, 28].max() == 0  # gaps are background
    assert canvas[:28, :28].min() == 1 and canvas[29:, 58:].max() == 0  # the missing 6th tile is empty
    grey = plots.tile_images(np.zeros((4, 16)), ncols=2, image_shape=(4, 4), pad=2, gap_value=0.3)
    assert grey.shape == (10, 10) and np.all(grey[4:6, :] == np.float32(0.3)) and grey[:4, :4].max() == 0


def test_figures_have_labels_and_save(tmp_path, monkeypatch):
    fig = plots.image_grid(np.random.rand(6, 784), ncols=3, title="digits")
    assert fig.axes[0].get_title() == "digits"
    fig = plots.image_grid(np.random.rand(4, 784), ncols=2, titles=list("abcd"))
    assert [a.get_title() for a in fig.axes] == list("abcd")
    hist = {"test_elbo": [-120, -110], "test_rec": [-100, -90], "test_kl": [20, 20]}
    fig = plots.plot_history(hist)
    assert fig.axes[0].get_xlabel() == "epoch" and "ELBO" in fig.axes[0].get_ylabel()
    fig = plots.scatter_latents(np.random.randn(50, 2), np.arange(50) % 10, title="codes")
    assert fig.axes[0].get_xlabel() == "$z_1$"
    path = plots.save_figure(fig, "x", directory=tmp_path)
    assert path.exists() and path.stat().st_size > 1000


def test_smoke_mode_never_overwrites_committed_figures(monkeypatch):
    monkeypatch.setenv("VAE_SMOKE", "1")
    fig = plots.image_grid(np.random.rand(4, 784))
    path = plots.save_figure(fig, "test_smoke_only")
    assert plots.FIGURES_DIR not in path.parents and path.exists()


def test_format_table_aligns_plain_columns():
    rows = [{"L": 2, "elbo": -140.123}, {"L": 50, "elbo": -99.5}]
    text = plots.format_table(rows, [("L", "latent", "d"), ("elbo", "ELBO", ".1f")])
    lines = text.splitlines()
    assert lines[0] == "latent    ELBO"
    assert lines[1] == "------  ------"
    assert lines[2] == "     2  -140.1"
    assert lines[3] == "    50   -99.5"
    assert len({len(line) for line in lines}) == 1
    # text columns align left, numbers right
    text = plots.format_table([{"run": "a", "x": 1.0}, {"run": "bbb", "x": 10.0}],
                              [("run", "run", ""), ("x", "x", ".1f")])
    assert text.splitlines()[2:] == ["a     1.0", "bbb  10.0"]


def test_format_table_markdown_callables_and_missing_values():
    rows = [{"name": "a", "v": 0.5, "n": 3}, {"name": "b", "v": None}]
    columns = [("name", "model", ""), ("v", "value", lambda v: f"{100 * v:.0f} %"), ("n", "count", "d")]
    assert plots.format_table(rows, columns, markdown=True).splitlines() == [
        "| model | value | count |", "|---|---|---|", "| a | 50 % | 3 |", "| b | - | - |"]
    assert plots.format_table(rows, columns).splitlines()[3].split() == ["b", "-", "-"]
    with pytest.raises(ValueError, match="at least one row"):
        plots.format_table([], columns)
