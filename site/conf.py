"""Sphinx configuration of the course website (built by scripts/build_site.py; `make site`).

The pages are the committed, executed notebooks rendered by MyST-NB without running them,
the README as the front page, and MODELS.md, BENCHMARKS.md and ARCHITECTURE.md. Everything
the pages load comes from installed packages (the book theme, and MathJax 3 from
sphinx-mathjax-offline), so the site builds and renders math with no network.
"""
project = "Variational autoencoders, hands on"
author = "the VAE course authors"
copyright = "the VAE course authors; MNIST by LeCun, Cortes and Burges (CC BY-SA 3.0)"

# githubpages writes .nojekyll, so GitHub Pages serves the _static and _images folders
extensions = ["myst_nb", "sphinx-mathjax-offline", "sphinx.ext.githubpages"]

# the notebooks are shown as committed: executed in full mode, never re-run at build time
nb_execution_mode = "off"
nb_ipywidgets_js = {}           # explorers are replaced by their static view (build_site.py)
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
suppress_warnings = ["mystnb.unknown_mime_type"]

html_theme = "sphinx_book_theme"
html_title = project
html_theme_options = {
    "show_toc_level": 2,
    "home_page_in_toc": True,
    "use_download_button": True,
}
html_static_path = []
exclude_patterns = ["_build"]
