"""The students' copy of the course: every notebook without its solutions.

    python scripts/make_student.py [DEST]        (make student; DEST defaults to _build/student)

An exercise in a notebook is three cells: its question (markdown), a skeleton the student
fills in (a code cell tagged ``exercise`` that ends with a call to a ``check_*`` function),
and its worked solution (a markdown cell tagged ``solution``: a collapsed <details> block
holding one ```python block, the skeleton filled in). The copy drops every ``solution``
cell and keeps everything else, outputs included, so students still see the figures.
``DEST/notebooks/`` is opened like the course itself (``make lab`` serves the repository;
``jupyter lab DEST/notebooks`` works too: the engine and helpers are installed packages).
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CODE_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def exercises(nb) -> list[tuple[str, str]]:
    """[(skeleton source, solution code)] in notebook order.

    Raises ValueError naming the notebook's problem: skeletons and solutions must alternate,
    each solution must hold exactly one ```python block, each skeleton must end in a check_ call.
    """
    pairs, pending = [], None
    for i, cell in enumerate(nb.cells):
        if "exercise" in tags(cell):
            if cell.cell_type != "code" or pending is not None:
                raise ValueError(f"cell {i}: an 'exercise' cell must be a code cell, each followed by its solution")
            last = ast.parse(cell.source).body[-1:]
            call = last[0].value if last and isinstance(last[0], ast.Expr) else None
            name = getattr(getattr(call, "func", None), "attr", getattr(getattr(call, "func", None), "id", ""))
            if not (isinstance(call, ast.Call) and name.startswith("check_")):
                raise ValueError(f"cell {i}: an exercise skeleton must end with a call to a check_ function")
            pending = cell.source
        elif "solution" in tags(cell):
            blocks = CODE_BLOCK.findall(cell.source)
            if pending is None or cell.cell_type != "markdown" or len(blocks) != 1:
                raise ValueError(f"cell {i}: a 'solution' cell must be markdown with one ```python block, "
                                 "right after its exercise skeleton")
            pairs.append((pending, blocks[0]))
            pending = None
    if pending is not None:
        raise ValueError("the last exercise skeleton has no solution cell")
    return pairs


def student_copy(nb):
    """The notebook without its solution cells (a new object; the input is unchanged)."""
    exercises(nb)  # refuse a malformed notebook rather than hand out a broken copy
    copy = nbformat.from_dict(nb)
    copy.cells = [c for c in copy.cells if "solution" not in tags(c)]
    return copy


def build(dest: Path) -> list[Path]:
    """Write the students' copy of every notebook under dest/notebooks; returns the paths."""
    out_dir = Path(dest) / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        try:
            copy = student_copy(nb)
        except ValueError as err:
            raise ValueError(f"{path.name}: {err}") from None
        target = out_dir / path.name
        nbformat.write(copy, target)
        written.append(target)
    return written


def main(argv: list[str]) -> int:
    dest = Path(argv[1]) if len(argv) > 1 else ROOT / "_build" / "student"
    paths = build(dest)
    n = sum(len(exercises(nbformat.read(p, as_version=4))) for p in NOTEBOOKS)
    print(f"students' copy: {len(paths)} notebooks, {n} exercises without their solutions -> {dest / 'notebooks'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
