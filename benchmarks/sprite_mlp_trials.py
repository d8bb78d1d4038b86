"""Toward issue 16: does an MLP VAE trained longer learn the sprite factors (MIG)?

    flock /tmp/vae_cpu.lock .venv/bin/python benchmarks/sprite_mlp_trials.py [--epochs 20] [--seeds 0]
        [--settings 0 3] [--mig-every 20] [--batch 64] [--lr 1e-3]

On notebook 05's data (30,000 procedural 32x32 sprites, seed 0; factors shape, scale,
rotation, x, y) it trains Chen et al.'s (2018) dSprites network, an MLP 1024-1200-1200-10
with ReLU (the engine's mirrored decoder), Adam 1e-3, batch 64 (--lr, --batch), no
binarization (the sprites are binary), for each of:
  * beta-VAE, beta = 1, 4 and 8 (objective 'elbo');
  * beta-TCVAE, beta = 6 on the total correlation (objective 'beta_tcvae'), Chen et al.'s
    dSprites setting;
and prints MIG in both of the course's variants (disentanglement_lib's, and over active
latents only: posterior-mean variance > 0.01), both on the first 10,000 sprites, the
test KL and reconstruction term (nats, 2,000 held-out sprites: numbers 28,000-29,999,
never trained on), and the training time. --settings picks some of them (indices into
SETTINGS); --mig-every N also prints MIG (both variants) every N epochs during training, to
see whether it still grows. Each line also gives, per factor, the two largest shares
I(z_j; v_k) / H(v_k) over latents j (the MIG's two terms): two equal shares mean the
factor is spread over two latents. Writes benchmarks/results/sprite_mlp_trials.txt.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from _common import load, start  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from vae_core import sprites
from vae_core.metrics import model_mig
from vae_core.models import ModelConfig
from vae_core.train import TrainConfig, train

SETTINGS = [  # (label, objective, beta)
    ("beta-VAE, beta 1", "elbo", 1.0),
    ("beta-VAE, beta 4", "elbo", 4.0),
    ("beta-VAE, beta 8", "elbo", 8.0),
    ("beta-TCVAE, beta 6", "beta_tcvae", 6.0),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--settings", type=int, nargs="+", default=list(range(len(SETTINGS))),
                    help="indices into SETTINGS (default: all)")
    ap.add_argument("--mig-every", type=int, default=0, help="also print MIG every N epochs (0: only at the end)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args()
    start("sprite_mlp_trials")
    data = sprites.make_sprites(30000, size=32, seed=0)
    train_x, held_out = data.images[:28000], data.images[28000:]
    cfg = ModelConfig(latent_dim=10, hidden=(1200, 1200), activation="relu", image_shape=(32, 32),
                      likelihood="bernoulli")
    print(f"MLP 1024-1200-1200-10 relu, Adam {args.lr:g}, batch {args.batch}, {args.epochs} epochs on 28,000 sprites; "
          f"seeds {args.seeds}")
    print(f"{'setting':>20} {'seed':>4} {'MIG':>6} {'MIG act':>7} {'active':>6} {'test KL':>8} {'test rec':>9} "
          f"{'train s':>8}", flush=True)
    x, f = data.images[:10000], data.factors[:10000]

    def top_two(result):  # per factor: the two largest MI / H(factor), the MIG's two terms
        share = np.sort(result.mi / result.entropy, axis=0)
        return " ".join(f"{n} {a:.2f}/{b:.2f}" for n, a, b in zip(sprites.FACTOR_NAMES, share[-1], share[-2]))

    def report_progress(end):
        if args.mig_every and end.epoch % args.mig_every == 0 and end.epoch < args.epochs:
            model = end.model()
            plain, active = model_mig(model, x, f), model_mig(model, x, f, active_only=True)
            print(f"{'':>20} epoch {end.epoch:4d}: MIG {plain.score:.3f}, over active latents {active.score:.3f} "
                  f"({int(np.sum(active.active))} active); test KL {end.history['test_kl'][-1]:.2f}, test rec "
                  f"{end.history['test_rec'][-1]:.2f}; {sum(end.history['seconds']):.0f} s; best/second MI share "
                  f"{top_two(plain)}", flush=True)

    for label, objective, beta in [SETTINGS[i] for i in args.settings]:
        for seed in args.seeds:
            tc = TrainConfig(epochs=args.epochs, batch_size=args.batch, learning_rate=args.lr, objective=objective, beta=beta,
                             binarize=False, seed=seed)
            t0 = time.perf_counter()
            r = train(cfg, tc, train_x, held_out, progress=False, callback=report_progress)
            seconds = time.perf_counter() - t0
            plain, active = model_mig(r.model, x, f), model_mig(r.model, x, f, active_only=True)
            n_active = int(np.sum(active.active))
            print(f"{label:>20} {seed:4d} {plain.score:6.3f} {active.score:7.3f} {n_active:6d} "
                  f"{r.history['test_kl'][-1]:8.2f} {r.history['test_rec'][-1]:9.2f} {seconds:8.0f}   per factor "
                  + " ".join(f"{n} {g:.2f}" for n, g in zip(sprites.FACTOR_NAMES, plain.per_factor))
                  + f"; best/second MI share {top_two(plain)}", flush=True)
    print(load())


if __name__ == "__main__":
    main()
