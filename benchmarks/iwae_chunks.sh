#!/usr/bin/env bash
# Run benchmarks/iwae_nll.py in chunks of at most MINUTES (default 4.5) minutes, each
# inside the shared CPU lock, until training and then the k=5000 evaluation are done.
# On a machine of one's own the lock is free and this is just a loop.
#   benchmarks/iwae_chunks.sh --objective elbo --epochs 300
#   MINUTES=4 benchmarks/iwae_chunks.sh --objective iwae --k 5 --epochs 60
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
LOCK=${VAE_CPU_LOCK:-/tmp/vae_cpu.lock}
for mode in train eval; do
  while true; do
    flock "$LOCK" "$PY" benchmarks/iwae_nll.py "$mode" "$@" --minutes "${MINUTES:-4.5}"
    rc=$?
    [ "$rc" -eq 0 ] && break
    [ "$rc" -ne 3 ] && { echo "iwae_nll.py $mode failed with exit code $rc" >&2; exit "$rc"; }
    sleep "${PAUSE:-20}"   # let other jobs waiting for the lock take it
  done
done
flock "$LOCK" "$PY" benchmarks/iwae_nll.py report
