"""Notebook 07's numbers on the shipped models: M2's test error over the label draws against the
labels-only classifier, and the completion log-likelihood of the conditional VAE against the regression.

    VAE_DATA_DIR=... python benchmarks/conditional.py [--images 10000] [--k 1000]

Loads the shipped models 07_m2_draw{0,1,2}, 07_complete_top and 07_regress_top (SHA-256
checked; ``python scripts/ship_models.py 07 --from-scratch`` rebuilds them) and trains the
labels-only baselines with notebook 07's settings (keep in sync with
notebooks/07_conditional_and_semisupervised.ipynb). Test images binarized once with the
course's seed. log p(t | c) of the bottom half given the top half: exact for the regression,
importance-sampled with k samples from the encoder for the conditional VAE (key 5000).
Writes benchmarks/results/conditional.txt with the machine, command and date.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (puts the repository root on sys.path, for course/)
from course import nb07_conditional as nb07  # noqa: E402
from vae_core.checkpoint import load_shipped_conditional  # noqa: E402
from vae_core.conditional import (ConditionalConfig, classify, completion_log_likelihood,  # noqa: E402
                                  conditional_log_likelihood, observed_mask, split_images)
from vae_core.data import load_mnist  # noqa: E402
from vae_core.train import TrainConfig  # noqa: E402

DRAWS = (0, 1, 2)
M2_CONFIG = ConditionalConfig(target_dim=784, cond_dim=10, latent_dim=50, hidden=(200,), n_classes=10,
                              classifier_hidden=(200,))
BASELINE_TRAIN = TrainConfig(epochs=100, batch_size=20, learning_rate=1e-3, seed=0)
PAPER_M2, PAPER_M2_SD, PAPER_NN = 0.1197, 0.0171, 0.258   # Kingma et al. (2014), Table 1, 100 labels


def main(argv=None) -> None:
    import jax

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10_000, help="test images of the completion log-likelihood")
    ap.add_argument("--k", type=int, default=1_000, help="importance samples per image")
    args = ap.parse_args(argv)
    _common.start("conditional")
    mnist = load_mnist()
    x_bin = np.asarray(_common.binarized_test_set(mnist.x_test))
    y = np.asarray(mnist.y_test)

    print(f"\nM2 with 100 labels, test error on all {len(y):,} test images ({_common.load()})")
    m2, base = {}, {}
    for d in DRAWS:
        result = load_shipped_conditional(f"07_m2_draw{d}")
        m2[d] = float(np.mean(classify(result.model, x_bin) != y))
        start = time.perf_counter()
        base[d] = nb07.labels_only_error(mnist.x_train, mnist.y_train, x_bin, y, d, M2_CONFIG, BASELINE_TRAIN)
        print(f"  draw {d}: M2 {m2[d]:.4f}   labels only {base[d]:.4f}  (baseline trained in "
              f"{time.perf_counter() - start:.1f} s)")
    for name, e in (("M2", list(m2.values())), ("labels only", list(base.values()))):
        print(f"  {name:12s} mean {np.mean(e):.4f} ± {np.std(e, ddof=1):.4f} (std over {len(e)} draws)")
    print(f"  Kingma et al. (2014): M2 {PAPER_M2:.4f} ± {PAPER_M2_SD:.4f}; labels-only network {PAPER_NN:.3f}")

    n = args.images
    top, bottom = split_images(x_bin[:n], observed_mask("top"))
    start = time.perf_counter()
    cvae = conditional_log_likelihood(load_shipped_conditional("07_complete_top").model, bottom, top,
                                      jax.random.PRNGKey(5000), k=args.k)
    seconds = time.perf_counter() - start
    reg = completion_log_likelihood(load_shipped_conditional("07_regress_top").model, bottom, top)
    diff = cvae - reg
    se = lambda v: v.std(ddof=1) / np.sqrt(len(v))  # noqa: E731
    print(f"\ncompletion of the bottom half (392 pixels) from the top half, {n:,} test images ({_common.load()})")
    print(f"  regression (exact)                 log p(t|c) {reg.mean():8.2f} ± {se(reg):.2f} nats")
    print(f"  conditional VAE (k = {args.k:,}, {seconds:.0f} s) log p(t|c) {cvae.mean():8.2f} ± {se(cvae):.2f} nats")
    print(f"  paired difference CVAE - regression  {diff.mean():.2f} ± {se(diff):.2f} nats")


if __name__ == "__main__":
    main()
