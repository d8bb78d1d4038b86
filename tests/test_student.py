"""The students' copy (make student): every notebook without its solutions, exercises intact."""
from __future__ import annotations

import nbformat
import pytest
from exercise_tools import ROOT, make_student

NOTEBOOKS = [p.name for p in make_student.NOTEBOOKS]


@pytest.fixture(scope="module")
def copy_dir(tmp_path_factory):
    dest = tmp_path_factory.mktemp("student")
    make_student.build(dest)
    return dest / "notebooks"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_copy_keeps_everything_but_the_solutions(copy_dir, name):
    original = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    copy = nbformat.read(copy_dir / name, as_version=4)
    kept = [c for c in original.cells if "solution" not in make_student.tags(c)]
    assert [c.source for c in copy.cells] == [c.source for c in kept]
    assert not any("<summary>Solution" in c.source for c in copy.cells), "a solution is left in the students' copy"
    n_skeletons = sum("exercise" in make_student.tags(c) for c in copy.cells)
    assert n_skeletons == len(make_student.exercises(original))


@pytest.mark.parametrize("name", [n for n in NOTEBOOKS if not n.startswith("00_")])
def test_every_lesson_has_self_checking_exercises(name):
    assert len(make_student.exercises(nbformat.read(ROOT / "notebooks" / name, as_version=4))) >= 3


def test_malformed_exercises_are_refused():
    nb = nbformat.v4.new_notebook()
    skeleton = nbformat.v4.new_code_cell("answer = None\ncheck_it(answer)", metadata={"tags": ["exercise"]})
    no_check = nbformat.v4.new_code_cell("answer = None", metadata={"tags": ["exercise"]})
    solution = nbformat.v4.new_markdown_cell("<details>\n```python\nanswer = 1\ncheck_it(answer)\n```\n</details>",
                                             metadata={"tags": ["solution"]})
    nb.cells = [skeleton, solution]
    assert make_student.exercises(nb) == [(skeleton.source, "answer = 1\ncheck_it(answer)\n")]
    assert [c.source for c in make_student.student_copy(nb).cells] == [skeleton.source]
    for cells, words in [([skeleton], "no solution"), ([no_check, solution], "check_"),
                         ([solution], "right after"), ([skeleton, skeleton, solution], "each followed")]:
        nb.cells = cells
        with pytest.raises(ValueError, match=words):
            make_student.exercises(nb)
