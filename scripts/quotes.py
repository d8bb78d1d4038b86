"""Numbers the notebooks' text quotes from their own outputs, kept honest.

A markdown cell may list, in its metadata, the numbers it quotes from the notebook's
outputs: ``"quotes": ["−102.18", "0.959"]``. ``tests/test_quotes.py`` fails when a listed
number is no longer in the cell's text or no longer printed by any output of the
notebook, so a re-execution that changes a result cannot leave a stale sentence behind.

    python scripts/quotes.py              report: every decimal number in the markdown,
                                          whether an output prints it, and whether it is listed
    python scripts/quotes.py --tag        also list, in each cell's metadata, every number
                                          of its text that an output prints (then re-read the
                                          report's unmatched numbers: stale text, or a paper's)

Numbers compare after normalising the minus sign (− to -) and thousands separators
(652,824 to 652824); a quote may round a printed number (0.96 for a printed 0.959).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
NUMBER = re.compile(r"(?<![\w.])[−-]?\d{1,3}(?:,\d{3})*(?:\.\d+)?(?![\w])|(?<![\w.])[−-]?\d+\.\d+(?![\w])")


def normalise(text: str) -> str:
    text = text.replace("−", "-").replace("\u2212", "-")
    return re.sub(r"(?<=\d),(?=\d{3})", "", text)


def outputs_text(nb) -> str:
    """Every text a code cell showed: streams and text/plain results, normalised."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            else:
                parts.append(out.get("data", {}).get("text/plain", ""))
    return normalise("\n".join(parts))


def decimals(text: str) -> list[str]:
    """Numbers with a decimal point in a markdown text (code spans and LaTeX included), in order."""
    return [m for m in NUMBER.findall(text) if "." in m]


def printed(number: str, outputs: str) -> bool:
    """True when the outputs print the number: the same digits as a whole number (not inside a
    longer one), or a longer decimal that rounds to it (0.959 printed, 0.96 quoted)."""
    n = normalise(number).lstrip("-")
    if re.search(rf"(?<![\d.]){re.escape(n)}(?!\d)", outputs) is not None:
        return True
    if "." not in n:
        return False
    places = len(n.split(".")[1])
    longer = re.findall(rf"(?<![\d.])\d+\.\d{{{places + 1},}}(?!\d)", outputs)
    return any(f"{round(float(x), places):.{places}f}" == n for x in longer)


def stale_quotes(nb) -> list[str]:
    """Messages for every listed quote missing from its cell's text or from the outputs."""
    outputs, problems = outputs_text(nb), []
    for i, cell in enumerate(nb.cells):
        for q in cell.get("metadata", {}).get("quotes", []):
            if q not in cell.source:
                problems.append(f"cell {i}: quote {q!r} is listed but no longer in the text")
            elif not printed(q, outputs):
                problems.append(f"cell {i}: quote {q!r} is not printed by any output (stale text?)")
    return problems


def main(argv: list[str]) -> int:
    tag = "--tag" in argv
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        outputs = outputs_text(nb)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "markdown":
                continue
            found = [n for n in dict.fromkeys(decimals(cell.source))]
            matched = [n for n in found if printed(n, outputs)]
            if tag and matched:
                cell.metadata["quotes"] = sorted(set(cell.metadata.get("quotes", [])) | set(matched))
            unmatched = [n for n in found if n not in matched]
            if unmatched:
                print(f"{path.name} cell {i}: not printed: {', '.join(unmatched)}")
        if tag:
            nbformat.write(nb, path)
        for problem in stale_quotes(nb):
            print(f"{path.name} {problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
