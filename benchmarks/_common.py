"""Shared helpers of the benchmark scripts: a header that says where and how a number
was measured, load averages, a tee of stdout into benchmarks/results/<name>.txt, and the
test set every MNIST benchmark scores (binarized once, with the shipped models' seed).

Every timing in benchmarks/ is meant to run alone on the machine (on a shared machine:
inside ``flock /tmp/vae_cpu.lock``); the 1-minute load average printed before and after
each measurement lets a reader judge how much else was running.

Set ``VAE_BENCH_RESULTS=/some/folder`` to write the results (and the IWAE run's state)
there instead, e.g. for a quick check that must not overwrite the recorded numbers.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import sys
from pathlib import Path

RESULTS = Path(os.environ.get("VAE_BENCH_RESULTS", Path(__file__).resolve().parent / "results"))
ROOT = Path(__file__).resolve().parent.parent
# Import vae_core from this checkout (a regular package), whatever an editable install says.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return " ".join(f for f in flags if f.startswith("avx512f") or f in ("avx2", "fma"))
    except OSError:
        pass
    return ""


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average (1/5/15 min) {one:.2f} / {five:.2f} / {fifteen:.2f}"


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, s):
        for st in self.streams:
            st.write(s)
            st.flush()
        return len(s)

    def flush(self):
        for st in self.streams:
            st.flush()

    def isatty(self):
        return False


def binarized_test_set(x_test):
    """The MNIST test images x_test: [n, 784] binarized once with the seed every metric of
    the course uses (``vae_core.shipped.TEST_BINARIZATION_SEED``), as a device array."""
    import jax
    import jax.numpy as jnp

    from vae_core.data import binarize
    from vae_core.shipped import TEST_BINARIZATION_SEED

    return binarize(jax.random.PRNGKey(TEST_BINARIZATION_SEED), jnp.asarray(x_test))


def start(name: str, append: bool = False) -> None:
    """Tee stdout to benchmarks/results/<name>.txt and print the machine header."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    f = open(RESULTS / f"{name}.txt", "a" if append else "w")
    sys.stdout = _Tee(sys.__stdout__, f)
    import jax

    print("=" * 78)
    print(f"benchmark: {name}")
    print(f"date:      {now()}")
    print(f"command:   {shlex.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine:   nproc={os.cpu_count()} (sched_getaffinity {len(os.sched_getaffinity(0))}), "
          f"CPU '{cpu_model()}' [{cpu_flags()}], {platform.machine()}")
    print(f"python {platform.python_version()}, jax {jax.__version__}, jaxlib "
          f"{__import__('jaxlib').__version__}, devices {jax.devices()}")
    try:
        import flax
        import optax
        print(f"flax {flax.__version__}, optax {optax.__version__}")
    except ImportError:
        pass
    lock = os.environ.get("VAE_BENCH_LOCK_NOTE")
    if lock:
        print(f"conditions: {lock}")
    print(load())
    print("-" * 78)
