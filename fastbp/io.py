"""Saving and loading networks: a versioned ``.npz`` file, no pickle.

The file is a NumPy ``.npz`` archive (a zip of ``.npy`` arrays) with these members:

===================  =========================================================
``format``           the string ``"fastbp.MLP"``
``format_version``   int64 scalar, :data:`FORMAT_VERSION` (now 2)
``sizes``            int64 ``(L + 1,)``, layer widths ``[M^0, ..., M^L]``
``activations``      unicode ``(L,)``, one activation name per layer
``dtype``            the string ``"float32"`` or ``"float64"``
``params``           the flat theta, in that dtype (the layout of :attr:`MLP.params`)
``loss``             the loss name, :attr:`MLP.loss_name` (version 2 only)
===================  =========================================================

Version 1 files (written before the losses existed, no ``loss`` member) still load, as
networks with the squared loss.

Parameters are stored in their own dtype, so a round trip is bit-exact. Files are read with
``allow_pickle=False``: a file cannot run code. Every problem with a file raises
:class:`ModelFileError` (a ``ValueError``) naming the file and the problem; a missing file raises
``FileNotFoundError``.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from ._validate import SUPPORTED_DTYPES
from .activations import ACTIVATIONS
from .losses import LOSSES
from .network import MLP

__all__ = ["FORMAT", "FORMAT_VERSION", "READ_VERSIONS", "ModelFileError", "load", "save"]

#: The ``format`` member of every fastbp model file.
FORMAT = "fastbp.MLP"
#: The version written by :func:`save`; :func:`load` reads it and version 1.
FORMAT_VERSION = 2
#: The versions :func:`load` reads.
READ_VERSIONS = (1, 2)

_MEMBERS = ("format", "format_version", "sizes", "activations", "dtype", "params")
_MEMBERS_V2 = (*_MEMBERS, "loss")


class ModelFileError(ValueError):
    """A model file is truncated, corrupted, of another format or version, or inconsistent."""


def save(net: MLP, path) -> None:
    """Write ``net`` to ``path`` as a versioned ``.npz`` file.

    The file is written to a temporary name in the same directory and then renamed, so an
    interrupted save never leaves a half-written file at ``path``. ``path`` is used as given
    (no ``.npz`` is appended).

    Parameters
    ----------
    net : fastbp.MLP
        The network.
    path : str or os.PathLike
        Destination file.

    Raises
    ------
    ValueError
        When the parameters contain NaN or Inf (such a network cannot be loaded back).
    """
    if not isinstance(net, MLP):
        raise TypeError(f"net: expected a fastbp.MLP, got {type(net).__name__}")
    path = os.fspath(path)
    if not np.isfinite(net.params).all():
        raise ValueError(f"{path}: refusing to save a network whose parameters are not finite")
    arrays = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "sizes": np.array(net.sizes, dtype=np.int64),
        "activations": np.array(net.activations, dtype=np.str_),
        "dtype": np.array(net.dtype.name),
        "params": net.params,
        "loss": np.array(net.loss_name),
    }
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastbp-", suffix=".npz.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read(path: str) -> dict:
    """All members of the archive as arrays; ModelFileError on anything unreadable."""
    try:
        # Open the file here so that it is closed even when np.load fails on a broken archive.
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ModelFileError(f"{path}: not a fastbp model file (not an .npz archive)")
            missing = [name for name in _MEMBERS if name not in data.files]
            if missing:
                raise ModelFileError(
                    f"{path}: not a fastbp model file (missing {', '.join(missing)})"
                )
            members = _MEMBERS_V2 if "loss" in data.files else _MEMBERS
            return {name: data[name] for name in members}
    except (FileNotFoundError, IsADirectoryError, PermissionError, ModelFileError):
        raise
    except Exception as exc:
        # A damaged archive fails in many ways inside zipfile and np.load: BadZipFile (bad CRC,
        # cut member), ValueError (bad .npy header, object array needing pickle, which stays
        # off), EOFError, KeyError, NotImplementedError (a flipped "zip version" byte),
        # zlib.error, MemoryError (a header claiming a huge shape)... all mean the same to a
        # user: this file is damaged. (A sweep over flipped bytes in the tests found several.)
        raise ModelFileError(f"{path}: corrupted or truncated model file ({exc})") from None


def _scalar(value: np.ndarray, kind: str):
    if value.shape != () or value.dtype.kind not in kind:
        return None
    return value.item()


def load(path) -> MLP:
    """Read a network written by :func:`save` (or :meth:`MLP.save`).

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save`.

    Returns
    -------
    fastbp.MLP
        The network, with bit-for-bit the saved parameters.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ModelFileError
        A ``ValueError`` naming the file: truncated or corrupted, not a fastbp file, another
        format version, or inconsistent content (sizes, activations, dtype, parameters whose
        length does not match the sizes or that are not finite).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such model file")
    m = _read(path)
    if _scalar(m["format"], "U") != FORMAT:
        raise ModelFileError(f"{path}: not a fastbp model file (format {m['format']!r})")
    version = _scalar(m["format_version"], "iu")
    if version not in READ_VERSIONS:
        raise ModelFileError(
            f"{path}: format version {version} is not supported (this fastbp reads versions "
            f"{', '.join(map(str, READ_VERSIONS))}); save the model again with a matching fastbp"
        )
    if version >= 2 and "loss" not in m:
        raise ModelFileError(f"{path}: not a fastbp model file (missing loss)")
    loss = _scalar(m["loss"], "U") if version >= 2 else "squared"
    if loss not in LOSSES:
        raise ModelFileError(f"{path}: unknown loss {m['loss']!r}")
    sizes = m["sizes"]
    if sizes.ndim != 1 or sizes.dtype.kind not in "iu" or sizes.shape[0] < 2 or sizes.min() < 1:
        raise ModelFileError(f"{path}: invalid sizes {sizes!r}")
    sizes = tuple(int(s) for s in sizes)
    names = m["activations"]
    if names.dtype.kind != "U" or names.shape != (len(sizes) - 1,):
        raise ModelFileError(f"{path}: expected {len(sizes) - 1} activation names, got {names!r}")
    names = tuple(str(a) for a in names)
    unknown = [a for a in names if a not in ACTIVATIONS]
    if unknown:
        raise ModelFileError(f"{path}: unknown activations {unknown}")
    dtype_name = _scalar(m["dtype"], "U")
    if dtype_name not in [d.name for d in SUPPORTED_DTYPES]:
        raise ModelFileError(f"{path}: unsupported dtype {m['dtype']!r}")
    params = m["params"]
    expected = sum(b * (a + 1) for a, b in zip(sizes[:-1], sizes[1:]))
    if params.ndim != 1 or params.shape[0] != expected:
        raise ModelFileError(
            f"{path}: parameters have shape {params.shape}, but sizes {list(sizes)} need "
            f"({expected},)"
        )
    if params.dtype != np.dtype(dtype_name):
        raise ModelFileError(
            f"{path}: parameters are {params.dtype}, but the file says {dtype_name}"
        )
    if not np.isfinite(params).all():
        raise ModelFileError(f"{path}: parameters contain NaN or Inf")
    if loss != "squared" and names[-1] != "identity":
        raise ModelFileError(f"{path}: loss {loss!r} needs an identity output layer")
    net = MLP.__new__(MLP)
    net.__setstate__(
        {"sizes": sizes, "activations": names, "dtype": dtype_name, "params": params, "loss": loss}
    )
    return net
