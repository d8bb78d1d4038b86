"""The trial runs behind two choices of notebook 05: the training budget and the capacity gamma.

    flock /tmp/vae_cpu.lock .venv/bin/python benchmarks/sprite_trials.py

On the notebook's data (30,000 procedural 32x32 sprites, seed 0) and net
(``course.nb05_disentangle.sprite_model_config``), seed 0, it trains
  * beta 4 and beta 16 for 4 epochs (the notebook's budget) and for 8 epochs: does a
    doubled budget raise MIG?
  * the capacity objective with C -> 12 nats and gamma 100, then gamma 5 (the notebook's):
    does the reconstruction term get heard?
and prints, for each, MIG (disentanglement_lib variant, first 10,000 sprites), the final
test KL and reconstruction log-likelihood (nats, 2,000 sprites) and the training time.
About 7 minutes on a free 2-core CPU. Writes benchmarks/results/sprite_trials.txt.
"""
from __future__ import annotations

import time

from _common import load, start  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from course import nb05_disentangle as nb05  # noqa: E402  (_common put the repository root on sys.path)
from vae_core import sprites
from vae_core.metrics import model_mig
from vae_core.train import train

TRIALS = [  # (label, beta, epochs, train-config keywords)
    ("beta 4, 4 epochs", 4.0, 4, {}),
    ("beta 4, 8 epochs", 4.0, 8, {}),
    ("beta 16, 4 epochs", 16.0, 4, {}),
    ("beta 16, 8 epochs", 16.0, 8, {}),
    ("capacity C->12, gamma 100", 1.0, 4, {"objective": "capacity", "capacity_max": 12.0, "gamma": 100.0}),
    ("capacity C->12, gamma 5", 1.0, 4, {"objective": "capacity", "capacity_max": 12.0, "gamma": 5.0}),
]


def main() -> None:
    start("sprite_trials")
    data = sprites.make_sprites(30000, size=32, seed=0)
    cfg = nb05.sprite_model_config(32)
    print(f"{'trial':>28} {'MIG':>6} {'test KL':>8} {'test rec':>9} {'train s':>8}")
    for label, beta, epochs, kw in TRIALS:
        t0 = time.perf_counter()
        r = train(cfg, nb05.sprite_train_config(beta, 0, epochs, **kw), data.images, data.images[:2000], progress=False)
        seconds = time.perf_counter() - t0
        score = model_mig(r.model, data.images[:10000], data.factors[:10000]).score
        print(f"{label:>28} {score:6.3f} {r.history['test_kl'][-1]:8.2f} {r.history['test_rec'][-1]:9.2f} "
              f"{seconds:8.0f}", flush=True)
    print(load())


if __name__ == "__main__":
    main()
