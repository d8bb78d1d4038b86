"""The pins agree everywhere: requirements.lock, environment.yml and this environment."""
import re
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock() -> dict:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[_norm(name)] = version
    return pins


def test_every_direct_dependency_is_pinned():
    lock = _lock()
    direct = [l.split("#")[0].strip() for l in (ROOT / "requirements.in").read_text().splitlines()]
    missing = [d for d in direct if d and _norm(d) not in lock]
    assert not missing, f"not pinned in requirements.lock (run `make lock`): {missing}"


def test_environment_yml_agrees_with_lock():
    text = (ROOT / "environment.yml").read_text()
    lock = _lock()
    pins = re.findall(r"^\s*-\s*([A-Za-z0-9_.\-]+)==([^\s#]+)", text, re.M)
    assert len(pins) >= 10, "environment.yml lists the course's direct dependencies with pins"
    wrong = {n: (v, lock.get(_norm(n))) for n, v in pins if lock.get(_norm(n)) != v}
    assert not wrong, f"environment.yml pins differ from requirements.lock (yml, lock): {wrong}"
    assert "- -r requirements.lock" in text, "environment.yml installs the full lock"
    py = re.search(r"python=(\d+\.\d+)", text).group(1)
    assert py == "3.11"


def test_installed_versions_match_lock():
    lock = _lock()
    for name in ["jax", "jaxlib", "flax", "optax", "numpy", "tensorflow-datasets", "matplotlib",
                 "ipywidgets", "nbval", "scikit-learn"]:
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:  # pragma: no cover - reported below
            pytest.fail(f"{name} is pinned but not installed: run `make env`")
        assert installed == lock[_norm(name)], f"{name}: installed {installed}, lock {lock[_norm(name)]}"


def test_makefile_and_ci_use_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
