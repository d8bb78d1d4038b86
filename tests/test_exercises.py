"""vae_core.exercises: the verdicts every notebook's checkers return."""
from __future__ import annotations

import numpy as np

from vae_core.exercises import Failed, Verdict, attempt, check_choice, check_close, check_then_choose, is_blank


def test_verdict_reads_as_one_line_and_a_hint():
    good, bad = Verdict(True, "matches."), Verdict(False, "is 3.", "look at the sign")
    assert bool(good) and not bool(bad)
    assert str(good) == "Correct. matches."
    assert str(bad) == "Not yet. is 3.\nHint: look at the sign"
    assert repr(bad) == str(bad)


def test_attempt_runs_student_code_and_reports_its_errors():
    assert attempt(lambda a, b=0: a + b, 1, b=2) == 3
    assert attempt(None) is None and attempt(...) is None
    failed = attempt(lambda: [][1])
    assert isinstance(failed, Failed) and failed.error.startswith("IndexError")


def test_is_blank():
    assert is_blank(None) and is_blank(...)
    assert not is_blank(0) and not is_blank("")


def test_check_close_blank_failed_shape_nan_wrong_right():
    hint = "add them"
    for answer, words in [(None, "still empty"), (Failed("ValueError: x"), "raised ValueError"),
                          ([1.0, 2.0], "shape (2,)"), (float("nan"), "NaN"), (4.0, "is 4: too high"), (2.0, "too low"),
                          ("abc", "number")]:
        v = check_close(answer, 3.0, hint=hint)
        assert not v and words in str(v) and "Hint: add them" in str(v), (answer, str(v))
        assert "3" not in str(v).replace("(2,)", ""), "a wrong answer must not be told the expected value"
    wrong_pair = check_close([1.0, 5.0], [1.0, 2.0], hint=hint)
    assert "1 of 2 values are off" in str(wrong_pair) and "2.0" not in str(wrong_pair)
    assert check_close(3.0 + 1e-7, 3.0, hint=hint)
    assert check_close(np.array([1.0, 2.0]), [1.0, 2.0], hint=hint, what="your pair").message.startswith("your pair")
    assert check_close(3.4, 3.0, hint=hint, rtol=0, atol=0.5)


def test_check_choice():
    options = {"a": "right, because", "b": "no"}
    assert check_choice("A ", "a", options=options, hint="h").message == "right, because"
    assert not check_choice("b", "a", options=options, hint="h")
    assert "choose one of" in str(check_choice("z", "a", options=options, hint="h"))
    assert "still empty" in str(check_choice(None, "a", options=options, hint="h"))


def test_check_then_choose_judges_the_choice_only_after_the_numbers():
    options = {"a": "because.", "b": "no"}
    wrong_numbers = Verdict(False, "is 2: too low.", "add")
    assert check_then_choose(wrong_numbers, "a", "a", options=options, hint="h", right_so_far="x") is wrong_numbers
    right = Verdict(True, "matches.")
    assert str(check_then_choose(right, "a", "a", options=options, hint="h", right_so_far="x")) == "Correct. matches. because."
    wrong_choice = check_then_choose(right, "b", "a", options=options, hint="think", right_so_far="Numbers right; reason:")
    assert not wrong_choice and str(wrong_choice).startswith("Not yet. Numbers right; reason: (b) is not it.")
    assert "Hint: think" in str(wrong_choice)
