"""The models shipped in vae_core/shipped_models/: every card matches its file, every file
reproduces its recorded test ELBO, MODELS.md is current, and they fit the 40 MB budget."""
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from vae_core import shipped, sprites
from vae_core.checkpoint import conditional_test_metrics, fixed_test_set, load_shipped, load_shipped_conditional
from vae_core.data import load_mnist
from vae_core.evaluate import evaluate
from vae_core.train import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
CARDS = shipped.load_cards()
CONDITIONAL = sorted(name for name, card in CARDS.items() if card.get("kind") == "conditional")
PLAIN = sorted(set(CARDS) - set(CONDITIONAL))
BUDGET_MB = 40


def test_every_shipped_file_has_a_card_and_every_card_a_file():
    files = {p.stem for p in shipped.SHIPPED_DIR.glob("*.msgpack")}
    assert files == set(CARDS)
    assert CARDS, "no shipped models"


def test_shipped_models_fit_the_budget():
    total = sum(p.stat().st_size for p in shipped.SHIPPED_DIR.iterdir()) / 2**20
    assert total <= BUDGET_MB, f"shipped models take {total:.1f} MB"


def test_models_md_is_current():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "models_table.py"), "--check"])
    assert done.returncode == 0, "MODELS.md is out of date: run python scripts/models_table.py"


def test_every_card_says_what_the_model_is():
    for name, card in CARDS.items():
        assert card["purpose"] and card["notebook"] and card["command"] and card["device"], name
        assert card["stored_dtype"] == "float16" and card["epochs"] >= 1, name
        assert abs(card["test_elbo"] - card["test_elbo_float32"]) < 0.05, name  # what float16 costs


@pytest.fixture(scope="module")
def test_sets():
    """The test sets the shipped models were measured on, by fingerprint."""
    mnist = load_mnist()
    sets = [mnist.x_test]
    if any(CARDS[name]["train_shape"][1] == 32 * 32 for name in PLAIN):
        sets.append(sprites.make_sprites(30000, size=32, seed=0).images[:2000])
    return {shipped.data_fingerprint(x): x for x in sets}


@pytest.mark.parametrize("name", PLAIN)
def test_shipped_model_reproduces_its_test_elbo(name, test_sets):
    card = CARDS[name]
    result = load_shipped(name)            # SHA-256 checked against the card
    assert card["test_data"] in test_sets, f"{name}: its test set is not one this test can rebuild"
    x = fixed_test_set(test_sets[card["test_data"]], result.train_config)
    elbo = float(evaluate(result.model, x, jax.random.PRNGKey(shipped.LOGPX_SEED))["elbo"])
    assert abs(elbo - card["test_elbo"]) < 0.05, f"{name}: {elbo:.3f} vs recorded {card['test_elbo']:.3f}"


@pytest.mark.parametrize("name", CONDITIONAL)
def test_shipped_conditional_model_reproduces_its_numbers(name):
    card = CARDS[name]
    result = load_shipped_conditional(name)  # SHA-256 checked against the card
    mnist = load_mnist()
    n = card["test_images"]
    assert card["test_data"] == shipped.data_fingerprint(mnist.x_test[:n]), f"{name}: not measured on MNIST's test set"
    got = conditional_test_metrics(result.model, card["spec"]["task"], mnist.x_test[:n], mnist.y_test[:n],
                                   TrainConfig.from_dict(card["train_config"]))
    assert abs(got["test_elbo"] - card["test_elbo"]) < 0.05, f"{name}: {got['test_elbo']:.3f} vs {card['test_elbo']:.3f}"
    if "test_error" in card:
        assert abs(got["test_error"] - card["test_error"]) < 1e-3, name
