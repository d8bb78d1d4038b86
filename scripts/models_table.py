"""Write MODELS.md from the shipped models' cards (vae_core/shipped_models/cards.json).

    python scripts/models_table.py          # rewrite MODELS.md
    python scripts/models_table.py --check  # exit 1 if MODELS.md is not up to date
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vae_core import shipped  # noqa: E402

HEADER = """# Shipped models

The models the notebooks load in full mode, trained once and stored in
`vae_core/shipped_models/` (parameters as float16; the card of each, with every field
below and more, is in `vae_core/shipped_models/cards.json`). A notebook loads one when it
asks for exactly its model and training configs on the same data, checks its SHA-256, and
prints one line saying what it loaded. `VAE_RETRAIN=1` trains from scratch instead.

- **test ELBO**: one sample per image, measured on the stored float16 weights; in brackets
  the same number for the float32 weights before storing, so the cost of float16 is shown.
  MNIST models: the 10,000 test images binarized once (key `TEST_BINARIZATION_SEED` = 2015).
  Sprite models: the first 2,000 sprites of notebook 05's procedural set (binary already),
  which they were also trained on. For an autoencoder the number is log p(x|z) alone.
- **log p(x)**: importance-sampled with k samples on all 10,000 test images (± standard
  error), added by `python scripts/measure_shipped.py` (about 2 minutes a model on a 2-core
  CPU); "—" where it has not been measured yet. It is the importance-weighted bound L_k with
  the encoder as proposal, so it is tight only when q(z|x) covers the posterior. The β = 0
  models' encoders shrank their noise to almost nothing: their L_5000 is only 8–14 nats
  above their ELBO and says little about how good their decoders are. For the Gaussian-decoder models it is a log *density* of the
  grey test images (continuous pixels), not comparable with the binary models' nats.
  **MIG** for the sprite models: on the first 10,000 sprites.
- **Rebuild** a notebook's models with `python scripts/ship_models.py NN --from-scratch`
  (resumable model by model), a long run with `python scripts/train_shipped.py NAME`
  (resumable in chunks); each card records the command.

This file is generated: `python scripts/models_table.py` (a test checks it is current).

"""


def render() -> str:
    return HEADER + shipped.models_table(shipped.load_cards())


if __name__ == "__main__":
    path = ROOT / "MODELS.md"
    if "--check" in sys.argv:
        sys.exit(0 if path.exists() and path.read_text() == render() else 1)
    path.write_text(render())
    print(f"wrote {path}")
