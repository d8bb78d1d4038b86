"""Retrain a shipped notebook model from scratch with its card's configs and compare the
weights with the shipped file.

    python benchmarks/retrain_shipped.py 01_vae_2d

The shipped file holds float16 parameters, so the retrained float32 weights are compared
after the same rounding: 'bit for bit' means every rounded parameter equals the stored one.
The training data is the first n MNIST training images (n from the card; checked by its
fingerprint). Only MNIST models (not the sprite ones).
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from vae_core import shipped  # noqa: E402
from vae_core.checkpoint import load_shipped  # noqa: E402
from vae_core.config import device_name  # noqa: E402
from vae_core.data import load_mnist  # noqa: E402
from vae_core.models import params_to_arrays  # noqa: E402
from vae_core.train import train  # noqa: E402

name = sys.argv[1]
stored = load_shipped(name)
card = stored.extra
mnist = load_mnist()
x = mnist.x_train[:card["train_shape"][0]]
if shipped.data_fingerprint(x) != card["train_data"]:
    sys.exit(f"{name} was not trained on the first {len(x)} MNIST training images")
start = time.perf_counter()
fresh = train(stored.model_config, stored.train_config, x, mnist.x_test, progress=False)
seconds = time.perf_counter() - start
a = params_to_arrays(stored.model)
b = {k: np.asarray(v).astype(shipped.STORED_DTYPE).astype(np.float32) for k, v in params_to_arrays(fresh.model).items()}
diff = max(float(np.max(np.abs(np.asarray(a[k]) - b[k]))) for k in a)
print(f"{name}: retrained on {device_name()} in {seconds:.0f} s; largest difference from the shipped "
      f"weights after float16 rounding: {diff:.3g} ({'bit for bit' if diff == 0 else 'not identical'})")
