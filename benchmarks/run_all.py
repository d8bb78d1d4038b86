"""Run the benchmarks in order (what `make bench` calls): the four of issue 3 (with the
random-draw speed beside them), then the widget latency, t-SNE speed, conv-loop speed, MIG and sprite-trial (notebook 05) benchmarks,
the conditional models', and notebook 04's Run All in JupyterLab.

Each script writes its output to benchmarks/results/<name>.txt; copy the numbers into
BENCHMARKS.md by hand. Timings assume nothing else runs on the machine: on a shared
machine every script is started inside ``flock $VAE_CPU_LOCK`` (default
/tmp/vae_cpu.lock), so heavy jobs run one at a time.

  python benchmarks/run_all.py                  # IWAE-protocol run with a 20-minute budget
  python benchmarks/run_all.py --minutes 60 --iwae-epochs 300
  python benchmarks/run_all.py --skip-iwae      # benchmarks 1-3 only (about 3 minutes)
  python benchmarks/run_all.py --only time_to_elbo conv_speed
  python benchmarks/run_all.py --quick          # a check that the engine benchmarks run (a minute or two)

--quick runs throughput, flops, rng_speed, time_to_elbo, conv_speed and iwae_nll at their smallest
settings and writes into a temporary folder (``$VAE_BENCH_RESULTS`` if set), never over
the recorded results; the other scripts have no quick settings and are left out.

Benchmark 4 trains for at most 60 % of --minutes and evaluates log p(x) (k=5000, 10k
test images, about 6 minutes on a free 2-core CPU) in the rest; if the budget runs out
it stops with its state saved under benchmarks/results/iwae_state/ and running the same
command again resumes it (benchmarks/iwae_chunks.sh does that in lock-held chunks). A
finished run is only re-reported: delete benchmarks/results/iwae_state/ to start over.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAMES = ["throughput", "flops", "rng_speed", "time_to_elbo", "widget_latency", "tsne_speed", "conv_speed", "mig",
         "sprite_trials", "sprite_mlp_trials", "conditional", "lab_run_all", "iwae_nll"]


def run(cmd: list[str], lock: str | None) -> int:
    if lock and shutil.which("flock"):
        cmd = ["flock", lock, *cmd]
    print("$", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=HERE.parent)


def commands(args) -> dict[str, list[str]]:
    """The arguments of each benchmark script (benchmarks/<name>.py)."""
    if args.quick:
        no_torch = [] if importlib.util.find_spec("torch") else ["--no-torch"]
        return {
            "throughput": ["--quick", *no_torch],
            "flops": ["--repeats", "1", "--matmuls", "1"],
            "rng_speed": ["--repeats", "1"],
            "time_to_elbo": ["--max-epochs", "1", "--target", "-1000", "--tag", "quick"],
            "conv_speed": ["--n", "256"],
            "iwae_nll": ["all", "--objective", "elbo", "--epochs", "1", "--minutes", "1", "--eval-images", "100"],
        }
    return {
        "throughput": ["--repeats", str(args.repeats)],
        "flops": ["--repeats", str(args.repeats)],
        "rng_speed": ["--repeats", str(args.repeats)],
        "time_to_elbo": [],
        "widget_latency": [],
        "tsne_speed": [],
        "conv_speed": [],
        # trains notebook 05's 12 sprite models unless the notebook filled the model cache
        "mig": [],
        "sprite_trials": [],
        "sprite_mlp_trials": [],
        "conditional": [],  # needs notebook 07's shipped models
        "lab_run_all": [],  # needs chromium (scripts/install_chromium.sh)
        "iwae_nll": ["all", "--objective", "elbo", "--epochs", str(args.iwae_epochs), "--minutes", str(args.minutes)],
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=20.0, help="wall budget of the IWAE-protocol benchmark")
    p.add_argument("--iwae-epochs", type=int, default=150, help="planned epochs of the IWAE-protocol VAE")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--skip-iwae", action="store_true")
    p.add_argument("--only", nargs="+", choices=NAMES, help="run only these benchmarks")
    p.add_argument("--quick", action="store_true", help="smallest settings, results into a temporary folder")
    p.add_argument("--no-lock", action="store_true", help="do not wrap the scripts in flock")
    args = p.parse_args()
    lock = None if args.no_lock else os.environ.get("VAE_CPU_LOCK", "/tmp/vae_cpu.lock")
    if args.quick and "VAE_BENCH_RESULTS" not in os.environ:
        os.environ["VAE_BENCH_RESULTS"] = tempfile.mkdtemp(prefix="vae_bench_quick_")
    if args.quick:
        print(f"--quick: results go to {os.environ['VAE_BENCH_RESULTS']}", flush=True)
    todo = commands(args)
    if args.skip_iwae:
        todo.pop("iwae_nll", None)
    if args.only:
        todo = {name: cmd for name, cmd in todo.items() if name in args.only}
    py = sys.executable
    codes = {name: run([py, f"benchmarks/{name}.py", *cmd], lock) for name, cmd in todo.items()}
    print("exit codes:", codes, "(iwae_nll: 3 = budget spent, run again to resume; "
          "time_to_elbo: 1 = target not reached)")
    return 0 if all(c == 0 for c in codes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
