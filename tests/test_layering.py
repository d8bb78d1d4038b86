"""The layering rule and the public API, checked on the source files themselves.

* vae_core (the engine) never imports course (the notebooks' helpers);
* each course/nbNN_*.py may import vae_core and imports no other course module;
* notebook NN imports only its own helper course.nbNN_* (and the engine);
* notebooks, tests, benchmarks, scripts and helpers import only public names: names in
  the ``__all__`` of the vae_core module they come from, never ``_private`` ones.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENGINE = sorted((ROOT / "vae_core").glob("*.py"))
HELPERS = sorted((ROOT / "course").glob("nb*.py"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CONSUMERS = sorted([*(p for p in ROOT.glob("tests/*.py") if p.name != "test_layering.py"), *ROOT.glob("benchmarks/*.py"), *ROOT.glob("scripts/*.py"), *HELPERS])


def imports(tree: ast.AST) -> list[tuple[str, list[str]]]:
    """(module, [imported names]) for every import in a parsed file; [] names for `import x`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, [a.name for a in node.names]))
    return found


def notebook_source(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    # IPython magics and shell escapes are not Python
    return "\n".join(line for cell in code for line in cell.splitlines() if not line.lstrip().startswith(("%", "!")))


def test_the_two_packages_exist():
    assert len(ENGINE) >= 10 and len(HELPERS) >= 6
    assert not (ROOT / "course" / "__init__.py").read_text().count("import "), "course/__init__ imports nothing"


@pytest.mark.parametrize("path", ENGINE, ids=lambda p: p.name)
def test_engine_never_imports_the_helpers(path):
    text = path.read_text()
    assert not re.search(r"^\s*(from|import)\s+course\b", text, re.M), f"{path.name} imports course"


@pytest.mark.parametrize("path", HELPERS, ids=lambda p: p.name)
def test_a_helper_imports_the_engine_and_no_other_helper(path):
    mods = [m for m, _ in imports(ast.parse(path.read_text()))]
    assert not [m for m in mods if m == "course" or m.startswith("course.")], f"{path.name} imports another helper"
    rel = re.findall(r"^\s*from\s+\.", path.read_text(), re.M)
    assert not rel, f"{path.name} uses a relative import of another helper"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_notebook_imports_only_its_own_helper(path):
    number = path.name[:2]
    for module, names in imports(ast.parse(notebook_source(path))):
        helpers = [f"{module}.{n}" for n in names] if module == "course" else [module]
        for h in helpers:
            if h.startswith("course."):
                assert h.startswith(f"course.nb{number}_"), f"notebook {number} imports {h}"


def public_names(module: str) -> set[str]:
    mod = importlib.import_module(module)
    assert hasattr(mod, "__all__"), f"{module} declares no __all__"
    return set(mod.__all__)


@pytest.mark.parametrize("path", [*CONSUMERS, *NOTEBOOKS], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_only_public_names_are_imported_from_the_engine(path):
    source = notebook_source(path) if path.suffix == ".ipynb" else path.read_text()
    tree = ast.parse(source)
    for module, names in imports(tree):
        if module == "vae_core" or module.startswith("vae_core."):
            allowed = public_names(module)
            for n in names:
                if module == "vae_core" and importlib.util.find_spec(f"vae_core.{n}") is not None:
                    continue  # a submodule (from vae_core import widgets)
                assert n in allowed, f"{path.name} imports {module}.{n}, not in its __all__"
    # attribute access through a module alias: vae_core.x._private or engine_module._private
    private = re.findall(r"\b(?:vae_core(?:\.\w+)?|ckpt|ev|widgets|objectives|evaluate|metrics|train|models)\._[a-z]\w*",
                         source)
    assert not private, f"{path.name} uses private engine names {sorted(set(private))}"


def test_every_engine_module_declares_its_public_api():
    for path in ENGINE:
        if path.name == "__init__.py":
            continue
        names = public_names(f"vae_core.{path.stem}")
        mod = importlib.import_module(f"vae_core.{path.stem}")
        missing = [n for n in names if not hasattr(mod, n)]
        assert not missing, f"vae_core.{path.stem}.__all__ names {missing}, which do not exist"
        assert not [n for n in names if n.startswith("_")], f"vae_core.{path.stem} exports private names"


def test_top_level_api_resolves():
    import vae_core

    assert all(hasattr(vae_core, n) for n in vae_core.__all__)
