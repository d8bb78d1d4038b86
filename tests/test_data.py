"""MNIST loading: shapes, values, labels, checksums, and clear failures."""
import gzip
import http.server
import os
import socket
import threading
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from vae_core import data
from vae_core.data import ChecksumError, MNISTNotFoundError, binarize, corrupt, flip_noise, load_mnist, mask_patches

LOCAL = os.environ.get("VAE_DATA_DIR")
needs_local = pytest.mark.skipif(not LOCAL, reason="set VAE_DATA_DIR to the folder holding mnist.npz")


@pytest.fixture(scope="module")
def mnist():
    if not LOCAL:
        pytest.skip("set VAE_DATA_DIR to the folder holding mnist.npz")
    return load_mnist()


@pytest.fixture(scope="module")
def raw():
    if not LOCAL:
        pytest.skip("set VAE_DATA_DIR to the folder holding mnist.npz")
    with np.load(Path(LOCAL) / "mnist.npz") as f:
        return {k: f[k] for k in f.files}


def test_shapes_dtypes_and_range(mnist):
    assert mnist.x_train.shape == (60000, 784) and mnist.x_test.shape == (10000, 784)
    assert mnist.x_train.dtype == np.float32 and mnist.y_train.dtype == np.int32
    assert mnist.x_train.min() == 0.0 and mnist.x_train.max() == 1.0
    assert abs(float(mnist.x_train.mean()) - 0.1307) < 1e-3
    assert abs(float(mnist.x_train.std()) - 0.3081) < 1e-3


def test_labels_and_class_counts(mnist):
    assert np.bincount(mnist.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(mnist.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_explicit_path_wins_over_environment(monkeypatch, raw, tmp_path):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / "nowhere"))
    m = load_mnist(Path(LOCAL) / "mnist.npz")
    assert m.x_test.shape == (10000, 784)
    m = load_mnist(LOCAL)  # a folder works too
    assert "mnist.npz" in m.source
    assert "source='mnist.npz (local copy)')" in repr(m) and str(Path(LOCAL)) not in repr(m)  # no machine paths


def test_checksum_mismatch_names_the_array(raw, tmp_path):
    bad = dict(raw)
    bad["x_test"] = raw["x_test"].copy()
    bad["x_test"][0, 14, 14] ^= 1
    np.savez(tmp_path / "mnist.npz", **bad)
    with pytest.raises(ChecksumError, match="x_test.*checksum"):
        load_mnist(tmp_path)


def test_wrong_shape_and_corrupt_file_are_named(raw, tmp_path):
    bad = dict(raw)
    bad["y_train"] = raw["y_train"][:100]
    np.savez(tmp_path / "mnist.npz", **bad)
    with pytest.raises(ChecksumError, match="y_train.*shape"):
        load_mnist(tmp_path)
    (tmp_path / "mnist.npz").write_bytes(b"not a zip archive")
    with pytest.raises(ChecksumError, match="corrupt"):
        load_mnist(tmp_path)


def test_missing_file_says_how_to_fix(tmp_path, monkeypatch):
    with pytest.raises(MNISTNotFoundError, match="VAE_DATA_DIR"):
        load_mnist(tmp_path / "missing.npz")
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(MNISTNotFoundError, match="no mnist.npz there"):
        load_mnist()


def test_no_network_no_copy_fails_within_10s(tmp_path, monkeypatch):
    """The real default route on this machine: no local copy, download host unreachable.

    On a machine with internet access the same call downloads instead; then the data
    must be right.
    """
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    start = time.perf_counter()
    try:
        m = load_mnist()
    except MNISTNotFoundError as err:
        assert time.perf_counter() - start < 10
        assert "VAE_DATA_DIR" in str(err) and "How to fix" in str(err)
    else:  # networked machine: a real download happened
        assert m.x_train.shape == (60000, 784)


def test_hanging_network_is_abandoned_within_10s(tmp_path, monkeypatch):
    """A host that never answers (DNS or TCP hang) must not stall the loader."""
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    def hang(*args, **kwargs):
        time.sleep(15)  # far past the loader's patience; then fail like a timed-out socket
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.perf_counter()
    with pytest.raises(MNISTNotFoundError, match="cannot be reached"):
        load_mnist()
    assert time.perf_counter() - start < 10


def _write_idx(path: Path, array: np.ndarray):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def mnist_host(raw, tmp_path):
    """A local HTTP server standing in for the MNIST host: serves the four gzipped IDX files."""
    served = tmp_path / "served"
    served.mkdir()
    for key, name in data.IDX_FILES.items():
        _write_idx(served / name, raw[key])
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


def test_download_route_through_tfds_manager(mnist_host, tmp_path, monkeypatch):
    """tensorflow-datasets' download manager fetches the IDX files; the parsed arrays pass
    the checksums, load_mnist caches them in the TFDS folder, and the next load_mnist reads
    that cached copy without downloading."""
    arrays = data.download_mnist(tmp_path / "direct", base_url=mnist_host)
    data.check_arrays(arrays)  # raises on any mismatch
    assert list((tmp_path / "direct" / "downloads").iterdir())  # the manager kept its files there

    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    real_download = data.download_mnist
    calls = []

    def download_from_local_host(dest_dir, base_url=None):
        calls.append(dest_dir)
        return real_download(dest_dir, base_url=mnist_host)

    monkeypatch.setattr(data, "download_mnist", download_from_local_host)
    first = load_mnist()
    assert len(calls) == 1 and first.source.startswith("tensorflow-datasets download, cached at")
    assert first.short_source() == "tensorflow-datasets download (cached)" and str(tmp_path) not in repr(first)
    cached = tmp_path / "tfds" / "vae_core" / "mnist.npz"
    assert cached.exists() and str(cached) in first.source
    assert [p.name for p in cached.parent.iterdir() if p.suffix == ".tmp"] == []  # written atomically
    second = load_mnist()
    assert len(calls) == 1, "the cached copy should have been read"
    assert second.source == str(cached) and second.source.endswith("vae_core/mnist.npz")
    assert np.array_equal(second.x_test, first.x_test) and second.y_test.shape == (10000,)
    cached.write_bytes(b"half a file")  # a damaged cache is named, not silently used
    with pytest.raises(ChecksumError, match="corrupt"):
        load_mnist()


def test_unreachable_host_fails_fast_and_says_how_to_fix(tmp_path):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there
    start = time.perf_counter()
    with pytest.raises(MNISTNotFoundError, match=f"(?s)127.0.0.1:{port} cannot be reached.*How to fix"):
        data.download_mnist(tmp_path, base_url=f"http://127.0.0.1:{port}/")
    assert time.perf_counter() - start < 10
    assert not (tmp_path / "downloads").exists()  # nothing was started


def test_read_idx_rejects_truncated_files(tmp_path):
    _write_idx(tmp_path / "a.gz", np.zeros((3, 4, 4), np.uint8))
    assert data.read_idx(tmp_path / "a.gz").shape == (3, 4, 4)
    raw_bytes = gzip.decompress((tmp_path / "a.gz").read_bytes())[:-5]
    (tmp_path / "b").write_bytes(raw_bytes)
    with pytest.raises(ChecksumError, match="truncated"):
        data.read_idx(tmp_path / "b")


def test_binarize_is_bernoulli_and_seeded():
    x = np.linspace(0, 1, 784 * 64, dtype=np.float32).reshape(64, 784)
    a = binarize(jax.random.PRNGKey(0), x)
    b = binarize(jax.random.PRNGKey(0), x)
    c = binarize(jax.random.PRNGKey(1), x)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert set(np.unique(np.asarray(a)).tolist()) <= {0.0, 1.0}
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert abs(float(a.mean()) - float(x.mean())) < 0.01  # E[x_bin] = x
    assert float(binarize(jax.random.PRNGKey(2), np.zeros((2, 784), np.float32)).sum()) == 0.0
    assert float(binarize(jax.random.PRNGKey(2), np.ones((2, 784), np.float32)).mean()) == 1.0


def test_cli_copy_is_not_modified(raw):
    """The loader never writes into the data folder it is pointed at."""
    before = {p.name: p.stat().st_mtime for p in Path(LOCAL).iterdir()}
    load_mnist()
    after = {p.name: p.stat().st_mtime for p in Path(LOCAL).iterdir()}
    assert before == after




# ----------------------------------------------------------------------------- corruptions
def test_flip_noise_flips_about_p_of_pixels():
    binary_images = (np.random.default_rng(0).random((6, 784)) < 0.3).astype(np.float32)
    noisy = flip_noise(jax.random.PRNGKey(0), np.tile(binary_images, (20, 1)), 0.1)
    frac = np.mean(noisy != np.tile(binary_images, (20, 1)))
    assert 0.09 < frac < 0.11
    assert set(np.unique(noisy)) <= {0.0, 1.0}
    np.testing.assert_array_equal(flip_noise(jax.random.PRNGKey(0), binary_images, 0.0), binary_images)
    np.testing.assert_array_equal(flip_noise(jax.random.PRNGKey(0), binary_images, 1.0), 1 - binary_images)
    with pytest.raises(ValueError):
        flip_noise(jax.random.PRNGKey(0), binary_images, 1.5)


def test_mask_patches_blanks_one_square_inside_margin():
    x = np.ones((50, 784), np.float32)
    masked, mask = mask_patches(jax.random.PRNGKey(3), x, 8, margin=4)
    assert masked.shape == mask.shape == (50, 784)
    assert np.all(mask.sum(1) == 64)
    np.testing.assert_array_equal(masked, 1 - mask)
    m = mask.reshape(50, 28, 28)
    assert np.all(m[:, :4] == 0) and np.all(m[:, -4:] == 0) and np.all(m[:, :, :4] == 0) and np.all(m[:, :, -4:] == 0)
    rows = m.any(2).argmax(1)
    assert len(np.unique(rows)) > 1  # places differ between images
    with pytest.raises(ValueError, match="does not fit"):
        mask_patches(jax.random.PRNGKey(0), x, 25)



def test_corrupt_dispatches_and_runs_under_jit():
    x = (np.random.default_rng(1).random((4, 784)) < 0.3).astype(np.float32)
    key = jax.random.PRNGKey(5)
    np.testing.assert_array_equal(corrupt(key, x, "flip", 0.2), flip_noise(key, x, 0.2))
    np.testing.assert_array_equal(jax.jit(lambda k, a: corrupt(k, a, "mask", 6))(key, x), mask_patches(key, x, 6)[0])
    with pytest.raises(ValueError, match="corruption must be one of"):
        corrupt(key, x, "blur", 1.0)
