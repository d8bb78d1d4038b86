"""Which t-SNE to use: openTSNE (FFT, Barnes-Hut) vs scikit-learn (Barnes-Hut) on the same points.

    flock /tmp/vae_cpu.lock env VAE_DATA_DIR=/path/to/data \
        .venv/bin/python benchmarks/tsne_speed.py [--n 10000] [--dims 20] [--out FILE]

Input: the first N MNIST test images, projected onto their first DIMS principal
components (PCA fitted on the 60k training images) -- the same size as the course's
20-d latent codes. Every method runs 250 early-exaggeration + 500 normal iterations with
perplexity 30, PCA initialisation and seed 0, with 2 threads. Each map is judged by
10-NN accuracy (5-fold CV) in 2-d and trustworthiness (10 neighbours), so a faster
method is only preferred if its map is as good. Goal: 10,000 points in <= 20 s on a
2-core CPU. Run it alone on the machine (hence flock): timings of shared cores mean little.
Prints the machine, the command, the date and one table; --out also writes them to a file.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402,F401  (puts the repository root on sys.path, for course/)
from course import nb06_embedding as embedding  # noqa: E402
from vae_core.data import load_mnist  # noqa: E402
from vae_core.metrics import knn_accuracy, trustworthiness  # noqa: E402
from vae_core.plots import format_table  # noqa: E402

CONFIGS = [  # (label, method, extra keyword arguments)
    ("openTSNE FFT, ints_in_interval=1 (default)", "opentsne-fft", {"ints_in_interval": 1}),
    ("openTSNE FFT, ints_in_interval=2", "opentsne-fft", {"ints_in_interval": 2}),
    ("openTSNE Barnes-Hut", "opentsne-bh", {}),
    ("scikit-learn Barnes-Hut", "sklearn-bh", {}),
]


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import openTSNE
    import sklearn

    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"machine:  {platform.node()}: {cpu}, {os.cpu_count()} CPUs visible, load average at the end {load}\n"
            f"software: python {platform.python_version()}, openTSNE {openTSNE.__version__}, "
            f"scikit-learn {sklearn.__version__}, numpy {np.__version__}")


LOCK = Path("/tmp/vae_cpu.lock")


def lock_held() -> bool:
    """True if someone (normally the flock wrapping this script) holds the shared CPU lock."""
    import fcntl

    if not LOCK.exists():
        return False
    with open(LOCK) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def trust_timing(x, coords) -> str:
    """vae_core's trustworthiness against scikit-learn's on the same map: seconds and values."""
    import time

    from sklearn.manifold import trustworthiness as sklearn_trustworthiness

    t0 = time.perf_counter()
    ours = trustworthiness(x, coords)
    t1 = time.perf_counter()
    theirs = sklearn_trustworthiness(np.asarray(x, np.float64), np.asarray(coords, np.float64), n_neighbors=10)
    t2 = time.perf_counter()
    return (f"trustworthiness of the last map ({len(x)} points, 10 neighbours): vae_core.metrics {t1 - t0:.2f} s, "
            f"scikit-learn {t2 - t1:.2f} s ({(t2 - t1) / (t1 - t0):.1f}x); values {ours:.6f} and {theirs:.6f}")


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="points (first N test images)")
    ap.add_argument("--dims", type=int, default=20, help="PCA dimensions fed to t-SNE")
    ap.add_argument("--out", type=Path, help="also write the report to this file")
    ap.add_argument("--skip", nargs="*", default=[], choices=[m for _, m, _ in CONFIGS],
                    help="methods to leave out")
    args = ap.parse_args(argv)

    held = lock_held()
    started = dt.datetime.now(dt.timezone.utc)
    load_before = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    mnist = load_mnist()
    x = embedding.pca(mnist.x_train, mnist.x_test[: args.n], args.dims)
    y = np.asarray(mnist.y_test[: args.n])
    rows = []
    for label, method, kwargs in CONFIGS:
        if method in args.skip:
            continue
        m = embedding.tsne(x, method=method, **kwargs)
        rows.append({"method": label, "n": len(x), "tsne_s": m.seconds, "cpu_s": m.cpu_seconds,
                     "knn_map": knn_accuracy(m.coords, y),
                     "trust": trustworthiness(x, m.coords)})
        print(f"  {label}: {m.seconds:.1f} s wall, {m.cpu_seconds:.1f} s CPU", flush=True)
    knn_input = knn_accuracy(x, y)
    trust_line = trust_timing(x, m.coords)
    report = "\n".join([
        "t-SNE speed benchmark (benchmarks/tsne_speed.py)",
        f"date:     {started:%Y-%m-%d %H:%M} to {dt.datetime.now(dt.timezone.utc):%H:%M UTC}; "
        f"load average at the start {load_before}",
        f"command:  {' '.join(shlex.quote(a) for a in [sys.executable, *sys.argv])}",
        f"lock:     {LOCK} {'held (normally by the flock that wraps this run)' if held else 'NOT held: other jobs may have shared the cores'}",
        machine(),
        f"input:    first {len(x)} MNIST test images, PCA to {args.dims} dims (fit on 60k train); "
        f"10-NN accuracy in those {args.dims} dims: {knn_input:.3f}",
        "settings: perplexity 30, 250 early-exaggeration + 500 iterations, PCA init, seed 0, 2 threads",
        "",
        format_table(rows, embedding.table_columns(["method", "n", "tsne_s", "cpu_s", "knn_map", "trust"]),
                     markdown=True),
        "",
        trust_line,
    ])
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n")
    return report


if __name__ == "__main__":
    main()
