"""vae_core: the models, objectives, training and plots of the VAE course.

One module per concern, each readable top to bottom:
  config      smoke/full mode and the device report
  data        MNIST loading, checksums, dynamic binarization
  models      encoders, decoders, VAE / autoencoder (Flax Linen)
  objectives  log-likelihoods, KL, ELBO, importance-weighted bound, schedules
  train       one jitted lax.scan per epoch (conv on CPU: a jitted step per batch), history, NaN checks
  evaluate    test ELBO, log p(x) by importance sampling, active units, encode/decode
  checkpoint  atomic checkpoints and the model cache
  plots       image grids, training curves, latent scatters
  toy         a linear-Gaussian model with exact log p(x), posterior and ELBO
  widgets     latent explorers (sliders, 2-d pad, interpolation, traversals)
and one helper module per notebook: gaps (01), elbo_demo (02), gradients (03),
analysis (04), sprites and disentangle (05), embedding (06).
"""
__version__ = "0.1.0"
