"""Runs a notebook's exercises outside Jupyter: each untouched skeleton (from the students'
copy) must get a "Not yet" verdict with a hint, and each worked solution a "Correct" one.

A notebook's test calls ``check_exercises("NN_name.ipynb", namespace)`` where ``namespace()``
returns a fresh dict of the names the notebook's cells define before its exercises (small
stand-ins: tiny models, a few hundred images), so the check takes seconds, not a training run.
"""
from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
from pathlib import Path
from typing import Callable

import nbformat

from vae_core.exercises import Verdict

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("make_student", ROOT / "scripts" / "make_student.py")
make_student = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_student)


def run_cell(source: str, namespace: dict):
    """Execute a cell's source in namespace; return the value of its last expression (as Jupyter shows it)."""
    tree = ast.parse(source)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(tree, "<cell>", "exec"), namespace)
        if last is not None:
            return eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace)
    return None


def check_exercises(notebook: str, namespace: Callable[[], dict], min_count: int = 3) -> int:
    """Assert every exercise of notebooks/<notebook> checks itself; returns how many there are."""
    original = nbformat.read(ROOT / "notebooks" / notebook, as_version=4)
    pairs = make_student.exercises(original)
    copy = make_student.student_copy(original)
    skeletons = [c.source for c in copy.cells if "exercise" in make_student.tags(c)]
    assert skeletons == [s for s, _ in pairs], "the students' copy must keep every skeleton unchanged"
    assert len(pairs) >= min_count, f"{notebook} has {len(pairs)} exercises, expected at least {min_count}"
    for i, (skeleton, solution) in enumerate(pairs, 1):
        untouched = run_cell(skeleton, namespace())
        assert isinstance(untouched, Verdict), f"exercise {i}: the skeleton must end with a check_ call"
        assert not untouched.passed, f"exercise {i}: the untouched skeleton passes its check"
        assert untouched.hint and "Hint:" in str(untouched), f"exercise {i}: no hint for a wrong answer"
        solved = run_cell(solution, namespace())
        assert isinstance(solved, Verdict) and solved.passed, f"exercise {i}: the solution fails: {solved}"
    return len(pairs)
