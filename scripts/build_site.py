"""Build the course website from the committed, executed notebooks (no re-execution).

    python scripts/build_site.py [--out _build/site]      # `make site`

Assembles a Sphinx source folder (``<out>/src``) from the repository, then runs Sphinx with
``site/conf.py`` into ``<out>/html``; open ``<out>/html/index.html`` in a browser.

* the README is the front page, followed by a table of contents in notebook order and the
  reference pages (MODELS.md, BENCHMARKS.md, ARCHITECTURE.md);
* each notebook is copied as committed. An explorer cell (an ipywidgets output, which no
  static page can run) keeps its code; its widget output is replaced by the static view
  named in the cell's ``static_view`` metadata (a figure under ``figures/`` and a caption)
  and a line saying how to run it live; with ``"below": true`` the next cell already draws
  that figure, so the line points at it instead of showing it twice. A widget output without such metadata is an error,
  so a new explorer cannot land without its static view;
* ``figures/`` is copied so the README's images resolve.

Sphinx runs with warnings as errors (``-W``): a broken cross-reference, a missing image or a
malformed page stops the build with Sphinx's message.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
REFERENCE_PAGES = ["MODELS.md", "BENCHMARKS.md", "ARCHITECTURE.md"]
LIVE_NOTE = ("**Interactive explorer.** A web page cannot run it: open this notebook in JupyterLab "
             "(`make lab` in a clone of the course) and run the cells above it. Static view, "
             "{caption}:")


def notebooks(root: Path = ROOT) -> list[Path]:
    """The course's notebooks in reading order (their file names start with the number)."""
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def static_view_cell(cell, notebook: str, root: Path = ROOT) -> nbformat.NotebookNode:
    """The markdown cell that stands in for an explorer's widget output on the website."""
    view = cell.metadata.get("static_view") or {}
    if not view.get("figure") or not view.get("caption"):
        raise SystemExit(f"{notebook}: a cell shows a widget but has no 'static_view' metadata with a figure and "
                         "a caption; add {'figure': 'figures/NAME.png', 'caption': '...'} to the cell's metadata "
                         f"(cell source starts: {cell.source[:60]!r})")
    figure = root / view["figure"]
    if not figure.is_file():
        raise SystemExit(f"{notebook}: static view {view['figure']} does not exist; run the notebook in "
                         "full mode (`make notebooks`) to write it")
    text = LIVE_NOTE.format(caption=view["caption"])
    if view.get("below"):  # the next cell already draws this figure: point at it instead of repeating it
        return nbformat.v4.new_markdown_cell(f"{text} the figure below.")
    alt = view["caption"].replace("[", "(").replace("]", ")")
    return nbformat.v4.new_markdown_cell(f"{text}\n\n![{alt}](../{view['figure']})")


def site_notebook(path: Path, root: Path = ROOT) -> nbformat.NotebookNode:
    """The notebook as the website shows it: widget outputs replaced by their static views."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)  # saved widget state: nothing on a static page can use it
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        if cell.cell_type != "code":
            continue
        explorer, kept = False, []
        for out in cell.outputs:
            data = out.get("data", {})
            if WIDGET_MIME in data:
                del data[WIDGET_MIME]
                if not any(k.startswith("image/") for k in data):
                    explorer = True  # a live widget; its text/plain is only a repr such as "VBox(...)"
                    continue         # (a figure's widget, from ipympl, keeps its PNG)
            kept.append(out)
        cell.outputs = kept
        if explorer:
            cells.append(static_view_cell(cell, path.name, root))
    nb.cells = cells
    return nb


def index_page(root: Path = ROOT) -> str:
    """The front page: the README, then the table of contents."""
    chapters = "\n".join(f"notebooks/{p.stem}" for p in notebooks(root))
    reference = "\n".join(Path(p).stem for p in REFERENCE_PAGES)
    return ((root / "README.md").read_text()
            + f"\n\n```{{toctree}}\n:caption: The course\n:maxdepth: 1\n\n{chapters}\n```\n"
            + f"\n```{{toctree}}\n:caption: Reference\n:maxdepth: 1\n\n{reference}\n```\n")


def assemble(src: Path, root: Path = ROOT) -> None:
    """Write the Sphinx source folder: index.md, notebooks/, the reference pages, figures/."""
    if src.exists():
        shutil.rmtree(src)
    (src / "notebooks").mkdir(parents=True)
    (src / "index.md").write_text(index_page(root))
    for page in REFERENCE_PAGES:
        shutil.copy(root / page, src / page)
    shutil.copytree(root / "figures", src / "figures")
    for path in notebooks(root):
        nbformat.write(site_notebook(path, root), src / "notebooks" / path.name)


def build(out: Path) -> Path:
    """Assemble and build; returns the folder of the HTML site."""
    src, html = out / "src", out / "html"
    assemble(src)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q",
           "-c", str(ROOT / "site"), "-d", str(out / "doctrees"), str(src), str(html)]
    done = subprocess.run(cmd)
    if done.returncode:
        raise SystemExit(f"Sphinx failed (exit {done.returncode}); its messages are above")
    return html


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "_build" / "site",
                    help="build folder (default _build/site; not committed)")
    args = ap.parse_args()
    html = build(args.out.resolve())
    print(f"site built: {html / 'index.html'}")


if __name__ == "__main__":
    main()
