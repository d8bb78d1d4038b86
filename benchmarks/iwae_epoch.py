"""Seconds per epoch of the IWAE paper's protocol (784-200-200-50 tanh, batch 20) on this machine.

    python benchmarks/iwae_epoch.py
    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
        taskset -c 0 python benchmarks/iwae_epoch.py      # one core, one thread

Trains 3 epochs with vae_core.shipped.iwae_protocol()'s configs (constant learning rate)
and prints each epoch's wall time; the first includes compilation.
"""
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from vae_core import shipped  # noqa: E402
from vae_core.config import device_name  # noqa: E402
from vae_core.data import load_mnist  # noqa: E402
from vae_core.train import train  # noqa: E402

mnist = load_mnist()
model_cfg, train_cfg = shipped.iwae_protocol("elbo", 1)
train_cfg = dataclasses.replace(train_cfg, epochs=3, lr_stages=None)
result = train(model_cfg, train_cfg, mnist.x_train, mnist.x_test, progress=False)
print(f"{device_name()}: seconds per epoch {np.round(result.history['seconds'], 2).tolist()} "
      f"(3,000 steps of batch 20 each; the first includes compilation)")
