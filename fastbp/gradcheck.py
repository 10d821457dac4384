"""Finite differences (the seed's eq. 5 and the central difference) and the gradient check.

Finite differences need two (central) or one (forward) full forward passes per parameter, so
they cost O(N^2) for N parameters against O(N) for backpropagation. They are compiled like the
rest (:func:`fastbp.kernels.finite_difference`) so that a comparison of the two measures the
algorithms, not the interpreter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import kernels
from ._dispatch import call, threaded
from ._validate import as_pair
from .layout import locate
from .network import MLP

__all__ = ["GradCheck", "check_grad", "default_eps", "finite_difference_grad"]

_SCHEMES = ("central", "forward")

# Coordinates per compiled call: bounds the time between checks for Ctrl-C.
_CHUNK = 256


def default_eps(dtype, scheme: str = "central") -> float:
    """Default relative step: ``u^(1/3)`` (central) or ``u^(1/2)`` (forward), ``u`` the unit
    roundoff of ``dtype``; this balances truncation against rounding error.

    The step for coordinate k is ``eps * max(1, |theta_k|)``.
    """
    u = float(np.finfo(np.dtype(dtype)).eps)
    return u ** (1.0 / 3.0) if _check_scheme(scheme) == "central" else u**0.5


def _check_scheme(scheme: str) -> str:
    if scheme not in _SCHEMES:
        raise ValueError(f"scheme: expected one of {_SCHEMES}, got {scheme!r}")
    return scheme


def finite_difference_grad(
    net: MLP, X, Y, eps: float | None = None, scheme: str = "central"
) -> np.ndarray:
    """Gradient of ``net.loss(X, Y)`` by finite differences, one coordinate at a time.

    Parameters
    ----------
    net : MLP
        The network; ``net.params`` is left bit-for-bit unchanged, also when the computation is
        interrupted (it works on a private copy of theta).
    X : array_like, shape (n_samples, M^0) or (M^0,)
        Inputs.
    Y : array_like, shape (n_samples, M^L) or (M^L,)
        Targets.
    eps : float, optional
        Relative step; see :func:`default_eps` for the default per scheme and dtype.
    scheme : {"central", "forward"}
        ``"forward"`` is the seed's eq. (5), ``(L(theta + h e_k) - L(theta)) / h``; ``"central"``
        is ``(L(theta + h e_k) - L(theta - h e_k)) / 2h``, with error O(h^2) instead of O(h).

    Returns
    -------
    ndarray, shape (n_params,)
        The approximate gradient, in the network dtype.

    Raises
    ------
    FloatingPointError
        If an entry is NaN: the perturbed losses overflowed (``inf - inf``). ``net`` is
        unchanged.
    """
    if not isinstance(net, MLP):
        raise TypeError(f"net: expected a fastbp.MLP, got {type(net).__name__}")
    _check_scheme(scheme)
    if eps is None:
        eps = default_eps(net.dtype, scheme)
    elif isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)):
        raise TypeError(f"eps: expected a positive float, got {eps!r}")
    elif not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps: expected a positive finite float, got {eps!r}")
    X2, Y2, _ = as_pair(X, Y, net.sizes[0], net.sizes[-1], net.dtype)
    theta, sizes, codes = net.kernel_args()
    work = theta.copy()
    A, Z, _ = kernels.make_workspace(net.sizes, max(X2.shape[0], 1), net.dtype)
    grad = np.empty_like(work)
    central = scheme == "central"
    # The driver's forward passes go parallel on the same rule as the loss (see _dispatch);
    # below it, the serial twin, which compiles no parfor (the same bits).
    parallel = threaded(net.sizes, X2.shape[0])
    driver = kernels.finite_difference if parallel else kernels._finite_difference_serial
    for start in range(0, work.shape[0], _CHUNK):
        stop = min(start + _CHUNK, work.shape[0])
        call(
            driver, parallel,
            work, sizes, codes, X2, Y2, A, Z, float(eps), central, start, stop, grad,
        )  # fmt: skip
    if grad.size and np.isnan(grad.max()):  # max propagates NaN: one pass, no temporary
        raise FloatingPointError(
            "finite_difference_grad: a difference is NaN: the perturbed losses overflowed "
            f"{net.dtype} or float64 (inf - inf); scale the inputs, targets or parameters down"
        )
    return grad


@dataclass(frozen=True)
class GradCheck:
    """Result of :func:`check_grad`. ``float(result)`` is :attr:`max_rel_error`.

    Attributes
    ----------
    max_rel_error : float
        ``max_k |bp_k - fd_k| / max(||bp||_inf, ||fd||_inf)``: the largest difference relative
        to the gradient's scale (0.0 when both gradients are exactly zero).
    max_abs_error : float
        ``max_k |bp_k - fd_k|``.
    worst_index : int
        The flat index ``k`` where the difference is largest.
    worst_param : str
        That parameter's name, e.g. ``"W2[3, 0]"``.
    backprop, finite_difference : ndarray, shape (n_params,)
        The two gradients.
    """

    max_rel_error: float
    max_abs_error: float
    worst_index: int
    worst_param: str
    backprop: np.ndarray
    finite_difference: np.ndarray

    def __float__(self) -> float:
        return self.max_rel_error

    def __str__(self) -> str:
        return (
            f"max relative error {self.max_rel_error:.3e} (abs {self.max_abs_error:.3e}) "
            f"at {self.worst_param}: backprop {self.backprop[self.worst_index]:.10g}, "
            f"finite difference {self.finite_difference[self.worst_index]:.10g}"
        )


def check_grad(net: MLP, X, Y, eps: float | None = None, scheme: str = "central") -> GradCheck:
    """Compare the backpropagation gradient with finite differences.

    Parameters
    ----------
    net : MLP
        The network (left unchanged).
    X, Y : array_like
        Inputs and targets, as for :meth:`MLP.loss_and_grad`.
    eps : float, optional
        Relative finite-difference step (default: :func:`default_eps`).
    scheme : {"central", "forward"}
        Finite-difference scheme.

    Returns
    -------
    GradCheck
        The maximum relative and absolute errors, where they occur, and both gradients.
        Expect about 1e-9 in float64 with the central scheme on smooth activations. Where a
        gradient overflowed to +-inf, the relative error is ``inf`` unless both gradients
        agree exactly.

    Raises
    ------
    FloatingPointError
        From :func:`finite_difference_grad` or :meth:`MLP.loss_and_grad` on an overflow that
        leaves NaN.
    """
    fd = finite_difference_grad(net, X, Y, eps=eps, scheme=scheme)
    _, bp = net.loss_and_grad(X, Y)
    bp64 = bp.astype(np.float64)
    fd64 = fd.astype(np.float64)
    # Equal entries (infinite ones included) differ by 0; inf - inf must not warn or give NaN.
    with np.errstate(invalid="ignore"):
        diff = np.where(bp64 == fd64, 0.0, np.abs(bp64 - fd64))
    if diff.size == 0:
        return GradCheck(0.0, 0.0, 0, "", bp, fd)
    k = int(np.argmax(diff))
    scale = max(float(np.max(np.abs(bp64))), float(np.max(np.abs(fd64))))
    if math.isinf(scale):  # an overflowed gradient: nothing can be said unless all agree
        rel = 0.0 if diff[k] == 0 else math.inf
    else:
        rel = float(diff[k] / scale) if scale > 0 else 0.0
    return GradCheck(rel, float(diff[k]), k, locate(net.sizes, k), bp, fd)
