"""Run by tests/test_extras.py in a fresh interpreter: with the third-party packages named on
the command line made unimportable (a finder at the front of ``sys.meta_path``), each optional
submodule of fastbp raises ``ImportError`` on access. Prints ``RESULT`` and a JSON object
``{submodule: message, or null when it imported}``."""

import importlib.abc
import json
import sys

BLOCKED = set(sys.argv[1:])


class Blocker(importlib.abc.MetaPathFinder):
    """Refuse every module whose top-level package is in BLOCKED, as if not installed."""

    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


sys.meta_path.insert(0, Blocker())

import fastbp  # noqa: E402

messages = {}
for sub in ("optimize", "dask", "sklearn", "onnx"):
    try:
        getattr(fastbp, sub)
    except ImportError as exc:
        messages[sub] = str(exc)
    else:
        messages[sub] = None
print("RESULT", json.dumps(messages))
