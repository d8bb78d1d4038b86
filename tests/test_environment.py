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


SUPPORTED_PYTHONS = ["3.11", "3.12", "3.13", "3.14"]
# where students run the course: Linux (Colab, servers) for every version, and an Apple-silicon Mac
RESOLVE = [(v, "x86_64-manylinux_2_28") for v in SUPPORTED_PYTHONS] + [("3.12", "aarch64-apple-darwin")]


def test_supported_pythons_are_declared_the_same_everywhere():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'requires-python = ">=3.11,<3.15"' in pyproject
    finder = (ROOT / "scripts" / "find_python.sh").read_text()
    assert "(3, 11) <= sys.version_info[:2] <= (3, 14)" in finder
    assert all(f"python{v}" in finder for v in SUPPORTED_PYTHONS)


def test_find_python_names_the_versions_when_given_an_unsupported_one(tmp_path):
    import subprocess

    fake = tmp_path / "python3.10"
    fake.write_text("#!/bin/sh\necho 'Python 3.10.4'\nexit 1\n")
    fake.chmod(0o755)
    done = subprocess.run(["bash", str(ROOT / "scripts" / "find_python.sh")], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": str(fake)})
    assert done.returncode == 1 and "3.11, 3.12, 3.13 and 3.14" in done.stderr, done.stderr
    import sys
    ok = subprocess.run(["bash", str(ROOT / "scripts" / "find_python.sh")], capture_output=True, text=True,
                        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    assert ok.returncode == 0 and ok.stdout.strip() == sys.executable


@pytest.mark.parametrize("python, platform", RESOLVE)
def test_the_pins_resolve_for_every_supported_python(python, platform, tmp_path):
    """uv resolves requirements.lock's exact pins for that Python and platform (wheels included).

    A platform may add its own small dependencies (a Mac adds ``appnope`` for ipykernel); no pin changes.
    """
    import subprocess
    import sys

    from vae_core.files import can_connect

    if can_connect("pypi.org", 443) is not None:
        pytest.skip("PyPI is not reachable: the resolver needs the package index")
    uv = Path(sys.executable).parent / "uv"
    out = tmp_path / "resolved.txt"
    done = subprocess.run([str(uv), "pip", "compile", "-q", "--python-version", python, "--python-platform", platform,
                           "--no-header", "--no-annotate", str(ROOT / "requirements.lock"), "-o", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"the pins do not resolve for Python {python} on {platform}:\n{done.stderr[-2000:]}"
    resolved = {_norm(n): v for n, v in (l.split("==") for l in out.read_text().split() if "==" in l)}
    lock = _lock()
    changed = {n: (v, resolved.get(n)) for n, v in lock.items() if resolved.get(n) != v}
    assert not changed, f"resolving the pins changed them (lock, resolved): {changed}"
