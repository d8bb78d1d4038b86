"""course: the notebooks' own helpers, one module per notebook.

  nb01_gaps          notebook 01
  nb02_elbo          notebook 02
  nb03_gradients     notebook 03
  nb04_bernoulli     notebook 04
  nb05_disentangle   notebook 05
  nb06_embedding     notebook 06

Each module imports the engine (``vae_core``) and never another course module;
notebook NN imports only ``course.nbNN_*`` and ``vae_core``. Whatever two notebooks
need lives in ``vae_core``.
"""
