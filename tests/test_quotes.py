"""The numbers the notebooks' text quotes from their outputs are still printed (scripts/quotes.py)."""
from __future__ import annotations

import importlib.util

import nbformat
import pytest
from exercise_tools import ROOT

_spec = importlib.util.spec_from_file_location("quotes", ROOT / "scripts" / "quotes.py")
quotes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quotes)


@pytest.mark.parametrize("path", quotes.NOTEBOOKS, ids=lambda p: p.name)
def test_quoted_numbers_are_printed(path):
    assert quotes.stale_quotes(nbformat.read(path, as_version=4)) == []


def test_the_whole_course_quotes_its_outputs():
    listed = sum(len(c.get("metadata", {}).get("quotes", []))
                 for p in quotes.NOTEBOOKS for c in nbformat.read(p, as_version=4).cells)
    assert listed >= 50


def test_stale_and_moved_quotes_are_caught():
    nb = nbformat.v4.new_notebook()
    out = nbformat.v4.new_code_cell("print(x)", outputs=[nbformat.v4.new_output("stream", text="ELBO -102.18, 652824 params\n")])
    good = nbformat.v4.new_markdown_cell("It reaches −102.18 nats with 652,824 parameters.",
                                         metadata={"quotes": ["−102.18", "652,824"]})
    nb.cells = [out, good]
    assert quotes.stale_quotes(nb) == []
    assert quotes.decimals(good.source) == ["−102.18"]
    nb.cells[0].outputs[0].text = "ELBO -102.19, 652824 params\n"
    assert quotes.stale_quotes(nb) == ["cell 1: quote '−102.18' is not printed by any output (stale text?)"]
    nb.cells[1].source = "It reaches about −102 nats with 652,824 parameters."
    assert "no longer in the text" in quotes.stale_quotes(nb)[0]
    assert not quotes.printed("2.18", "-102.18")  # only whole numbers count
    assert quotes.printed("−1.5", "value -1.5\n")
    assert quotes.printed("0.96", "evenness 0.959\n") and not quotes.printed("0.96", "evenness 0.949\n")
    assert not quotes.printed("0.96", "evenness 10.959\n".replace("10.959", "0.9"))
