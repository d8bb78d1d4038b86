"""vae_core: the engine of the VAE course — data, models, objectives, training,
evaluation, metrics, checkpoints, plots and widgets.

One module per concern, each readable top to bottom (lowest layer first):
  config      smoke/full mode and the device report
  files       atomic writes and the one network probe
  rng         jax.random's draws (bits, uniform, Bernoulli, normal), bit for bit, in one fused pass
  data        MNIST loading, checksums, dynamic binarization, input checks
  sprites     the procedural dSprites stand-in (and TFDS dSprites when prepared)
  models      encoders, decoders, VAE / autoencoder (Flax NNX); parameters <-> arrays
  toy         a linear-Gaussian model with exact log p(x), posterior and ELBO
  objectives  log-likelihoods, KL, ELBO, importance-weighted bound, the training loss
  parallel    minibatches split across local devices (1-D mesh, JAX sharding)
  evaluate    test ELBO, log p(x) by importance sampling, encode / decode / reconstruct
  metrics     active units, MIG, k-NN accuracy, trustworthiness, a judge of decoded digits
  train       one jitted lax.scan per epoch, history, NaN checks, per-epoch callback, resume
  conditional conditional VAE (generation on demand, completion) and M2 (semi-supervised)
  checkpoint  atomic checkpoints, resumable training and the model cache
  shipped     the trained models that ship with the course: cards, checked loading, MODELS.md
  plots       image grids, training curves, latent scatters, tables
  widgets     latent explorers (sliders, 2-d pad, interpolation, traversals) on one base class
  exercises   the verdict of a self-checking exercise (Correct / Not yet + hint)

The notebooks' own helpers live beside this package in ``course/`` (one file per
notebook); they import vae_core, and vae_core never imports them. Everything listed in
``__all__`` below (and in each module's ``__all__``) is the public API. The functions
``train`` and ``evaluate`` are imported from their modules (``from vae_core.train import
train``): re-exported here they would hide the modules of the same name.
"""
__version__ = "0.2.0"

from .checkpoint import (CheckpointError, load_checkpoint, save_checkpoint, train_or_load,  # noqa: E402
                         train_resumable)
from .config import describe_setup, pick, smoke_mode  # noqa: E402
from .data import MNIST, binarize, check_images, load_mnist  # noqa: E402
from .evaluate import (decode_mean, elbo_per_example, encode, log_marginal_likelihood,  # noqa: E402
                       reconstruct, sample_prior)
from .metrics import active_units, knn_accuracy, mig, trustworthiness  # noqa: E402
from .models import VAE, ModelConfig, Posterior, build_model, sample_posterior  # noqa: E402
from .objectives import elbo_terms, iwae_bound, kl_divergence, training_loss  # noqa: E402
from .plots import format_table, image_grid, plot_history, save_figure, scatter_latents, tile_images  # noqa: E402
from .train import TrainConfig, TrainResult  # noqa: E402

__all__ = [
    "__version__",
    "ModelConfig", "VAE", "Posterior", "build_model", "sample_posterior",
    "TrainConfig", "TrainResult", "train_or_load", "train_resumable",
    "save_checkpoint", "load_checkpoint", "CheckpointError",
    "elbo_terms", "iwae_bound", "kl_divergence", "training_loss",
    "elbo_per_example", "log_marginal_likelihood", "encode", "decode_mean", "reconstruct",
    "sample_prior", "active_units", "mig", "knn_accuracy", "trustworthiness",
    "MNIST", "load_mnist", "binarize", "check_images",
    "describe_setup", "pick", "smoke_mode",
    "image_grid", "tile_images", "plot_history", "scatter_latents", "save_figure", "format_table",
]
