"""The course website (scripts/build_site.py, `make site`): built from the committed notebooks and checked.

The site is built once per test session into a temporary folder (about 20 s on 2 cores) and
checked as a reader would find it: one page per notebook in reading order, no internal link
or image that points nowhere (anchors included), nothing loaded from the network, every
explorer replaced by its static view, solutions still collapsed, and, in headless Debian
Chromium, the notebook 02 page shows typeset math (MathJax's output, no raw ``$$``). That
last test saves its screenshot to figures/11_site_notebook_02.png, linked from the README.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SCREENSHOT = ROOT / "figures" / "11_site_notebook_02.png"
CHROMIUM = "/usr/bin/chromium"

spec = importlib.util.spec_from_file_location("build_site", ROOT / "scripts" / "build_site.py")
build_site = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_site)


class Page(HTMLParser):
    """The links, images, scripts and element ids of one HTML page."""

    def __init__(self, path: Path):
        super().__init__()
        self.path, self.refs, self.ids, self.images, self.loads = path, [], set(), [], []
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        for key in ("href", "src"):
            if a.get(key):
                self.refs.append((tag, a[key]))
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag in ("script", "img") and a.get("src"):
            self.loads.append(a["src"])  # what the browser fetches to show the page
        if tag == "link" and a.get("href") and a.get("rel") in ("stylesheet", "preload", "modulepreload", "icon"):
            self.loads.append(a["href"])


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_site.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out / "html"


@pytest.fixture(scope="module")
def pages(site) -> dict[Path, Page]:
    """Every page of the site (the theme's own templates under _static are not pages)."""
    return {p: Page(p) for p in site.rglob("*.html") if "_static" not in p.relative_to(site).parts}


def local_target(page: Path, ref: str) -> tuple[Path, str] | None:
    """(file, #fragment) a relative link points to; None for external links and pure scripts."""
    parts = urlsplit(ref)
    if parts.scheme or parts.netloc or ref.startswith(("mailto:", "javascript:", "data:")):
        return None
    target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
    return target, unquote(parts.fragment)


def test_one_page_per_notebook_in_reading_order(site, pages):
    for nb in NOTEBOOKS:
        assert (site / "notebooks" / f"{nb.stem}.html").is_file(), f"no page for {nb.name}"
    assert (site / "search.html").is_file() and (site / "searchindex.js").is_file(), "no search"
    assert (site / ".nojekyll").is_file(), "GitHub Pages would hide _static/ without .nojekyll"
    index = pages[site / "index.html"]
    chapters = [r for _, r in index.refs if r.startswith("notebooks/") and "#" not in r]
    order = list(dict.fromkeys(chapters))
    assert order == [f"notebooks/{nb.stem}.html" for nb in NOTEBOOKS], order


def test_no_broken_internal_links_or_anchors(pages):
    broken = []
    for page, parsed in pages.items():
        for tag, ref in parsed.refs:
            found = local_target(page, ref)
            if found is None:
                continue
            target, fragment = found
            if not target.exists():
                broken.append(f"{page.name}: <{tag}> {ref} (no such file)")
            elif fragment and target.suffix == ".html" and target in pages and fragment not in pages[target].ids:
                broken.append(f"{page.name}: <{tag}> {ref} (no id {fragment!r} in {target.name})")
    assert not broken, "\n".join(broken[:40])


def test_every_image_exists_and_every_figure_is_on_its_page(site, pages):
    missing = [f"{page.name}: {src}" for page, parsed in pages.items() for src in parsed.images
               if not src.startswith("data:image/")  # inline (an ipympl figure's HTML output)
               and (local_target(page, src) is None or not local_target(page, src)[0].is_file())]
    assert not missing, missing
    for nb in NOTEBOOKS:
        cells = nbformat.read(nb, as_version=4).cells
        figures = sum(any(k.startswith("image/") for k in o.get("data", {})) for c in cells if c.cell_type == "code"
                      for o in c.outputs) + sum(not c.metadata.get("static_view", {"below": True}).get("below")
                                                for c in cells)
        shown = len(pages[site / "notebooks" / f"{nb.stem}.html"].images)
        assert shown == figures, f"{nb.name}: {shown} images on the page, {figures} figures in the notebook"


def test_nothing_is_loaded_from_the_network(pages):
    """Scripts, styles and images come from the site itself, so it renders offline."""
    remote = [f"{page.name}: {ref}" for page, parsed in pages.items() for ref in parsed.loads
              if urlsplit(ref).netloc]
    assert not remote, remote[:20]


def test_explorers_show_their_static_view_and_solutions_stay_collapsed(site):
    for nb in NOTEBOOKS:
        html = (site / "notebooks" / f"{nb.stem}.html").read_text(encoding="utf-8")
        cells = nbformat.read(nb, as_version=4).cells
        views = [c.metadata["static_view"] for c in cells if "static_view" in c.metadata]
        assert html.count("Interactive explorer.</strong>") == len(views), nb.name
        for view in views:
            assert (ROOT / view["figure"]).is_file(), view["figure"]
            if not view.get("below"):  # else the next cell's output draws it, inline
                assert Path(view["figure"]).stem in html, f"{nb.name}: {view['figure']} not on the page"
        solutions = sum(c.source.count("<details") for c in cells if c.cell_type == "markdown")
        assert html.count("<details") == solutions and "<details open" not in html, nb.name


def _notebook(outputs: list[dict], metadata: dict | None = None) -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("explorer.widget", metadata=metadata or {})
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    nb.cells = [cell]
    return nb


WIDGET = {"output_type": "display_data", "metadata": {},
          "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "x", "version_major": 2,
                                                                "version_minor": 0}, "text/plain": "VBox()"}}


def test_a_widget_output_becomes_its_static_view(tmp_path):
    path = tmp_path / "99_x.ipynb"
    view = {"figure": "figures/02_elbo_explorer.png", "caption": "the explorer"}
    nbformat.write(_notebook([WIDGET, {"output_type": "stream", "name": "stdout", "text": "hi\n"}], {"static_view": view}), path)
    cells = build_site.site_notebook(path).cells
    assert [o["output_type"] for o in cells[0].outputs] == ["stream"]
    assert cells[1].cell_type == "markdown" and "../figures/02_elbo_explorer.png" in cells[1].source
    assert "make lab" in cells[1].source
    nbformat.write(_notebook([WIDGET], {"static_view": {**view, "below": True}}), path)
    cells = build_site.site_notebook(path).cells
    assert "the figure below" in cells[1].source and "../figures/" not in cells[1].source


def test_a_figure_widget_keeps_its_png_and_a_new_explorer_needs_a_static_view(tmp_path):
    figure = {"output_type": "display_data", "metadata": {},
              "data": {**WIDGET["data"], "image/png": "iVBORw0KGgo="}}
    path = tmp_path / "98_x.ipynb"
    nbformat.write(_notebook([figure]), path)
    cells = build_site.site_notebook(path).cells
    assert len(cells) == 1 and set(cells[0].outputs[0]["data"]) == {"text/plain", "image/png"}
    nbformat.write(_notebook([WIDGET]), path)
    with pytest.raises(SystemExit, match="static_view"):
        build_site.site_notebook(path)


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing: install Debian's chromium "
                    "(bash scripts/install_chromium.sh, run by `make test` as root)")
def test_notebook_02_page_shows_typeset_math_in_chromium(site):
    from playwright.sync_api import sync_playwright

    page_path = site / "notebooks" / "02_elbo_derivation.html"
    requests = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.as_uri())
            page.wait_for_function("() => document.querySelectorAll('mjx-container').length > 50", timeout=30_000)
            text = page.inner_text("main")
            typeset = page.locator("mjx-container").count()
            page.screenshot(path=str(SCREENSHOT))
        finally:
            browser.close()
    assert typeset > 50, f"only {typeset} formulas typeset"
    assert "$$" not in text and "\\mathrm{" not in text, "raw LaTeX left on the page"
    assert not [u for u in requests if not u.startswith("file:")], "the page reached for the network"
