#!/usr/bin/env bash
# Build the HTML site from docs/ (Markdown pages and the API reference generated from the
# numpydoc docstrings), warnings as errors. Needs the docs extra: pip install -e ".[docs]".
# Output: docs/_build/html/index.html (git ignores docs/_build).
set -euo pipefail
cd "$(dirname "$0")/.."

python -m sphinx -W --keep-going -b html docs docs/_build/html
