"""Run the benchmarks in order (what `make bench` calls): the four of issue 3, then the
widget latency, t-SNE speed, conv-loop speed, MIG and sprite-trial (notebook 05) benchmarks.

Each script writes its output to benchmarks/results/<name>.txt; copy the numbers into
BENCHMARKS.md by hand. Timings assume nothing else runs on the machine: on a shared
machine every script is started inside ``flock $VAE_CPU_LOCK`` (default
/tmp/vae_cpu.lock), so heavy jobs run one at a time.

  python benchmarks/run_all.py                  # IWAE-protocol run with a 20-minute budget
  python benchmarks/run_all.py --minutes 60 --iwae-epochs 300
  python benchmarks/run_all.py --skip-iwae      # benchmarks 1-3 only (about 3 minutes)

Benchmark 4 trains for at most 60 % of --minutes and evaluates log p(x) (k=5000, 10k
test images, about 6 minutes on a free 2-core CPU) in the rest; if the budget runs out
it stops with its state saved under benchmarks/results/iwae_state/ and running the same
command again resumes it (benchmarks/iwae_chunks.sh does that in lock-held chunks). A
finished run is only re-reported: delete benchmarks/results/iwae_state/ to start over.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(cmd: list[str], lock: str | None) -> int:
    if lock and shutil.which("flock"):
        cmd = ["flock", lock, *cmd]
    print("$", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=HERE.parent)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=20.0, help="wall budget of the IWAE-protocol benchmark")
    p.add_argument("--iwae-epochs", type=int, default=150, help="planned epochs of the IWAE-protocol VAE")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--skip-iwae", action="store_true")
    p.add_argument("--no-lock", action="store_true", help="do not wrap the scripts in flock")
    args = p.parse_args()
    lock = None if args.no_lock else os.environ.get("VAE_CPU_LOCK", "/tmp/vae_cpu.lock")
    py = sys.executable
    codes = {
        "throughput": run([py, "benchmarks/throughput.py", "--repeats", str(args.repeats)], lock),
        "flops": run([py, "benchmarks/flops.py", "--repeats", str(args.repeats)], lock),
        "time_to_elbo": run([py, "benchmarks/time_to_elbo.py"], lock),
        "widget_latency": run([py, "benchmarks/widget_latency.py"], lock),
        "tsne_speed": run([py, "benchmarks/tsne_speed.py"], lock),
        "conv_speed": run([py, "benchmarks/conv_speed.py"], lock),
        # trains notebook 05's 12 sprite models unless the notebook filled the model cache
        "mig": run([py, "benchmarks/mig.py"], lock),
        "sprite_trials": run([py, "benchmarks/sprite_trials.py"], lock),
    }
    if not args.skip_iwae:
        codes["iwae_nll"] = run([py, "benchmarks/iwae_nll.py", "all", "--objective", "elbo",
                                 "--epochs", str(args.iwae_epochs), "--minutes", str(args.minutes)], lock)
    print("exit codes:", codes, "(iwae_nll: 3 = budget spent, run again to resume; "
          "time_to_elbo: 1 = target not reached)")
    return 0 if all(c == 0 for c in codes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
