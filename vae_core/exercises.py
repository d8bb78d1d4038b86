"""Self-checking exercises: the verdict a checker gives a student.

Every exercise in the notebooks has a skeleton cell that ends with a call to a checker
(``nb03.check_pathwise_variance(my_variance)``). A checker never raises: it returns a
:class:`Verdict`, which Jupyter shows as one line, "Correct." or "Not yet." with a hint.
A notebook's checkers live in its helper module (``course/nbNN_*.py``) and are built
from the functions here:

    answer = attempt(my_function, 1.0, 2.0)        # runs student code, catches errors
    return check_close(answer, expected, hint="...")

An untouched skeleton returns ``None`` or ``...``: :func:`check_close` and
:func:`check_choice` answer it with the hint, never with an exception.
"""
from __future__ import annotations

import dataclasses
import traceback
from typing import Any, Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A checker's answer. ``bool(verdict)`` is ``passed``; ``str`` is what the student reads."""

    passed: bool
    message: str
    hint: str = ""

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        if self.passed:
            return f"Correct. {self.message}".rstrip()
        text = f"Not yet. {self.message}".rstrip()
        return f"{text}\nHint: {self.hint}" if self.hint else text

    __repr__ = __str__

    def _repr_pretty_(self, printer, cycle):  # IPython shows str(), not the dataclass fields
        printer.text(str(self))


@dataclasses.dataclass(frozen=True)
class Failed:
    """What :func:`attempt` returns when the student's code raised: the error, one line."""

    error: str


def attempt(fn: Callable, *args, **kwargs) -> Any:
    """fn(*args, **kwargs), or a :class:`Failed` naming the exception if it raised.

    ``fn=None`` or ``...`` (an untouched skeleton) returns None.
    """
    if fn is None or fn is Ellipsis:
        return None
    try:
        return fn(*args, **kwargs)
    except Exception as err:  # the student's code: report it, never crash the check
        where = traceback.extract_tb(err.__traceback__)[-1]
        return Failed(f"{type(err).__name__}: {err} (line {where.lineno})")


def is_blank(answer: Any) -> bool:
    """True for an answer the student has not filled in: None or ``...``."""
    return answer is None or answer is Ellipsis


def _not_given(answer: Any, hint: str) -> Verdict | None:
    if is_blank(answer):
        return Verdict(False, "The answer is still empty: fill in the cell and run it again.", hint)
    if isinstance(answer, Failed):
        return Verdict(False, f"Your code raised {answer.error}.", hint)
    return None


def check_close(answer: Any, expected: Any, *, hint: str, rtol: float = 1e-4, atol: float = 1e-6,
                what: str = "the answer") -> Verdict:
    """Right when ``answer`` has ``expected``'s shape and every value is within atol + rtol·|expected|.

    A wrong answer is told whether it is too high or too low (or how many values are off),
    never the expected value itself.

    Use rtol/atol for floating point; for a Monte Carlo answer pass an atol of a few
    standard errors and say so in the hint.
    """
    early = _not_given(answer, hint)
    if early is not None:
        return early
    try:
        got = np.asarray(answer, dtype=np.float64)
    except (TypeError, ValueError):
        return Verdict(False, f"{what} should be a number or an array of numbers, got {type(answer).__name__}.", hint)
    want = np.asarray(expected, dtype=np.float64)
    if got.shape != want.shape:
        return Verdict(False, f"{what} has shape {got.shape}, expected {want.shape}.", hint)
    if not np.all(np.isfinite(got)):
        return Verdict(False, f"{what} contains NaN or infinity.", hint)
    if np.allclose(got, want, rtol=rtol, atol=atol):
        return Verdict(True, f"{what} matches ({_short(want)}).")
    off = ~np.isclose(got, want, rtol=rtol, atol=atol)
    if got.size == 1:
        side = "too high" if float(got) > float(want) else "too low"
        return Verdict(False, f"{what} is {_short(got)}: {side}.", hint)
    return Verdict(False, f"{what} is {_short(got)}: {int(off.sum())} of {got.size} values are off.", hint)


def check_choice(answer: Any, correct: str, *, options: dict[str, str], hint: str) -> Verdict:
    """A multiple-choice answer: ``answer`` is one key of ``options`` (case-insensitive)."""
    early = _not_given(answer, hint)
    if early is not None:
        return early
    key = str(answer).strip().lower()
    keys = {k.lower(): k for k in options}
    if key not in keys:
        return Verdict(False, f"choose one of {sorted(options)}, got {answer!r}.", hint)
    if key == correct.lower():
        return Verdict(True, options[keys[key]])
    return Verdict(False, f"({keys[key]}) is not it.", hint)


def check_then_choose(numbers: Verdict, answer: Any, correct: str, *, options: dict[str, str], hint: str,
                      right_so_far: str) -> Verdict:
    """A two-part exercise: a numeric part already checked (``numbers``), then a multiple choice.

    The choice is judged only once the numbers are right; ``right_so_far`` opens the message
    when they are and the choice is not (e.g. "Your ELBO is right; the behaviour:").
    """
    if not numbers:
        return numbers
    choice = check_choice(answer, correct, options=options, hint=hint)
    if not choice:
        return Verdict(False, f"{right_so_far} {choice.message}", choice.hint)
    return Verdict(True, f"{numbers.message} {choice.message}")


def _short(a: np.ndarray) -> str:
    flat = np.ravel(a)
    text = ", ".join(f"{v:.4g}" for v in flat[:4])
    return text if flat.size <= 1 else f"[{text}{', ...' if flat.size > 4 else ''}]"


__all__ = ["Verdict", "Failed", "attempt", "is_blank", "check_close", "check_choice", "check_then_choose"]
