"""Optimisers: SGD (with momentum, Nesterov) and Adam, as in-place kernels on the flat theta.

An optimiser owns its hyper-parameters and its state (velocity, or first and second moments),
preallocated once in the network's dtype with the layout of ``theta``. Its update is one compiled
pass over ``theta``, the gradient and the state, with the finiteness check of the new values
fused into the same pass, so :meth:`MLP.fit` can stop on divergence without a second pass.

The gradient ``g`` given to the update is ``scale * grad + weight_decay * theta`` (L2 weight
decay coupled to the gradient, applied to every parameter, biases included, as in PyTorch's
``weight_decay``); :meth:`MLP.fit` passes ``scale = 1 / batch`` so that steps follow the mean
gradient of the mini-batch.

SGD (``v`` starts at 0)::

    v = momentum * v + g
    theta -= lr * (g + momentum * v)     if nesterov
    theta -= lr * v                      otherwise (with momentum 0 this is theta -= lr * g)

Adam (Kingma and Ba 2015, algorithm 1; ``m``, ``v`` start at 0, ``t`` counts steps from 1)::

    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g^2
    theta -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._kernels.optimizer_steps import (
    ADAM_KIND,
    BETA1,
    BETA2,
    EPS,
    LR,
    MOMENTUM,
    N_HYPER,
    NESTEROV,
    SGD_KIND,
    WEIGHT_DECAY,
    layer_step,
    optimizer_step,
    state_rows,  # noqa: F401  (a name fastbp.optim had; the kernels moved, not the names)
)
from ._validate import check_dtype

__all__ = ["SGD", "Adam", "Optimizer", "layer_step", "optimizer_step"]


# --------------------------------------------------------------------------------------------
# Python classes: validate hyper-parameters, own the state.
# --------------------------------------------------------------------------------------------
def _real(value, name: str, low: float, high: float, *, low_open=False, high_open=True) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {value!r}")
    x = float(value)
    too_low = x <= low if low_open else x < low
    too_high = x >= high if high_open else x > high
    if not math.isfinite(x) or too_low or too_high:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name}: expected a finite value in {lo}{low}, {high}{hi}, got {x!r}")
    return x


class Optimizer:
    """Base class of the optimisers: hyper-parameters, preallocated state, a compiled step.

    The state is allocated at the first step for the length and dtype of the parameters and
    kept across calls (and across :meth:`MLP.fit` calls, so training can be resumed); using one
    optimiser for parameters of another length or dtype raises ``ValueError`` until
    :meth:`reset` is called.
    """

    _kind = -1

    def __init__(self, lr: float, weight_decay: float) -> None:
        self._hyper = np.zeros(N_HYPER, dtype=np.float64)
        self._hyper[LR] = _real(lr, "lr", 0.0, math.inf, low_open=True)
        self._hyper[WEIGHT_DECAY] = _real(weight_decay, "weight_decay", 0.0, math.inf)
        self._count = np.zeros(1, dtype=np.int64)
        self._state: np.ndarray | None = None

    @property
    def lr(self) -> float:
        """Learning rate (assignable, e.g. for a schedule between :meth:`MLP.fit` calls)."""
        return float(self._hyper[LR])

    @lr.setter
    def lr(self, value: float) -> None:
        self._hyper[LR] = _real(value, "lr", 0.0, math.inf, low_open=True)

    @property
    def weight_decay(self) -> float:
        """L2 weight decay coefficient added to the gradient as ``weight_decay * theta``."""
        return float(self._hyper[WEIGHT_DECAY])

    @property
    def steps(self) -> int:
        """Number of updates taken since creation or the last :meth:`reset`."""
        return int(self._count[0])

    @property
    def state(self) -> dict[str, np.ndarray]:
        """The state arrays by name (views; empty before the first step)."""
        if self._state is None:
            return {}
        return {name: self._state[i] for i, name in enumerate(self._state_names)}

    def reset(self) -> None:
        """Forget the state and the step count."""
        self._state = None
        self._count[0] = 0

    def _bind(self, n: int, dtype: np.dtype) -> np.ndarray:
        """The state array for ``n`` parameters of ``dtype``, allocated on first use."""
        if self._state is None:
            self._state = np.zeros((len(self._state_names), n), dtype=dtype)
        elif self._state.shape[1] != n or self._state.dtype != dtype:
            raise ValueError(
                f"optimizer: holds state for {self._state.shape[1]} {self._state.dtype} "
                f"parameters, got {n} {np.dtype(dtype).name}; call reset() or use a new optimizer"
            )
        return self._state

    def step(self, params: np.ndarray, grad: np.ndarray, scale: float = 1.0) -> bool:
        """Update ``params`` in place from ``grad``, by one compiled pass.

        Parameters
        ----------
        params : ndarray, shape (n_params,)
            Parameters, e.g. ``net.params``: float32 or float64, C-contiguous, writable.
        grad : ndarray, shape (n_params,)
            Gradient, same dtype, e.g. from ``net.loss_and_grad``.
        scale : float, default 1.0
            Factor applied to ``grad`` first (``1 / batch`` for the mean gradient of a batch).

        Returns
        -------
        bool
            True when every updated parameter and state value is finite.
        """
        if not isinstance(params, np.ndarray) or not isinstance(grad, np.ndarray):
            raise TypeError("params, grad: expected numpy arrays")
        dtype = check_dtype(params.dtype)
        if params.ndim != 1 or not params.flags.c_contiguous or not params.flags.writeable:
            raise ValueError("params: expected a writable, C-contiguous 1-D array")
        if grad.dtype != dtype or grad.shape != params.shape:
            raise ValueError(
                f"grad: expected shape {params.shape} and dtype {dtype.name}, got "
                f"{grad.shape} and {grad.dtype}"
            )
        scale = _real(scale, "scale", -math.inf, math.inf)
        state = self._bind(params.shape[0], dtype)
        grad = np.ascontiguousarray(grad)
        return bool(
            optimizer_step(self._kind, self._hyper, self._count, params, grad, scale, state)
        )

    def _args(self, n: int, dtype: np.dtype):
        """``(kind, hyper, count, state)`` as the kernels take them."""
        return self._kind, self._hyper, self._count, self._bind(n, dtype)


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum and L2 weight decay.

    Parameters
    ----------
    lr : float
        Learning rate, > 0.
    momentum : float, default 0.0
        Momentum factor in [0, 1).
    nesterov : bool, default False
        Nesterov momentum (needs ``momentum > 0``).
    weight_decay : float, default 0.0
        L2 coefficient ``lambda >= 0``: the gradient gets ``+ lambda * theta``.

    Notes
    -----
    The update, with ``g = grad + weight_decay * theta`` and velocity ``v`` starting at 0, is
    ``v = momentum * v + g`` and ``theta -= lr * v`` (``theta -= lr * (g + momentum * v)`` with
    Nesterov), the convention of PyTorch's ``torch.optim.SGD`` with ``dampening=0``.

    Examples
    --------
    >>> import numpy as np, fastbp
    >>> net = fastbp.MLP([2, 4, 1], seed=0)
    >>> opt = fastbp.SGD(lr=0.5, momentum=0.9)
    >>> loss, grad = net.loss_and_grad(np.ones((3, 2)), np.zeros((3, 1)))
    >>> opt.step(net.params, grad, scale=1 / 3)
    True
    """

    _kind = SGD_KIND
    _state_names = ("velocity",)

    def __init__(
        self, lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0
    ) -> None:
        super().__init__(lr, weight_decay)
        self._hyper[MOMENTUM] = _real(momentum, "momentum", 0.0, 1.0)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov: expected a bool, got {nesterov!r}")
        if nesterov and self._hyper[MOMENTUM] == 0.0:
            raise ValueError("nesterov: Nesterov momentum needs momentum > 0")
        self._hyper[NESTEROV] = float(bool(nesterov))

    @property
    def momentum(self) -> float:
        """Momentum factor."""
        return float(self._hyper[MOMENTUM])

    @property
    def nesterov(self) -> bool:
        """Whether the momentum is Nesterov's."""
        return bool(self._hyper[NESTEROV])

    def __repr__(self) -> str:
        return (
            f"SGD(lr={self.lr!r}, momentum={self.momentum!r}, nesterov={self.nesterov!r}, "
            f"weight_decay={self.weight_decay!r})"
        )


class Adam(Optimizer):
    """Adam (Kingma and Ba 2015), with optional L2 weight decay.

    Parameters
    ----------
    lr : float, default 1e-3
        Step size, > 0.
    beta1, beta2 : float, default 0.9 and 0.999
        Decay rates of the first and second moment estimates, in [0, 1).
    eps : float, default 1e-8
        Added to ``sqrt(v_hat)``, > 0.
    weight_decay : float, default 0.0
        L2 coefficient ``lambda >= 0``: the gradient gets ``+ lambda * theta`` (not AdamW).

    Notes
    -----
    With ``g = grad + weight_decay * theta`` and ``t`` the step number from 1:
    ``m = beta1 m + (1 - beta1) g``, ``v = beta2 v + (1 - beta2) g^2``,
    ``theta -= lr (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)``.
    """

    _kind = ADAM_KIND
    _state_names = ("m", "v")

    def __init__(
        self,
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(lr, weight_decay)
        self._hyper[BETA1] = _real(beta1, "beta1", 0.0, 1.0)
        self._hyper[BETA2] = _real(beta2, "beta2", 0.0, 1.0)
        self._hyper[EPS] = _real(eps, "eps", 0.0, math.inf, low_open=True)

    @property
    def beta1(self) -> float:
        """Decay rate of the first moment."""
        return float(self._hyper[BETA1])

    @property
    def beta2(self) -> float:
        """Decay rate of the second moment."""
        return float(self._hyper[BETA2])

    @property
    def eps(self) -> float:
        """Term added to the denominator."""
        return float(self._hyper[EPS])

    def __repr__(self) -> str:
        return (
            f"Adam(lr={self.lr!r}, beta1={self.beta1!r}, beta2={self.beta2!r}, "
            f"eps={self.eps!r}, weight_decay={self.weight_decay!r})"
        )
