"""One command for an accelerator run: tests, notebooks, the cold full series and the key timings.

    make accelerator-report                         # ACCEL_PYTHON=python3 by default
    python scripts/accelerator_report.py [--out DIR] [--steps units,nbval,series,speed] [--dry-run]

Runs with the Python it is started by (the one whose JAX sees the GPU or TPU, which may
be a preinstalled one at other versions than the course's pins; ``NEEDS`` below lists the
lowest versions it needs, and it stops naming any that are missing). Steps:

1. ``units``  the unit tests in smoke mode (tests of the course's own pinned environment,
   website, JupyterLab and browser are left out: they are about this repository's .venv);
2. ``nbval``  every notebook under nbval in smoke mode;
3. ``series`` every notebook executed in full mode with ``VAE_RETRAIN=1`` (the cold path of
   a user with an accelerator: no shipped model is loaded), in a temporary copy, timed one
   by one; every ``# NBVAL_CHECK_OUTPUT`` cell's output is compared with the committed one;
4. ``speed``  training images/s (notebook 04's 784-400-20 VAE, batch 128, one jitted epoch of
   60,000 images, median of 3 after a warm-up) and the time of log p(x) with k = 5,000 on
   all 10,000 test images for the shipped model ``04_main_L20``.

It writes ``DIR/accelerator_report.md`` and ``.json`` (device, versions, per-step and
per-notebook times, images/s, the log p(x) time, every checked cell). ``--dry-run`` runs
the same steps shrunk to a CPU-sized check (a few unit tests, notebook 00 only, one epoch
of 6,016 images, k = 50 on 200 images), which is what tests/test_accelerator_report.py runs.
MNIST comes from VAE_DATA_DIR or tensorflow-datasets as everywhere in the course.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the lowest versions the course's code needs (jax: NNX-era APIs and partitionable random numbers)
NEEDS = {"jax": "0.6", "flax": "0.12", "optax": "0.2", "numpy": "1.26", "scipy": "1.11", "matplotlib": "3.8",
         "scikit-learn": "1.4", "tqdm": "4.66", "ipywidgets": "8.1", "ipympl": "0.9", "opentsne": "1.0",
         "nbval": "0.11", "nbclient": "0.10", "nbformat": "5.9", "ipykernel": "6.29", "pytest": "8.0"}
ENV_TESTS = ["tests/test_environment.py", "tests/test_site.py", "tests/test_lab.py", "tests/test_browser.py",
             "tests/test_fresh_install.py"]
DRY_UNITS = ["tests/test_config.py", "tests/test_parallel.py::test_a_batch_size_below_one_is_refused"]
CHECK = "# NBVAL_CHECK_OUTPUT"


def _version_tuple(v: str) -> tuple:
    return tuple(int(p) for p in re.findall(r"\d+", v)[:3])


def versions() -> tuple[dict, list[str]]:
    """Installed versions of what the course needs, and the problems (missing or too old)."""
    found, problems = {}, []
    for name, low in NEEDS.items():
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed (needs >= {low})")
            continue
        if _version_tuple(found[name]) < _version_tuple(low):
            problems.append(f"{name} {found[name]} is older than {low}")
    return found, problems


def run(cmd: list[str], env: dict, log: Path) -> tuple[int, float, str]:
    """Run a command, its output to log; (exit code, seconds, last line that pytest prints)."""
    start = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - start
    lines = [l for l in log.read_text().splitlines() if re.search(r"\d+ (passed|failed|error)", l)]
    return code, seconds, (lines[-1].strip("= ") if lines else "")


def checked_cells(nb) -> list[tuple[int, str]]:
    """(cell index, its text output) for every cell marked # NBVAL_CHECK_OUTPUT."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.source.lstrip().startswith(CHECK):
            text = "".join(o.get("text", "") if o.get("output_type") == "stream"
                           else o.get("data", {}).get("text/plain", "") for o in cell.get("outputs", []))
            found.append((i, text))
    return found


def series(notebooks: list[Path], env: dict, workdir: Path) -> list[dict]:
    """Execute each notebook in a temporary copy of notebooks/ with env; time it, compare its checked cells."""
    import nbformat
    from nbclient import NotebookClient

    copy = workdir / "notebooks"
    shutil.copytree(ROOT / "notebooks", copy, dirs_exist_ok=True)
    old = dict(os.environ)
    os.environ.update(env)  # the kernel inherits this process's environment
    results = []
    try:
        for path in notebooks:
            committed = dict(checked_cells(nbformat.read(path, as_version=4)))
            nb = nbformat.read(copy / path.name, as_version=4)
            start, error = time.perf_counter(), None
            try:
                NotebookClient(nb, timeout=None, kernel_name="python3",
                               resources={"metadata": {"path": str(copy)}}).execute()
            except Exception as err:  # a failing cell: recorded, the next notebook still runs
                error = f"{type(err).__name__}: {str(err)[-500:]}"
            seconds = time.perf_counter() - start
            checks = [{"cell": i, "same_as_committed": text == committed.get(i), "output": text.strip()}
                      for i, text in checked_cells(nb)]
            results.append({"notebook": path.name, "seconds": round(seconds, 1), "error": error, "checks": checks})
            print(f"  {path.name}: {seconds:.0f} s, {sum(c['same_as_committed'] for c in checks)}/{len(checks)} "
                  f"checked cells as committed{'; ERROR ' + error[:200] if error else ''}", flush=True)
    finally:
        os.environ.clear()
        os.environ.update(old)
    return results


def speed(dry: bool) -> dict:
    """Training images/s of notebook 04's VAE and the time of log p(x) (k = 5,000, 10k images)."""
    import jax
    import numpy as np
    from flax import nnx

    from vae_core.checkpoint import fixed_test_set, load_shipped
    from vae_core.data import load_mnist
    from vae_core.evaluate import log_marginal_likelihood
    from vae_core.models import ModelConfig, build_model
    from vae_core.parallel import replicate
    from vae_core.train import TrainConfig, make_epoch_fn, make_optimizer

    mnist = load_mnist()
    n = 6016 if dry else 59904
    x = jax.numpy.asarray(mnist.x_train[:n])
    cfg = TrainConfig(batch_size=128)
    model = build_model(ModelConfig(latent_dim=20, hidden=(400,)), jax.random.PRNGKey(0))
    tx = make_optimizer(cfg, n // 128)
    params = nnx.state(model)
    params, opt_state, x = replicate((params, tx.init(params), x))
    run_epoch = make_epoch_fn(model, cfg, tx, n)
    step, key, times = jax.numpy.int32(0), jax.random.PRNGKey(1), []
    for i in range(2 if dry else 4):  # the first epoch compiles: excluded
        start = time.perf_counter()
        params, opt_state, step, m = run_epoch(params, opt_state, step, x, jax.random.fold_in(key, i))
        jax.block_until_ready(m)
        times.append(time.perf_counter() - start)
    images_per_s = n / statistics.median(times[1:])

    result = load_shipped("04_main_L20")
    k, count = (50, 200) if dry else (5000, 10000)
    x_test = fixed_test_set(mnist.x_test[:count], result.train_config)
    start = time.perf_counter()
    logpx = log_marginal_likelihood(result.model, x_test, jax.random.PRNGKey(5000), k=k, k_chunk=min(500, k))
    mean = float(jax.block_until_ready(logpx).mean())
    return {"train_images": n, "train_images_per_s": round(images_per_s), "first_epoch_s": round(times[0], 2),
            "logpx_k": k, "logpx_images": count, "logpx_seconds": round(time.perf_counter() - start, 1),
            "logpx_mean_nats": round(mean, 2), "devices": len(jax.local_devices())}


def write_report(report: dict, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "accelerator_report.json").write_text(json.dumps(report, indent=1))
    lines = [f"# Accelerator report ({'dry run' if report['dry_run'] else 'full'})", "",
             f"- date: {report['date']}", f"- device: {report['device']} ({report['devices']} local devices)",
             f"- python {report['python']}; " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()), ""]
    if report["steps"]:
        lines += ["| step | exit | seconds | result |", "|---|---|---|---|"]
        lines += [f"| {s['step']} | {s['exit']} | {s['seconds']:.0f} | {s['summary']} |" for s in report["steps"]]
    for nb in report.get("series", []):
        same = sum(c["same_as_committed"] for c in nb["checks"])
        lines.append(f"\n**{nb['notebook']}**: {nb['seconds']:.0f} s, checked cells as committed {same}/{len(nb['checks'])}"
                     + (f", error: {nb['error']}" if nb["error"] else ""))
        lines += [f"- cell {c['cell']}: {'same' if c['same_as_committed'] else 'DIFFERS'}: `{c['output'][:200]}`"
                  for c in nb["checks"]]
    if report.get("speed"):
        s = report["speed"]
        lines += ["", f"Training: {s['train_images_per_s']:,} images/s ({s['train_images']:,} images per epoch, "
                      f"batch 128, median after a warm-up epoch of {s['first_epoch_s']} s).",
                  f"log p(x), k = {s['logpx_k']:,} on {s['logpx_images']:,} test images: {s['logpx_seconds']} s "
                  f"(mean {s['logpx_mean_nats']} nats, shipped 04_main_L20)."]
    path = out / "accelerator_report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "_build" / "accelerator")
    ap.add_argument("--steps", default="units,nbval,series,speed")
    ap.add_argument("--dry-run", action="store_true", help="a CPU-sized check of every step")
    args = ap.parse_args()
    steps = args.steps.split(",")
    found, problems = versions()
    if problems:
        print("accelerator report: cannot run here:\n  " + "\n  ".join(problems)
              + "\ninstall them (pip install 'NAME>=VERSION', or wheels carried to a machine without an index)",
              file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    import jax

    from vae_core.config import device_name

    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "dry_run": args.dry_run,
              "device": device_name(), "devices": len(jax.local_devices()), "python": platform.python_version(),
              "versions": found, "steps": []}
    print(f"accelerator report on {report['device']} ({report['devices']} devices); steps {steps}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    smoke = {**env, "VAE_SMOKE": "1"}
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.dry_run:
        notebooks = notebooks[:1]
    if "units" in steps:
        tests = DRY_UNITS if args.dry_run else ["tests", "-m", "not browser", *(f"--ignore={t}" for t in ENV_TESTS)]
        code, secs, summary = run(pytest + tests, smoke, args.out / "units.log")
        report["steps"].append({"step": "units (smoke)", "exit": code, "seconds": secs, "summary": summary})
    if "nbval" in steps:
        nbval = ["--nbval-lax", "--nbval-current-env", "--nbval-sanitize-with", "tests/sanitize.cfg"]
        code, secs, summary = run(pytest + nbval + [str(p) for p in notebooks], smoke, args.out / "nbval.log")
        report["steps"].append({"step": "nbval (smoke)", "exit": code, "seconds": secs, "summary": summary})
    if "series" in steps:
        mode = {"VAE_SMOKE": "1"} if args.dry_run else {"VAE_SMOKE": "0", "VAE_RETRAIN": "1"}
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            report["series"] = series(notebooks, {**env, **mode}, Path(tmp))
        failed = [nb["notebook"] for nb in report["series"] if nb["error"]]
        report["steps"].append({"step": "series (" + ("smoke" if args.dry_run else "full, retrained") + ")",
                                "exit": int(bool(failed)), "seconds": time.perf_counter() - start,
                                "summary": f"{len(notebooks) - len(failed)}/{len(notebooks)} notebooks ran"})
    if "speed" in steps:
        start = time.perf_counter()
        report["speed"] = speed(args.dry_run)
        report["steps"].append({"step": "speed", "exit": 0, "seconds": time.perf_counter() - start,
                                "summary": f"{report['speed']['train_images_per_s']:,} images/s"})
    path = write_report(report, args.out)
    print(path.read_text())
    return int(any(s["exit"] for s in report["steps"]))


if __name__ == "__main__":
    sys.exit(main())
