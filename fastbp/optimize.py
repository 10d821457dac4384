"""Full-batch training through SciPy's optimisers (needs SciPy: ``pip install fastbp[optimize]``).

:func:`minimize` hands the **mean** loss ``1/B sum_n l(f(x_n), y_n)`` (any loss, weighted with
``sample_weight``, plus an optional L2 penalty on the weights) and its gradient
(:meth:`fastbp.MLP.loss_and_grad`), and for Newton-CG and trust-krylov its Hessian-vector
product (:meth:`fastbp.MLP.hvp`), to :func:`scipy.optimize.minimize`;
:func:`least_squares` hands the residuals ``f(x_n) - y_n`` and their Jacobian
(:meth:`fastbp.MLP.residual_jacobian`) to :func:`scipy.optimize.least_squares`
(Levenberg-Marquardt with ``method="lm"``). Both write the result into ``net.params`` and return
SciPy's result object.

SciPy is imported when this module is (``import fastbp`` does not import it).
"""

from __future__ import annotations

import numpy as np

try:
    import scipy.optimize
except ImportError as exc:  # pragma: no cover - depends on the environment
    from ._extras import missing_extra

    raise missing_extra("optimize", exc) from exc

from ._validate import as_batch, as_pair, squared_only
from .layout import views
from .losses import LOSSES, as_targets, as_weights, check_weights

__all__ = ["least_squares", "minimize"]

#: Methods of scipy.optimize.minimize that take a Hessian-vector product.
HESSP_METHODS = frozenset({"newton-cg", "trust-krylov", "trust-ncg", "trust-constr"})


def _data(net, X, Y):
    """X, Y checked and converted like loss_and_grad's (2-D, finite, the network dtype)."""
    squared_only(net, "fastbp.optimize")
    X2, Y2, _ = as_pair(X, Y, net.sizes[0], net.sizes[-1], net.dtype)
    if X2.shape[0] == 0:
        raise ValueError("X, Y: expected at least one sample, got 0")
    return X2, Y2


def _weighted_data(net, X, Y, sample_weight):
    """``(X2, Y2, w, total)`` for :func:`minimize`: inputs and targets checked and converted
    like :meth:`fastbp.MLP.loss_and_grad`'s (class labels as one-hot rows), the weights as
    float64 ``(n,)`` (ones when None) and their sum, the mean's denominator."""
    if net.loss_name == "squared":
        X2, Y2 = _data(net, X, Y)
    else:
        X2, single = as_batch(X, "X", net.sizes[0], net.dtype)
        if single or X2.shape[0] == 0:
            raise ValueError("X, Y: expected a 2-D batch of at least one sample")
        code = LOSSES.index(net.loss_name)
        Y2 = as_targets(
            Y,
            X2.shape[0],
            False,
            net.sizes[-1],
            net.dtype,
            code,
            lambda n: np.zeros((n, net.sizes[-1]), dtype=net.dtype),
        )
    n = X2.shape[0]
    w = np.ones(n) if sample_weight is None else as_weights(sample_weight, n).copy()
    check_weights(w)
    total = float(w.sum())
    if not total > 0.0:
        raise ValueError("sample_weight: every weight is zero; expected a positive sum")
    return X2, Y2, w, total


def minimize(
    net, X, Y, method: str = "L-BFGS-B", *, sample_weight=None, l2: float = 0.0, **options
):
    """Minimise the mean loss over :attr:`~fastbp.MLP.params` with :func:`scipy.optimize.minimize`.

    The objective is ``(sum_n w_n l_n + l2 / 2 sum_l ||W^l||^2) / sum_n w_n``: the (weighted)
    mean loss of :meth:`fastbp.MLP.loss` plus an L2 penalty on the weights (not the biases)
    scaled as scikit-learn's ``alpha``. An integer weight is the sample repeated that many
    times, the same objective up to rounding.

    Parameters
    ----------
    net : fastbp.MLP
        The network; its parameters are the starting point and receive the result.
    X : array_like, shape (n_samples, M^0)
        Inputs.
    Y : array_like, shape (n_samples, M^L), or (n_samples,) labels
        Targets (see :meth:`fastbp.MLP.loss`).
    method : str, default "L-BFGS-B"
        Any method of :func:`scipy.optimize.minimize`; those that use one (Newton-CG,
        trust-krylov, trust-ncg, trust-constr) also get ``hessp``, the exact Hessian-vector
        product of the objective (:meth:`fastbp.MLP.hvp`).
    sample_weight : array_like, shape (n_samples,), optional
        Finite weights ``w_n >= 0`` with a positive sum (default: all 1).
    l2 : float, default 0.0
        Coefficient of the L2 penalty on the weights, >= 0.
    **options
        Passed on to :func:`scipy.optimize.minimize` (``tol``, ``options``, ``callback``...;
        not ``fun``, ``x0``, ``jac`` or ``hessp``).

    Returns
    -------
    scipy.optimize.OptimizeResult
        SciPy's result; ``result.x`` (float64) is also written into ``net.params``, and
        ``result.fun`` is the objective there.

    Raises
    ------
    TypeError, ValueError
        The errors of :meth:`fastbp.MLP.loss_and_grad` for bad ``X``, ``Y`` or
        ``sample_weight`` (and an empty batch), before any kernel runs. The network is
        unchanged.
    """
    uses_hessp = str(method).lower() in HESSP_METHODS
    X2, Y2, w, total = _weighted_data(net, X, Y, sample_weight)
    for key in ("fun", "x0", "jac", "hessp"):
        if key in options:
            raise TypeError(f"minimize: {key!r} is set by fastbp.optimize.minimize")
    l2 = float(l2)
    if not (l2 >= 0.0 and np.isfinite(l2)):
        raise ValueError(f"l2: expected a finite value >= 0, got {l2!r}")
    scale = 1.0 / total
    # 1 at the weights, 0 at the biases: the penalty's gradient is l2 * mask * theta.
    mask = np.zeros(net.n_params)
    for W in views(mask, net.sizes)[0]:
        W[...] = 1.0
    weights = None if sample_weight is None else w
    grad = np.empty(net.n_params, dtype=net.dtype)
    hv = np.empty(net.n_params, dtype=net.dtype)
    start = net.params.copy()

    def fun(theta):
        net.params = theta
        loss, g = net.loss_and_grad(X2, Y2, out=grad, sample_weight=weights)
        g = g.astype(np.float64)
        if l2:
            decay = mask * theta
            loss += 0.5 * l2 * float(decay @ theta)
            g += l2 * decay
        return loss * scale, g * scale

    def hessp(theta, v):
        net.params = theta
        Hv = net.hvp(X2, Y2, v, out=hv, sample_weight=weights).astype(np.float64)
        if l2:
            Hv += l2 * mask * v
        return Hv * scale

    if uses_hessp:
        options["hessp"] = hessp
    try:
        result = scipy.optimize.minimize(
            fun, start.astype(np.float64), jac=True, method=method, **options
        )
    except BaseException:
        net.params = start
        raise
    net.params = result.x
    return result


def least_squares(net, X, Y, **options):
    """Fit by :func:`scipy.optimize.least_squares` on the residuals ``f(x_n) - y_n``.

    The residual vector is ``(f(X) - Y).ravel()`` (sample-major, length ``n_samples * M^L``)
    and ``jac`` its Jacobian :meth:`fastbp.MLP.residual_jacobian`; SciPy's cost
    ``1/2 sum r^2`` is the loss of the network (a sum, not a mean).

    Parameters
    ----------
    net : fastbp.MLP
        The network; its parameters are the starting point and receive the result.
    X : array_like, shape (n_samples, M^0)
        Inputs.
    Y : array_like, shape (n_samples, M^L)
        Targets.
    **options
        Passed on to :func:`scipy.optimize.least_squares` (``method="lm"``
        (Levenberg-Marquardt, needs ``n_samples * M^L >= n_params``), ``"trf"`` (the default),
        ``xtol``, ``max_nfev``...; not ``fun``, ``x0`` or ``jac``).

    Returns
    -------
    scipy.optimize.OptimizeResult
        SciPy's result; ``result.x`` is also written into ``net.params``.

    Raises
    ------
    TypeError, ValueError
        The errors of :meth:`fastbp.MLP.loss_and_grad` for bad ``X`` or ``Y``, before any
        kernel runs; the network is unchanged.
    """
    X2, Y2 = _data(net, X, Y)
    for key in ("fun", "x0", "jac"):
        if key in options:
            raise TypeError(f"least_squares: {key!r} is set by fastbp.optimize.least_squares")
    J = np.empty((Y2.size, net.n_params), dtype=net.dtype)
    flat_y = Y2.ravel()
    start = net.params.copy()

    def residuals(theta):
        net.params = theta
        return (net.forward(X2).ravel() - flat_y).astype(np.float64)

    def jacobian(theta):
        net.params = theta
        return net.residual_jacobian(X2, out=J).astype(np.float64)

    try:
        result = scipy.optimize.least_squares(
            residuals, start.astype(np.float64), jac=jacobian, **options
        )
    except BaseException:
        net.params = start
        raise
    net.params = result.x
    return result
