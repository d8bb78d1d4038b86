"""MIG of the sprite beta-VAEs of notebook 05, against beta, over seeds.

    VAE_SMOKE=0 VAE_DATA_DIR=... python benchmarks/mig.py [--out benchmarks/results/mig.txt]

Trains (or loads from the model cache, ``vae_core.checkpoint``) exactly the models of
notebook 05 -- same data, configs and names (``course.nb05_disentangle.sprite_*_config``)
-- so after the notebook has run in full mode this only evaluates. MIG variant:
disentanglement_lib's (encoder means, 20 equal-width bins, plug-in MI normalised by
factor entropy, all five factors), on the first 10,000 training sprites.
Writes a plain-text table with the machine, command and date.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402,F401  (puts the repository root on sys.path, for course/)
from course import nb05_disentangle as nb05  # noqa: E402
from vae_core import sprites  # noqa: E402
from vae_core.checkpoint import train_or_load  # noqa: E402
from vae_core.config import describe_setup, pick  # noqa: E402
from vae_core.metrics import mig_ceiling  # noqa: E402


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "mig.txt"))
    args = ap.parse_args(argv)
    # the notebook's settings (keep in sync with notebooks/05_beta_vae_disentanglement.ipynb)
    size = 32
    n_sprites = pick(full=30000, smoke=2048)
    betas = pick(full=(1, 4, 8, 16), smoke=(1, 8))
    seeds = pick(full=(0, 1, 2), smoke=(0,))
    epochs = pick(full=4, smoke=1)
    start = time.perf_counter()
    data = sprites.make_sprites(n_sprites, size=size, seed=0)
    cfg = nb05.sprite_model_config(size)
    results = {}
    for beta in betas:
        for seed in seeds:
            results[beta, seed] = train_or_load(f"05_sprites{size}_beta{beta:g}_seed{seed}", cfg,
                                                nb05.sprite_train_config(beta, seed, epochs),
                                                data.images, data.images[:2000], progress=False)
    n_eval = min(10000, n_sprites)
    rows = nb05.mig_table(results, data.images[:n_eval], data.factors[:n_eval])
    ceiling = mig_ceiling(data.factors[:n_eval]).score
    train_s = sum(sum(r.history["seconds"]) for r in results.values())
    text = "\n".join([
        "# MIG against beta: conv beta-VAE on procedural sprites (vae_core.sprites, dSprites factor grid)",
        f"date:    {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"command: VAE_SMOKE={'1' if n_sprites == 2048 else '0'} python benchmarks/mig.py",
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, {describe_setup().splitlines()[2].strip()}",
        f"data:    {n_sprites} sprites {size}x{size} (seed 0); MIG on the first {n_eval}",
        f"model:   conv 4x(4x4 stride 2) {cfg.conv_channels}, Dense {cfg.hidden}, {cfg.latent_dim} latents, "
        f"Bernoulli; Adam 1e-3, batch 64, {epochs} epochs ({epochs * (n_sprites // 64)} steps)",
        "MIG:     disentanglement_lib variant: encoder means, 20 equal-width bins, "
        "sklearn mutual_info_score, / H(factor), all 5 factors",
        f"ceiling: a perfect code scores {ceiling:.3f} with 20 bins on this sample",
        f"training time summed over models (from checkpoints): {train_s:.0f} s; this script: "
        f"{time.perf_counter() - start:.0f} s",
        "",
        nb05.format_mig_table(rows, sprites.FACTOR_NAMES),
        "",
    ])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main(sys.argv[1:])
