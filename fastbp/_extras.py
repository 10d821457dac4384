"""The optional extras: which submodule needs which third-party packages, and the error a
missing one raises.

``import fastbp`` imports none of these submodules; :func:`fastbp.__getattr__` imports one on
first access (PEP 562), and the submodule imports its third-party packages then.
"""

from __future__ import annotations

import importlib.util

__all__ = ["EXTRAS", "available", "missing_extra"]

#: Submodule of fastbp -> (the pip extra that installs what it needs, the modules it imports).
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "optimize": ("optimize", ("scipy",)),
    "dask": ("dask", ("dask", "distributed", "scipy")),
    "sklearn": ("sklearn", ("sklearn", "scipy")),
    "onnx": ("onnx", ("onnx",)),
}


def missing_extra(submodule: str, exc: ImportError) -> ImportError:
    """The ``ImportError`` that ``fastbp.<submodule>`` raises when its extra is not installed.

    Parameters
    ----------
    submodule : str
        A key of :data:`EXTRAS`.
    exc : ImportError
        The error of the failed third-party import (its module is named in the message).

    Returns
    -------
    ImportError
        Its message names the missing module and the command that installs the extra.
    """
    extra, needs = EXTRAS[submodule]
    missing = getattr(exc, "name", None) or str(exc)
    return ImportError(
        f"fastbp.{submodule} needs the optional extra {extra!r} ({', '.join(needs)}), and "
        f'{missing!r} cannot be imported: pip install "fastbp[{extra}]"'
    )


def available(module: str) -> bool:
    """Whether the third-party packages of ``module`` (``"fastbp.dask"``,
    ``"fastbp.sklearn.estimators"``, ...) are installed.

    Modules of fastbp that need no extra are always available.
    """
    parts = module.split(".")
    entry = EXTRAS.get(parts[1]) if len(parts) > 1 and parts[0] == "fastbp" else None
    if entry is None:
        return True
    return all(importlib.util.find_spec(name) is not None for name in entry[1])
