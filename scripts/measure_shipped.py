"""Add the slow metrics to the shipped models' cards, measured on the stored weights.

    python scripts/measure_shipped.py            # every card still missing its metric
    python scripts/measure_shipped.py 04_main_L20 01_vae_2d   # just these, in this order
    python scripts/measure_shipped.py --only mig  # just MIG of the sprite models (seconds)

MNIST VAEs get log p(x): importance sampling with k = 5,000 on all 10,000 test images
(binarized once with TEST_BINARIZATION_SEED; sample key LOGPX_SEED), about 2 minutes a
model on a 2-core CPU. Sprite models get MIG on the first 10,000 sprites they were
trained on (the procedural set of notebook 05). Each card is written as soon as its
metric is done, so a stopped run continues with the next model.
Then `python scripts/models_table.py` refreshes MODELS.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from vae_core import shipped, sprites  # noqa: E402
from vae_core.checkpoint import fixed_test_set, load_shipped  # noqa: E402
from vae_core.config import device_name  # noqa: E402
from vae_core.data import load_mnist  # noqa: E402
from vae_core.evaluate import log_marginal_likelihood  # noqa: E402
from vae_core.metrics import model_mig  # noqa: E402

K, MIG_IMAGES = 5000, 10000


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="shipped models to measure, in this order (default: all)")
    p.add_argument("--only", choices=("mig", "logpx"))
    args = p.parse_args()
    cards = shipped.load_cards()
    unknown = sorted(set(args.names) - set(cards))
    if unknown:
        p.error(f"no shipped models named {unknown}; see MODELS.md")
    cards = {n: cards[n] for n in (args.names or cards)}
    cards = {n: c for n, c in cards.items() if c.get("kind") != "conditional"}  # their cards carry their own metrics
    for name in args.names:
        card = shipped.load_cards()[name]
        why = ("a conditional model (its card carries its own metrics)" if card.get("kind") == "conditional" else
               "an autoencoder (no log p(x))" if card["model_config"].get("deterministic") else
               "already measured" if "test_logpx" in card or "mig" in card else None)
        if why:
            print(f"{name}: skipped, {why}")
    todo_mig = [n for n, c in cards.items() if c["train_shape"][1] == 32 * 32 and "mig" not in c]
    todo_ll = [n for n, c in cards.items() if c["train_shape"][1] == 784 and "test_logpx" not in c
               and not c["model_config"]["deterministic"]]
    if args.only != "logpx" and todo_mig:
        data = sprites.make_sprites(30000, size=32, seed=0)
        x, f = data.images[:MIG_IMAGES], data.factors[:MIG_IMAGES]
        for name in todo_mig:
            card = dict(shipped.load_cards()[name])
            assert card["train_data"] == shipped.data_fingerprint(data.images), name
            res = model_mig(load_shipped(name).model, x, f)
            card.update({"mig": round(float(res.score), 4), "mig_images": MIG_IMAGES})
            shipped.write_card(card)
            print(f"{name}: MIG {res.score:.3f}", flush=True)
    if args.only != "mig" and todo_ll:
        mnist = load_mnist()
        for name in todo_ll:
            card = dict(shipped.load_cards()[name])
            assert card["test_data"] == shipped.data_fingerprint(mnist.x_test), name
            result = load_shipped(name)
            x = fixed_test_set(mnist.x_test, result.train_config)
            t0 = time.perf_counter()
            ll = np.asarray(log_marginal_likelihood(result.model, x, jax.random.PRNGKey(shipped.LOGPX_SEED), k=K))
            card.update({"test_logpx": round(float(ll.mean()), 3),
                         "test_logpx_stderr": round(float(ll.std(ddof=1) / np.sqrt(len(ll))), 3),
                         "logpx_k": K, "logpx_images": int(len(ll)), "logpx_seed": shipped.LOGPX_SEED,
                         "eval_device": device_name(), "eval_seconds": round(time.perf_counter() - t0, 1)})
            shipped.write_card(card)
            print(f"{name}: log p(x) {ll.mean():.2f} nats ({time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
