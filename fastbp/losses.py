"""Loss names, the integer codes the kernels branch on, and the checks of targets and weights.

=========================  =================================================  ================
name                       loss of one sample                                 delta^L
=========================  =================================================  ================
squared                    1/2 ||z^L - y||^2 (the seed's eq. 1)               (z^L - y) h'(a^L)
softmax_cross_entropy      -sum_k y_k log softmax(z^L)_k                      softmax(z^L) - y
sigmoid_cross_entropy      -sum_k y_k log s(z_k) + (1 - y_k) log(1 - s(z_k))  s(z^L) - y
=========================  =================================================  ================

(``s`` is the logistic sigmoid.) The cross-entropy losses read the outputs ``z^L`` as logits:
the last activation must be ``"identity"``. They are evaluated with log-sum-exp and
``log1p(exp(-|z|))``, so they are finite for any finite logits (``+-1e4`` included). Each
sample's loss and delta are multiplied by its weight (``sample_weight``); the compiled pieces
are :mod:`fastbp._kernels.losses` (one function, ``sample_delta``, writes the output delta of
one sample for every loss).

Targets of the cross-entropy losses: probabilities of shape ``(B, M^L)`` (softmax: each row
sums to 1 within ``sqrt(eps)`` of the dtype; sigmoid: every entry in ``[0, 1]``), or integer
class labels of shape ``(B,)`` for softmax (converted into one-hot rows in a workspace buffer,
without allocating), or, for sigmoid cross-entropy with one output, a ``(B,)`` array of 0/1
targets.
"""

from __future__ import annotations

import numpy as np

from ._kernels.losses import SIGMOID_CE, SOFTMAX_CE, SQUARED, check_targets, one_hot
from ._validate import as_batch

__all__ = ["LOSSES", "as_targets", "as_weights", "loss_code"]

#: Valid loss names, in code order.
LOSSES: tuple[str, ...] = ("squared", "softmax_cross_entropy", "sigmoid_cross_entropy")

_CODE = {name: code for code, name in enumerate(LOSSES)}

#: The "no weights" array the kernels take (length 0: every sample weight 1). Never written.
NO_WEIGHTS = np.empty(0, dtype=np.float64)


def loss_code(name, activations) -> int:
    """The integer code of loss ``name`` for a network whose layers use ``activations``.

    Parameters
    ----------
    name : str
        One of :data:`LOSSES`.
    activations : sequence of str
        The network's activation names, one per layer.

    Returns
    -------
    int
        The code (:data:`LOSSES` order).

    Raises
    ------
    TypeError
        When ``name`` is not a string.
    ValueError
        For an unknown name, or a cross-entropy loss whose last activation is not
        ``"identity"``.
    """
    if not isinstance(name, str):
        raise TypeError(f"loss: expected a loss name (str), got {type(name).__name__}")
    if name not in _CODE:
        raise ValueError(f"loss: unknown loss {name!r}; valid names are " + ", ".join(LOSSES))
    if name != "squared" and activations[-1] != "identity":
        raise ValueError(
            f"loss: {name!r} takes the outputs as logits, so the last activation must be "
            f"'identity', got {activations[-1]!r}"
        )
    return _CODE[name]


def as_weights(sample_weight, n: int) -> np.ndarray:
    """``sample_weight`` as a float64 ``(n,)`` array (no copy when it is one already), or
    :data:`NO_WEIGHTS` for None.

    Type and shape are checked here; finite and ``>= 0`` by the compiled drivers before any
    work (with the same ``sample_weight`` message), so a valid call allocates nothing.

    Raises
    ------
    TypeError
        When ``sample_weight`` is not a real numeric array.
    ValueError
        When its shape is not ``(n,)``.
    """
    if sample_weight is None:
        return NO_WEIGHTS
    if (
        type(sample_weight) is np.ndarray
        and sample_weight.dtype == np.float64
        and sample_weight.ndim == 1
        and sample_weight.flags.c_contiguous
    ):
        w = sample_weight
    else:
        try:
            arr = np.asarray(sample_weight)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"sample_weight: expected a numeric array ({exc})") from None
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"sample_weight: expected real numbers, got dtype {arr.dtype}")
        w = np.ascontiguousarray(arr, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(
            f"sample_weight: expected shape ({n},), one weight per sample, got {w.shape}"
        )
    return w


def check_weights(w: np.ndarray) -> None:
    """ValueError naming ``sample_weight`` when an entry is NaN, infinite or negative (the
    NumPy check :func:`fastbp.MLP.fit` runs once, up front)."""
    bad = ~(np.isfinite(w) & (w >= 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"sample_weight: expected finite values >= 0, found {float(w[i])} at index {i}"
        )


def as_targets(Y, n: int, single: bool, n_out: int, dtype: np.dtype, code: int, buffer):
    """Targets ``Y`` for ``n`` samples as a C-contiguous ``(n, n_out)`` array of ``dtype``.

    ``single``: X was one 1-D sample. ``buffer(n)`` returns a writable ``(>= n, n_out)`` array
    of ``dtype`` into which class labels are written as one-hot rows (a workspace, so the
    conversion allocates nothing). Probabilities are checked (:mod:`fastbp.losses`).

    Raises
    ------
    TypeError, ValueError
        Naming ``Y``: not numeric, wrong shape, labels out of range, negative probabilities,
        softmax rows not summing to 1 (beyond rounding), sigmoid targets above 1.
    """
    arr = Y if type(Y) is np.ndarray else np.asarray(Y)
    labels = arr.dtype.kind in "iu" and (arr.ndim == 0 if single else arr.ndim == 1)
    if code == SOFTMAX_CE and labels:
        lab = arr.reshape(1) if single else arr
        if lab.dtype != np.int64 or not lab.flags.c_contiguous:
            lab = np.ascontiguousarray(lab, dtype=np.int64)
        if lab.shape[0] != n:
            raise ValueError(
                f"X, Y: expected the same number of samples, got {n} and {lab.shape[0]} labels"
            )
        out = buffer(n)[:n]
        bad = one_hot(lab, out)
        if bad >= 0:
            raise ValueError(
                f"Y: class labels must be integers in [0, {n_out}), got {int(lab[bad])} at "
                f"index {bad}"
            )
        return out
    if code == SIGMOID_CE and n_out == 1 and not single and arr.ndim == 1:
        arr = arr.reshape(-1, 1)  # binary targets of a one-output classifier, shape (B,)
    Y2, y_single = as_batch(arr, "Y", n_out, dtype)
    if y_single != single:
        raise ValueError(
            "X, Y: expected both 1-D (one sample) or both 2-D (a batch), got "
            f"X {'1' if single else '2'}-D and Y {arr.ndim}-D"
        )
    if Y2.shape[0] != n:
        raise ValueError(f"X, Y: expected the same number of samples, got {n} and {Y2.shape[0]}")
    if code != SQUARED:
        tol = float(np.sqrt(np.finfo(dtype).eps))
        status, row = check_targets(code, Y2, tol)
        if status == 1:
            what = "in [0, 1]" if code == SIGMOID_CE else ">= 0"
            raise ValueError(f"Y: expected probabilities {what}, row {row} has {Y2[row]}")
        if status == 2:
            raise ValueError(
                f"Y: expected probabilities whose rows sum to 1, row {row} sums to "
                f"{float(Y2[row].sum())!r} (or pass integer class labels of shape (B,))"
            )
    return Y2
