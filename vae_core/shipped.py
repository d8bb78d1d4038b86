"""Trained models shipped with the course, their cards, and how they were made.

Each shipped model is a checkpoint ``vae_core/shipped_models/<name>.msgpack`` (the sealed
format of :mod:`vae_core.checkpoint`, parameters stored as float16 to halve the size) and
a card in ``vae_core/shipped_models/cards.json``: the configs and the data it was trained
on (a fingerprint), the file's SHA-256, what it is for, the command that rebuilds it, the
device, epochs and wall time of its training, the MNIST checksum, and metrics measured on
the stored weights. ``MODELS.md`` is the cards as a table (``scripts/models_table.py``).

:func:`vae_core.checkpoint.train_or_load` looks here first: a card with the same model
config, training config and training data means the notebook gets the shipped model
(checksum verified) instead of training one. ``VAE_RETRAIN=1`` trains from scratch.

Two kinds of shipped model, two ways to rebuild one:

* a notebook's own models: ``python scripts/ship_models.py 04`` runs notebook 04 in full
  mode with ``VAE_SHIP`` set, so every ``train_or_load`` writes its model and card here
  (``--from-scratch`` trains each into a fresh cache; a stopped run resumes by model);
* long runs that no notebook trains, listed in :data:`SPECS` with their configs::

    python scripts/train_shipped.py iwae_protocol_vae --max-minutes 60   # repeat until done
    python scripts/train_shipped.py iwae_protocol_vae --finish           # metrics + card + file
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np

from .files import atomic_write
from .models import ModelConfig
from .train import TrainConfig, TrainResult

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped_models"
TEST_BINARIZATION_SEED = 2015   # the test set is binarized once, with this key, for every metric
LOGPX_SEED = 5000               # key of the importance samples of log p(x)
RETRAIN_ENV = "VAE_RETRAIN"
SHIP_ENV = "VAE_SHIP"           # set (to the notebook's name) by scripts/ship_models.py
STORED_DTYPE = "float16"


@dataclasses.dataclass(frozen=True)
class ShippedSpec:
    """name: file stem; purpose: one line; notebook: where it is used; paper_nll: the
    published number it is compared with (nats), if any."""

    name: str
    model_config: ModelConfig
    train_config: TrainConfig
    purpose: str
    notebook: str
    paper_nll: float | None = None


def iwae_protocol(objective: str = "elbo", k: int = 1) -> tuple[ModelConfig, TrainConfig]:
    """Burda, Grosse & Salakhutdinov (2015), one stochastic layer: 784-200-200-50 tanh,
    Bernoulli output bias = logit(training mean), dynamic binarization, batch 20, Adam
    (b1 0.99, b2 0.999, eps 1e-4), learning rate 1e-3 * 10^(-i/7) for 3^i epochs,
    i = 0..7: 3,280 epochs."""
    model = ModelConfig(latent_dim=50, hidden=(200, 200), activation="tanh")
    stages = tuple((3 ** i, 1e-3 * 10 ** (-i / 7)) for i in range(8))
    train = TrainConfig(epochs=sum(e for e, _ in stages), batch_size=20, learning_rate=1e-3, lr_stages=stages,
                        objective=objective, iwae_k=k, adam_b1=0.99, adam_b2=0.999, adam_eps=1e-4, seed=0,
                        eval_images=1000)
    return model, train


SPECS = {spec.name: spec for spec in [
    ShippedSpec("iwae_protocol_vae", *iwae_protocol("elbo", 1),
                purpose="the IWAE paper's one-stochastic-layer VAE (k = 1), trained to the paper's budget",
                notebook="04", paper_nll=86.76),
    ShippedSpec("iwae_protocol_iwae50", *iwae_protocol("iwae", 50),
                purpose="the same network trained with the IWAE bound, k = 50",
                notebook="04", paper_nll=84.78),
]}

# What each notebook model is for (MODELS.md's first column); the configs live in the notebooks.
PURPOSES = {
    "01_ae_2d": "plain autoencoder with a 2-d code: the gaps in its latent space",
    "01_vae_2d": "VAE with a 2-d code, same network: a latent space with no gaps",
    "04_main_L20": "the notebook's main VAE (20 latents): samples, reconstructions, explorers",
    "04_sweep_L2": "latent-size sweep, 2 latents: the 2-d manifold",
    "04_sweep_L5": "latent-size sweep, 5 latents",
    "04_sweep_L10": "latent-size sweep, 10 latents",
    "04_sweep_L20": "latent-size sweep, 20 latents",
    "04_sweep_L50": "latent-size sweep, 50 latents (also the beta = 1 run of the KL study)",
    "04_warmup_L50": "KL warm-up 0 -> 1: active units against beta = 1 from the start",
    "04_beta0_L50": "beta = 0 (a noisy autoencoder): what the KL term buys",
    "04_denoise_flip": "denoising VAE: inputs with 10 % of pixels flipped, clean targets",
    "04_denoise_mask": "denoising VAE: inputs with a 10x10 square blanked, clean targets",
    "04_gauss_sigma1.0": "Gaussian decoder, sigma = 1 (MSE + KL): the KL term wins, latents collapse",
    "04_gauss_sigma0.1": "Gaussian decoder, sigma = 0.1: reconstruction weighs 100x more",
    "04_gauss_learned": "Gaussian decoder with a learned sigma per pixel",
    "05_mnist_beta0.5": "beta-VAE on MNIST, beta = 0.5: traversals and KL per latent",
    "05_mnist_beta1": "beta-VAE on MNIST, beta = 1",
    "05_mnist_beta2": "beta-VAE on MNIST, beta = 2",
    "05_mnist_beta4": "beta-VAE on MNIST, beta = 4",
    "05_mnist_beta8": "beta-VAE on MNIST, beta = 8",
    "05_mnist_beta16": "beta-VAE on MNIST, beta = 16",
    "05_sprites32_capacity_seed0": "capacity-annealed objective (Burgess et al.), C -> 12 nats",
    "06_ae": "autoencoder codes for t-SNE",
    "06_vae_beta0": "VAE beta = 0 codes for t-SNE",
    "06_vae_beta1": "VAE beta = 1 codes for t-SNE",
    "06_vae_beta4": "beta-VAE beta = 4 codes for t-SNE",
}
PURPOSES.update({
    "07_cvae_label": "conditional VAE given the digit label: generation on demand, one style as every digit",
    "07_complete_top": "conditional VAE given the top half: completions of the bottom half",
    "07_regress_top": "regression from the top half to the bottom half: the deterministic completion",
    **{f"07_m2_draw{d}": f"M2 (semi-supervised) with 100 labels, label draw {d}" for d in range(3)},
})
PURPOSES.update({f"05_sprites32_beta{b}_seed{s}": f"conv beta-VAE on sprites, beta = {b}, seed {s}: MIG"
                 for b in (1, 4, 8, 16) for s in (0, 1, 2)})


CARDS_FIX = ("Restore it with `git checkout -- vae_core/shipped_models/cards.json`, or set "
             f"{RETRAIN_ENV}=1 to train every model from scratch instead.")


def cards_path() -> Path:
    """Where the cards of the shipped models are: ``SHIPPED_DIR/cards.json``."""
    return SHIPPED_DIR / "cards.json"


def load_cards(*, warn_if_missing: bool = True) -> dict:
    """{name: card} of every shipped model ({} when none is shipped).

    A damaged cards.json raises ValueError naming the file and the fix; a missing one while
    model files are there warns (every notebook would then train its models)."""
    path = cards_path()
    if not path.exists():
        if warn_if_missing and any(SHIPPED_DIR.glob("*.msgpack")):
            warnings.warn(f"{path} is missing, so the shipped models in {SHIPPED_DIR} cannot be used and the "
                          f"notebooks will train theirs. {CARDS_FIX}", stacklevel=2)
        return {}
    try:
        cards = json.loads(path.read_text())
        if not isinstance(cards, dict) or not all(isinstance(c, dict) and "name" in c for c in cards.values()):
            raise ValueError("not a mapping of model names to cards")
    except ValueError as err:
        raise ValueError(f"The shipped models' cards {path} are damaged ({err}). {CARDS_FIX}") from err
    return cards


def write_card(card: dict) -> None:
    """Add or replace one card (keyed by card['name']) in cards.json, atomically."""
    cards = load_cards(warn_if_missing=False)
    cards[card["name"]] = card
    atomic_write(cards_path(), (json.dumps(dict(sorted(cards.items())), indent=1) + "\n").encode())


def remove_card(name: str) -> None:
    """Drop the card of ``name`` from cards.json (its file is the caller's to remove)."""
    cards = load_cards(warn_if_missing=False)
    cards.pop(name, None)
    atomic_write(cards_path(), (json.dumps(dict(sorted(cards.items())), indent=1) + "\n").encode())


def data_fingerprint(x) -> str:
    """A short SHA-256 of a data set x: [n, D]: its shape and every 61st row, as float32.
    Tells MNIST from sprites and a 10,000-image subset from the full training set; a change
    to rows it does not read goes unseen (it identifies a data set, it does not verify one)."""
    x = np.asarray(x)
    rows = np.ascontiguousarray(x[::61], dtype=np.float32)
    return hashlib.sha256(repr(x.shape).encode() + rows.tobytes()).hexdigest()[:16]


def _same_configs(card: dict, model_config: ModelConfig, train_config: TrainConfig) -> bool:
    try:  # through from_dict, so a config field added later (with its default) still matches
        return (ModelConfig.from_dict(card["model_config"]) == model_config
                and TrainConfig.from_dict(card["train_config"]) == train_config)
    except (TypeError, ValueError, KeyError):  # a card of a field that no longer exists
        return False


def find_card(model_config: ModelConfig, train_config: TrainConfig, x_train) -> dict | None:
    """The card of the shipped model trained with exactly these configs on this data
    (x_train: [n, D], compared by :func:`data_fingerprint`), or None."""
    fingerprint = None
    for card in load_cards().values():
        if _same_configs(card, model_config, train_config):
            fingerprint = fingerprint or data_fingerprint(x_train)
            if card["train_data"] == fingerprint:
                return card
    return None


def find_conditional_card(config: dict, train_config: TrainConfig, train_data: list, spec: dict) -> dict | None:
    """The card of the shipped conditional model (:mod:`vae_core.conditional`) with exactly this
    config (``dataclasses.asdict`` of a ConditionalConfig), training config, training data
    (fingerprints of its arrays, in order) and settings outside the configs (``spec``), or None."""
    from .conditional import ConditionalConfig

    def as_config(d: dict):  # through the class, so a field added later (with its default) still matches
        return ConditionalConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    wanted_spec = json.loads(json.dumps(spec, default=str))
    for card in load_cards().values():
        if card.get("kind") != "conditional":
            continue
        try:
            same = (TrainConfig.from_dict(card["train_config"]) == train_config
                    and as_config(card["config"]) == as_config(config))
        except (TypeError, ValueError, KeyError):  # a card of a field that no longer exists
            same = False
        if same and card["train_data"] == list(train_data) and card["spec"] == wanted_spec:
            return card
    return None


def shipped_path(name: str) -> Path:
    """The file of the shipped model ``name``: ``SHIPPED_DIR/<name>.msgpack``."""
    return SHIPPED_DIR / f"{name}.msgpack"


def rebuild_command(name: str, notebook: str | None = None) -> str:
    """The command that rebuilds the shipped model ``name`` from scratch: train_shipped.py
    for a long run in :data:`SPECS`, else ship_models.py for its notebook (``notebook``, a
    name starting with the notebook's number; default: the model name's first two characters)."""
    if name in SPECS:
        return f"python scripts/train_shipped.py {name} (repeat until done), then --finish"
    return f"python scripts/ship_models.py {(notebook or name)[:2]} --from-scratch"


def ship_requested() -> str | None:
    """The notebook name in ``VAE_SHIP`` (set by scripts/ship_models.py), or None."""
    return os.environ.get(SHIP_ENV, "").strip() or None


def logpx_is_density(card: dict) -> bool:
    """True when a card's test_logpx is a Gaussian decoder's log density of grey pixels
    (continuous, in nats per image but not comparable with a Bernoulli model's log p(x))."""
    return card.get("model_config", {}).get("likelihood") == "gaussian"


def describe(result) -> str:
    """One line on what was loaded (a TrainResult whose extra is its card, or a card), e.g. 'shipped model iwae_protocol_vae: 3,280 epochs on
    NVIDIA H200 (41 min), test log p(x) -86.50 nats (k = 5000, 10,000 images)'."""
    card = result if isinstance(result, dict) else result.extra
    epochs = card.get("epochs")
    epochs = f"{epochs:,}" if isinstance(epochs, int) else "?"  # a card without it still prints
    seconds = card.get("train_seconds", 60 * card.get("train_minutes", float("nan")))
    took = f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.0f} min"
    parts = [f"shipped model {card.get('name', '?')}: {epochs} epochs on {card.get('device', '?')} ({took})"]
    if "test_logpx" in card:
        what = "log density of the grey images" if logpx_is_density(card) else "log p(x)"
        parts.append(f"test {what} {card['test_logpx']:.2f} nats (k = {card['logpx_k']}, "
                     f"{card['logpx_images']:,} images)")
    if "test_error" in card:
        parts.append(f"test error {100 * card['test_error']:.2f} %")
    if "test_elbo" in card and card.get("kind") == "conditional":
        parts.append(f"test {card['test_metric']} {card['test_elbo']:.2f} nats")
    elif "test_elbo" in card:
        autoencoder = card.get("model_config", {}).get("deterministic", False)
        parts.append(f"test {'log p(x|z)' if autoencoder else 'ELBO'} {card['test_elbo']:.2f} nats")
    return ", ".join(parts)


def _architecture(m: dict) -> str:
    side = "x".join(map(str, m["image_shape"]))
    if m["architecture"] == "conv":
        net = f"conv {'-'.join(map(str, m['conv_channels']))} on {side}"
    else:
        net = f"MLP {'-'.join(map(str, m['hidden']))} {m['activation']}"
    kind = "AE" if m["deterministic"] else f"{m['likelihood']} VAE"
    return f"{kind}, {net}, {m['latent_dim']} latents"


def _objective(t: dict, m: dict) -> str:
    if m["deterministic"]:
        return "reconstruction"
    if t["objective"] == "iwae":
        return f"IWAE bound, k = {t['iwae_k']}"
    if t["objective"] == "capacity":
        return f"capacity C -> {t['capacity_max']:g} nats, gamma = {t['gamma']:g}"
    warm = f", warm-up {t['warmup_epochs']:g} epochs" if t["warmup_epochs"] else ""
    level = t.get("corruption_level") or 0
    noise = {"flip": f"; denoising, {level:.0%} of pixels flipped",
             "mask": f"; denoising, a {level:g}x{level:g} square blanked"}.get(t.get("corruption"), "")
    return f"ELBO, beta = {t['beta']:g}{warm}{noise}"


def _conditional_row(name: str, c: dict) -> str:
    """MODELS.md's row of a conditional model's card (conditional VAE, M2 or completion regression)."""
    m, t, spec = c["config"], c["train_config"], c["spec"]
    net = f"MLP {'-'.join(map(str, m['hidden']))} {m['activation']}"
    if c["model_kind"] == "completion_net":
        arch, objective = f"regression, {net}", "cross-entropy (no latent)"
    elif m["n_classes"]:
        arch = f"M2, {net}, {m['latent_dim']} latents, classifier {'-'.join(map(str, m['classifier_hidden']))}"
        objective = (f"M2 bound, alpha = {spec['alpha']:g}, {spec['labels']} labels (draw {spec['draw']})")
    else:
        arch, objective = f"conditional VAE, {net}, {m['latent_dim']} latents", "conditional ELBO"
    arch += f"; given {spec['task']}"
    budget = f"{c['epochs']:,} epochs, batch {t['batch_size']}, {c['train_shape'][0]:,} images, {c['train_minutes']:g} min"
    elbo = (f"{c['test_metric'].replace('|', chr(92) + '|')} {c['test_elbo']:.2f} ({c['test_images']:,} images; float32 "
            f"{c['test_elbo_float32']:.2f})")
    metric = f"test error {100 * c['test_error']:.2f} %" if "test_error" in c else "—"
    return (f"| `{name}` | {c['notebook']} | {c['purpose']} | {arch} | {objective} | {budget} | {c['device']} | "
            f"{elbo} | {metric} | {c['file_bytes'] / 2**20:.2f} MB |")


def models_table(cards: dict) -> str:
    """MODELS.md's table from ``cards`` ({name: card}, as :func:`load_cards` returns): one
    row per card in name order, the total size, what float16 storage cost, and the notes."""
    head = ("| model | notebook | what it is for | architecture | objective | budget | trained on | "
            "test ELBO (nats) | log p(x) (nats), MIG or test error | file |\n|---|---|---|---|---|---|---|---|---|---|")
    rows = [head]
    for name, c in sorted(cards.items()):
        if c.get("kind") == "conditional":
            rows.append(_conditional_row(name, c))
            continue
        m, t = c["model_config"], c["train_config"]
        n_train = c["train_shape"][0]
        budget = f"{c['epochs']:,} epochs, batch {t['batch_size']}, {n_train:,} images, {c['train_minutes']:g} min"
        elbo = f"{c['test_elbo']:.2f} ({c['test_images']:,} images; float32 {c['test_elbo_float32']:.2f})"
        if m["deterministic"]:  # an autoencoder has no KL term: its "ELBO" is log p(x|z) alone
            elbo = f"log p(x\\|z) {elbo}"
        if "test_logpx" in c and logpx_is_density(c):  # a density of grey pixels, not binary nats
            metric = (f"log density of the grey images {c['test_logpx']:.2f} ± {c['test_logpx_stderr']:.2f} "
                      f"(k = {c['logpx_k']:,}; not comparable with the Bernoulli models' nats)")
        elif "test_logpx" in c:
            metric = f"log p(x) {c['test_logpx']:.2f} ± {c['test_logpx_stderr']:.2f} (k = {c['logpx_k']:,})"
        elif "mig" in c:
            metric = f"MIG {c['mig']:.3f} ({c['mig_images']:,} images)"
        else:
            metric = "—"
        size = f"{c['file_bytes'] / 2**20:.2f} MB"
        rows.append(f"| `{name}` | {c['notebook']} | {c['purpose']} | {_architecture(m)} | {_objective(t, m)} | "
                    f"{budget} | {c['device']}{'*' if 'device_note' in c else ''} | {elbo} | {metric} | {size} |")
    total = sum(c["file_bytes"] for c in cards.values()) / 2**20
    rows.append(f"\n{len(cards)} models, {total:.1f} MB in all.")
    if cards:
        cost = {n: abs(c["test_elbo"] - c["test_elbo_float32"]) for n, c in cards.items()}
        worst = max(cost, key=cost.get)
        rows.append(f"Storing float16 instead of float32 halves the files and moved the test ELBO by "
                    f"{cost[worst]:.4f} nats at most (`{worst}`), {np.mean(list(cost.values())):.4f} on average.")
    notes = sorted({c["device_note"] for c in cards.values() if "device_note" in c})
    rows += [f"\n\\* {note}." for note in notes]
    return "\n".join(rows) + "\n"


def mnist_checksum() -> str:
    """One SHA-256 over the four MNIST arrays' checksums (vae_core.data.SHA256)."""
    from .data import SHA256

    return hashlib.sha256("".join(SHA256[k] for k in sorted(SHA256)).encode()).hexdigest()


__all__ = ["logpx_is_density", "SHIPPED_DIR", "TEST_BINARIZATION_SEED", "LOGPX_SEED", "RETRAIN_ENV", "SHIP_ENV", "STORED_DTYPE",
           "ShippedSpec", "iwae_protocol", "SPECS", "PURPOSES", "CARDS_FIX", "cards_path", "load_cards", "write_card", "remove_card",
           "data_fingerprint", "find_card", "find_conditional_card", "shipped_path", "rebuild_command", "ship_requested",
           "describe", "models_table", "mnist_checksum"]
