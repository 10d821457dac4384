"""Run by tests/test_extras.py in a fresh interpreter: ``import fastbp`` imports no optional
submodule and none of their third-party packages; each submodule named on the command line then
resolves as an attribute. Prints ``RESULT`` and a JSON object."""

import json
import sys

import fastbp

THIRD_PARTY = ("dask", "distributed", "sklearn", "onnx", "onnxruntime")

before = sorted(
    name
    for name in sys.modules
    if name.split(".")[0] in THIRD_PARTY
    or name in {f"fastbp.{sub}" for sub in ("optimize", "dask", "sklearn", "onnx")}
)
resolved = {}
for sub in sys.argv[1:]:
    module = getattr(fastbp, sub)
    resolved[sub] = [module.__name__, sys.modules.get(f"fastbp.{sub}") is module]
listed = [sub for sub in sys.argv[1:] if sub in dir(fastbp)]
print("RESULT", json.dumps({"imported_before": before, "resolved": resolved, "dir": listed}))
