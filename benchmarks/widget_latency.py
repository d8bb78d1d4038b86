"""Latency of the latent-slider explorer: slider value change -> new image bytes.

What is timed: in the kernel process, ``slider.value = v`` is set programmatically (as
the frontend's comm message would set it) and the clock stops when the explorer's
``ipywidgets.Image`` has new PNG bytes (an observer on its ``value`` trait records the
moment). That span holds the whole kernel-side update: the traitlets callback, the
jitted decoder call (the explorer's ``vae_core.evaluate.decoder_function``: the model is
split once, when the explorer is made), the [1, 784] -> [28, 28] copy, the upscale to
168x168 and the PNG encode. Not included: the websocket hop to the browser and the browser's repaint (the
browser test, tests/test_browser.py, checks the full path end to end).

The model is an UNTRAINED 784-400-20 MLP VAE (``build_model``, Flax NNX): decoding cost
depends on the architecture only, not on the parameter values, so training would not
change the timings. For comparison the report also times ``decode_mean(model, z)``,
which splits the model (``nnx.split``) on every call.

Run it (one timing job at a time on the shared machine):

    flock /tmp/vae_cpu.lock .venv/bin/python benchmarks/widget_latency.py

It prints the report and writes it to benchmarks/results/widget_latency.txt.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

from _common import cpu_model, load  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from vae_core.evaluate import decode_mean, decoder_function  # noqa: E402
from vae_core.models import ModelConfig, build_model  # noqa: E402
from vae_core.widgets import LatentSliders, to_png  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "widget_latency.txt"


def percentiles(ms: np.ndarray) -> str:
    return (f"p50 {np.percentile(ms, 50):7.3f} ms   p95 {np.percentile(ms, 95):7.3f} ms   "
            f"max {ms.max():7.3f} ms   mean {ms.mean():7.3f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--changes", type=int, default=500, help="timed slider changes (>= 200)")
    ap.add_argument("--warmup", type=int, default=20, help="untimed changes first")
    ap.add_argument("--out", type=Path, default=RESULTS, help="report file ('-' for stdout only)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.changes < 200:
        ap.error("--changes must be >= 200")

    cfg = ModelConfig(latent_dim=20, hidden=(400,))
    key = jax.random.key(args.seed)
    k_init, k_vals = jax.random.split(key)
    load_before = load()
    model = build_model(cfg, k_init)
    explorer = LatentSliders(model)  # splits the model once and compiles the decoder
    sliders = explorer.sliders  # builds the widget (first image rendered)
    image = explorer.image

    stamp = {}
    image.observe(lambda change: stamp.__setitem__("t", time.perf_counter()), names="value")

    n = args.warmup + args.changes
    dims = np.arange(n) % cfg.latent_dim
    values = np.round(np.asarray(jax.random.uniform(k_vals, (n,), minval=-3, maxval=3)), 2)
    lat, unchanged = [], 0
    for i in range(n):
        s = sliders[int(dims[i])]
        v = float(values[i])
        if abs(s.value - v) < 1e-6:
            v = -v if v else 1.0
        before = image.value
        stamp.clear()
        t0 = time.perf_counter()
        s.value = v  # the observer chain runs synchronously, as when a comm message arrives
        t1 = stamp.get("t")
        if t1 is None or image.value == before:
            unchanged += 1
            continue
        if i >= args.warmup:
            lat.append((t1 - t0) * 1e3)
    lat = np.asarray(lat)

    # Breakdown of one update: decoder call alone (split once, as the explorer does) and
    # PNG encode alone; and, for comparison, decode_mean, which splits on every call.
    decode = decoder_function(model)
    z = np.zeros((1, cfg.latent_dim), np.float32)
    np.asarray(decode_mean(model, z))  # compiled already; one untimed call anyway
    dec, png, dec_split = [], [], []
    for _ in range(args.changes):
        t0 = time.perf_counter()
        img = np.asarray(decode(z)).reshape(28, 28)
        t1 = time.perf_counter()
        to_png(img)
        t2 = time.perf_counter()
        np.asarray(decode_mean(model, z))
        t3 = time.perf_counter()
        dec.append((t1 - t0) * 1e3)
        png.append((t2 - t1) * 1e3)
        dec_split.append((t3 - t2) * 1e3)
    load_after = load()

    cmd = " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        nproc = str(os.cpu_count())
    lines = [
        "widget latency: LatentSliders slider value change -> new PNG bytes in the ipywidgets.Image",
        f"date:     {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC",
        f"command:  {cmd}  (run under flock /tmp/vae_cpu.lock)",
        f"machine:  nproc={nproc}, cpu: {cpu_model()}, {platform.system()} {platform.machine()}",
        f"software: python {platform.python_version()}, jax {jax.__version__} "
        f"({jax.default_backend()}), {len(jax.devices())} device(s)",
        "model:    untrained 784-400-20 MLP VAE (Flax NNX), Bernoulli decoder (decode cost does not "
        "depend on training)",
        f"before:   {load_before}",
        f"after:    {load_after}",
        f"image:    28x28 -> 168x168 greyscale PNG (nearest-neighbour x6)",
        f"changes:  {len(lat)} timed (+{args.warmup} warm-up), cycling over the 20 sliders, "
        f"values uniform in [-3, 3]; changes that left the image unchanged: {unchanged}",
        "",
        f"slider change -> new image bytes: {percentiles(lat)}",
        f"  of which decoder call:          {percentiles(np.asarray(dec))}",
        f"  of which PNG encode:            {percentiles(np.asarray(png))}",
        f"for comparison, decode_mean (split per call): {percentiles(np.asarray(dec_split))}",
        "",
        f"goal p95 <= 50 ms: {'met' if np.percentile(lat, 95) <= 50 else 'NOT met'}",
        "scope: kernel side only (no websocket hop / browser paint; see tests/test_browser.py).",
    ]
    report = "\n".join(lines)
    print(report)
    if str(args.out) != "-":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n")
        print(f"\nwritten to {args.out}")
    return 0 if unchanged == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
