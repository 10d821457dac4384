"""Sphinx configuration: the docs/ pages (Markdown, via MyST) and the API reference, generated
from fastbp's numpydoc docstrings. Build with ``bash ci/build_docs.sh`` (warnings are errors)."""

import fastbp

project = "fastbp"
release = version = fastbp.__version__
copyright = "the fastbp authors"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# The API page holds the autosummary tables and the autodoc entries itself: nothing generated.
autosummary_generate = False
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
# Anchors for "#heading" links inside the Markdown pages.
myst_heading_anchors = 3

html_theme = "alabaster"
html_static_path: list[str] = []
