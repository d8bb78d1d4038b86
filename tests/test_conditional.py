"""vae_core.conditional: the conditional VAE and M2 on small models and toy data."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax import nnx

from vae_core.conditional import (CompletionNet, ConditionalConfig, build_conditional, classify,
                                  completion_log_likelihood, conditional_elbo_terms, conditional_log_likelihood,
                                  decode_conditional, expected_bound, join_images, label_bounds, m2_loss,
                                  m2_unlabelled_bound, observed_mask, one_hot, split_images, train_completion_net,
                                  train_classifier, train_conditional, train_m2)
from vae_core.objectives import bernoulli_log_likelihood
from vae_core.train import TrainConfig

CVAE = ConditionalConfig(target_dim=16, cond_dim=2, latent_dim=2, hidden=(32,))
M2 = ConditionalConfig(target_dim=16, cond_dim=2, latent_dim=2, hidden=(32,), n_classes=2, classifier_hidden=(16,))


@pytest.fixture(scope="module")
def toy():
    """Two classes of 16-pixel images: class 0 lights the first half, class 1 the second."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    x = np.full((400, 16), 0.03, np.float32)
    x[y == 0, :8] = 0.95
    x[y == 1, 8:] = 0.95
    return x, y, (rng.random(x.shape) < x).astype(np.float32)  # grey levels, labels, one binarization


def test_config_and_labels_are_checked():
    with pytest.raises(ValueError, match="latent_dim must be >= 1"):
        ConditionalConfig(latent_dim=0)
    with pytest.raises(ValueError, match="cond_dim .* must equal n_classes"):
        ConditionalConfig(cond_dim=5, n_classes=10)
    with pytest.raises(ValueError, match="n_classes must be 0"):
        ConditionalConfig(cond_dim=1, n_classes=1)
    with pytest.raises(ValueError, match="activation"):
        ConditionalConfig(activation="gelu")
    np.testing.assert_array_equal(one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match="lie in 0..2"):
        one_hot(np.array([3]), 3)
    with pytest.raises(ValueError, match="1-d integer"):
        one_hot(np.array([0.5]), 3)


def test_shapes_and_the_one_sample_elbo(toy):
    _, y, xb = toy
    m = build_conditional(M2, 0)
    t, c = jnp.asarray(xb[:5]), jnp.asarray(one_hot(y[:5], 2))
    post = m.encode(t, c)
    assert post.mean.shape == post.log_diag.shape == (5, 2) and post.offdiag is None
    z = jax.random.normal(jax.random.PRNGKey(0), (7, 5, 2))
    assert m.decoder_output(z, c).shape == (7, 5, 16)  # one condition per image, broadcast over draws
    assert m.classify(t).shape == (5, 2)
    terms = conditional_elbo_terms(m, t, c, jax.random.PRNGKey(1))
    np.testing.assert_allclose(terms["elbo"], terms["rec"] - terms["kl"], rtol=1e-6)
    assert np.all(np.asarray(terms["kl"]) >= 0) and np.all(np.asarray(terms["rec"]) <= 0)
    other = conditional_elbo_terms(m, t, 1 - c, jax.random.PRNGKey(1))
    assert not np.allclose(terms["rec"], other["rec"])  # the condition reaches the decoder
    with pytest.raises(ValueError, match="no classifier"):
        build_conditional(CVAE, 0).classify(t)
    with pytest.raises(ValueError, match="needs an M2 model"):
        build_conditional(CVAE, 0).encode_each_label(t)


def test_the_expected_bound_is_below_logsumexp_and_reaches_it_at_the_best_classifier():
    bounds = jax.random.normal(jax.random.PRNGKey(0), (6, 4)) * 5 - 100
    logits = jax.random.normal(jax.random.PRNGKey(1), (6, 4))
    q = jax.nn.softmax(logits)
    manual = jnp.sum(q * bounds, -1) - jnp.sum(q * jnp.log(q), -1)  # E_q[L] + H(q)
    np.testing.assert_allclose(expected_bound(bounds, logits), manual, rtol=1e-6)
    lse = jax.nn.logsumexp(bounds, -1)
    assert np.all(np.asarray(expected_bound(bounds, logits)) < np.asarray(lse))
    np.testing.assert_allclose(expected_bound(bounds, bounds + 3.0), lse, rtol=1e-6)  # q proportional to exp L


def test_m2_bounds_on_a_model(toy):
    _, y, xb = toy
    m = build_conditional(M2, 0)
    x, key = jnp.asarray(xb[:8]), jax.random.PRNGKey(2)
    with jax.default_matmul_precision("float32"):
        L = label_bounds(m, x, key)
    assert L.shape == (8, 2)
    # q(z | x, y) for all labels in one pass equals one encode per label (float32 matmuls: a GPU's
    # default TF32 would round the two paths differently)
    with jax.default_matmul_precision("float32"):
        each = m.encode_each_label(x)
        for k in range(2):
            post = m.encode(x, jnp.asarray(one_hot(np.full(8, k), 2)))
            np.testing.assert_allclose(each.mean[k], post.mean, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(each.log_diag[k], post.log_diag, rtol=1e-5, atol=1e-5)
    # L(x, y) = ELBO(x | y) + log p(y) at z = mean + sigma eps, eps the draw label_bounds makes
    eps = jax.random.normal(key, each.mean.shape)
    c1 = jnp.asarray(one_hot(np.ones(8, int), 2))
    z1 = each.mean[1] + jnp.exp(0.5 * each.log_diag[1]) * eps[1]
    with jax.default_matmul_precision("float32"):
        rec = bernoulli_log_likelihood(m.decoder_output(z1, c1), x)
    kl = 0.5 * jnp.sum(jnp.exp(each.log_diag[1]) + each.mean[1] ** 2 - 1 - each.log_diag[1], -1)
    np.testing.assert_allclose(L[:, 1], rec - kl - jnp.log(2.0), rtol=1e-5)
    U = m2_unlabelled_bound(m, x, key)
    assert np.all(np.asarray(U) <= np.asarray(jax.nn.logsumexp(L, -1)) + 1e-4)
    loss, aux = m2_loss(m, x[:4], jnp.asarray(one_hot(y[:4], 2)), x[4:], key, alpha=10.0)
    assert np.isfinite(float(loss)) and set(aux) == {"labelled", "unlabelled", "cross_entropy"}
    np.testing.assert_allclose(loss, -aux["labelled"] - aux["unlabelled"] + 10.0 * aux["cross_entropy"], rtol=1e-5)
    paper, _ = m2_loss(m, x[:4], jnp.asarray(one_hot(y[:4], 2)), x[4:], key, alpha=0.1, labelled_weight=0.002)
    np.testing.assert_allclose(paper, -0.002 * aux["labelled"] - aux["unlabelled"] + 0.1 * aux["cross_entropy"],
                               rtol=1e-5)  # the same draws: only the weights differ
    with pytest.raises(ValueError, match="needs an M2 model"):
        label_bounds(build_conditional(CVAE, 0), x, key)


def test_conditional_log_likelihood_matches_quadrature_in_one_latent(toy):
    """With one latent, log p(t | c) = log int p(t | z, c) N(z; 0, 1) dz by quadrature on a fine grid."""
    _, y, xb = toy
    cfg = ConditionalConfig(target_dim=16, cond_dim=2, latent_dim=1, hidden=(8,))
    m = build_conditional(cfg, 3)
    t, c = xb[:4], one_hot(y[:4], 2)
    grid = np.linspace(-9, 9, 6001, dtype=np.float32)
    logits = m.decoder_output(jnp.asarray(grid)[:, None, None] * jnp.ones((1, 4, 1)), jnp.asarray(c))
    log_joint = np.asarray(bernoulli_log_likelihood(logits, jnp.asarray(t)), np.float64) - 0.5 * grid[:, None] ** 2
    exact = np.log(np.trapezoid(np.exp(log_joint - log_joint.max(0)), grid, axis=0)) + log_joint.max(0) - 0.5 * np.log(2 * np.pi)
    est = conditional_log_likelihood(m, t, c, jax.random.PRNGKey(0), k=4000, k_chunk=500, batch_size=3)
    np.testing.assert_allclose(est, exact, atol=0.05)
    with pytest.raises(ValueError, match="multiple of k_chunk"):
        conditional_log_likelihood(m, t, c, jax.random.PRNGKey(0), k=150, k_chunk=100)
    with pytest.raises(ValueError, match="must be >= 1"):
        conditional_log_likelihood(m, t, c, jax.random.PRNGKey(0), k=150, k_chunk=0)
    with pytest.raises(ValueError, match="must be binary"):
        conditional_log_likelihood(m, t * 0.5, c, jax.random.PRNGKey(0), k=10)
    with pytest.raises(ValueError, match="one row per example"):
        conditional_log_likelihood(m, t, c[:3], jax.random.PRNGKey(0), k=10)
    with pytest.raises(ValueError, match="has 3 pixels"):
        conditional_log_likelihood(m, t[:, :3], c, jax.random.PRNGKey(0), k=10)


def test_train_conditional_draws_the_requested_class(toy):
    x, y, _ = toy
    r = train_conditional(build_conditional(CVAE, 1), TrainConfig(epochs=6, batch_size=50, learning_rate=3e-3),
                          x, one_hot(y, 2), progress=False)
    loss = r.history["loss"]
    assert len(loss) == 6 and loss[-1] < loss[0] - 3 and set(r.history) == {"loss", "rec", "kl", "seconds"}
    means = decode_conditional(r.model, np.zeros((2, 2)), one_hot(np.array([0, 1]), 2))  # the prior's centre, each class
    assert means[0, :8].mean() > means[0, 8:].mean() + 0.2 and means[1, 8:].mean() > means[1, :8].mean() + 0.2
    with pytest.raises(ValueError, match="larger than the 400"):
        train_conditional(build_conditional(CVAE, 1), TrainConfig(epochs=1, batch_size=500), x, one_hot(y, 2))
    with pytest.raises(ValueError, match="must be binary"):  # no binarization: a Bernoulli target must be 0/1
        train_conditional(build_conditional(CVAE, 1), TrainConfig(epochs=1, binarize=False), x, one_hot(y, 2))
    with pytest.raises(ValueError, match="fields do not apply .*'beta': 4.0"):
        train_conditional(build_conditional(CVAE, 1), TrainConfig(epochs=1, beta=4.0), x, one_hot(y, 2))
    with pytest.raises(FloatingPointError, match="diverged in epoch 1"):
        train_conditional(build_conditional(CVAE, 1), TrainConfig(epochs=1, batch_size=50, learning_rate=1e10),
                          x, one_hot(y, 2), progress=False)


def test_train_m2_learns_the_classes_from_four_labels(toy):
    x, y, xb = toy
    labelled = np.concatenate([np.flatnonzero(y == 0)[:2], np.flatnonzero(y == 1)[:2]])
    r = train_m2(build_conditional(M2, 0), TrainConfig(epochs=5, batch_size=50, learning_rate=3e-3),
                 x[labelled], y[labelled], x, alpha=10.0, progress=False)
    h = r.history
    assert set(h) == {"loss", "labelled", "unlabelled", "cross_entropy", "seconds"}
    seen = []
    stopped = train_m2(build_conditional(M2, 0), TrainConfig(epochs=5, batch_size=50, learning_rate=3e-3),
                       x[labelled], y[labelled], x, alpha=10.0, progress=False,
                       callback=lambda epoch, model: seen.append((epoch, classify(model, xb[:10]).shape)) or epoch == 2)
    assert seen == [(1, (10,)), (2, (10,))] and len(stopped.history["loss"]) == 2  # True after epoch 2 stops
    assert h["loss"][-1] < h["loss"][0] and h["cross_entropy"][-1] < h["cross_entropy"][0]
    assert (classify(r.model, xb, batch_size=150) == y).mean() > 0.95
    with pytest.raises(ValueError, match="needs an M2 model"):
        train_m2(build_conditional(CVAE, 0), TrainConfig(epochs=1), x[labelled], y[labelled], x, alpha=1.0)
    with pytest.raises(ValueError, match="one label per image"):
        train_m2(build_conditional(M2, 0), TrainConfig(epochs=1), x[labelled], y[labelled][:3], x, alpha=1.0)


def test_train_classifier_learns_from_labels_alone_and_leaves_the_vae(toy):
    x, y, xb = toy
    labelled = np.concatenate([np.flatnonzero(y == 0)[:3], np.flatnonzero(y == 1)[:3]])
    model = build_conditional(M2, 0)
    before = nnx.state(model.decoder)
    r = train_classifier(model, TrainConfig(epochs=30, batch_size=3, learning_rate=3e-3), x[labelled],
                         y[labelled], progress=False)
    assert set(r.history) == {"loss", "seconds"} and len(r.history["loss"]) == 30
    assert r.history["loss"][-1] < 0.1 * r.history["loss"][0]
    assert (classify(r.model, xb, batch_size=150) == y).mean() > 0.95
    after = nnx.state(r.model.decoder)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(before),
                                                     jax.tree_util.tree_leaves(after)))
    with pytest.raises(ValueError, match="needs a model with a classifier"):
        train_classifier(build_conditional(CVAE, 0), TrainConfig(epochs=1), x[labelled], y[labelled])
    with pytest.raises(ValueError, match="one label per image"):
        train_classifier(build_conditional(M2, 0), TrainConfig(epochs=1), x[labelled], y[labelled][:3])


def test_image_parts_split_and_join():
    top, left, quad = (observed_mask(p) for p in ("top", "left", "quadrant"))
    assert top.shape == (784,) and top.sum() == 392 and top[:392].all() and not top[392:].any()
    assert left.reshape(28, 28)[:, :14].all() and left.sum() == 392 and quad.sum() == 196
    assert quad.reshape(28, 28)[:14, :14].all()
    x = np.random.default_rng(0).random((3, 784)).astype(np.float32)
    seen, hidden = split_images(x, quad)
    assert seen.shape == (3, 196) and hidden.shape == (3, 588)
    np.testing.assert_array_equal(join_images(seen, hidden, quad), x)
    with pytest.raises(ValueError, match="part must be one of"):
        observed_mask("bottom")
    with pytest.raises(ValueError, match="must be \\[n, 784\\]"):
        split_images(x[:, :100], quad)
    with pytest.raises(ValueError, match=r"missing \[n, 588\] pixels expected"):
        join_images(seen, hidden[:, :10], quad)


def test_the_regression_completes_the_toy_images(toy):
    x, _, xb = toy
    mask = np.arange(16) < 8
    cfg = ConditionalConfig(target_dim=8, cond_dim=8, latent_dim=1, hidden=(16,))
    seen, hidden = split_images(x, mask)
    net = CompletionNet(cfg, rngs=nnx.Rngs(params=0))
    r = train_completion_net(net, TrainConfig(epochs=5, batch_size=50, learning_rate=1e-2), hidden, seen,
                             progress=False)
    assert r.history["loss"][-1] < r.history["loss"][0] - 1 and set(r.history) == {"loss", "seconds"}
    seen_b, hidden_b = split_images(xb, mask)
    ll = completion_log_likelihood(r.model, hidden_b, seen_b)
    manual = np.asarray(bernoulli_log_likelihood(r.model(jnp.asarray(seen_b)), jnp.asarray(hidden_b)))
    np.testing.assert_allclose(ll, manual, rtol=1e-6)
    lit = np.asarray(jax.nn.sigmoid(r.model(jnp.asarray([[1.0] * 8, [0.0] * 8]))))
    assert lit[0].mean() < 0.3 < 0.7 < lit[1].mean()  # first half lit -> second half dark, and the reverse
    with pytest.raises(ValueError, match="one row per example"):
        completion_log_likelihood(r.model, hidden_b, seen_b[:5])
