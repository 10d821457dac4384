"""Full-batch solvers for :meth:`MLP.fit`: L-BFGS, Levenberg-Marquardt, Bayesian regularization.

Each class validates its hyper-parameters and, for a fit, allocates the buffers of its
compiled loop once (:mod:`fastbp._kernels.lbfgs`,
:mod:`fastbp._kernels.levenberg_marquardt`); :mod:`fastbp.full_batch` runs the loop
(history, validation, callbacks, progress, Ctrl-C). Every fit starts a fresh solver state
(the L-BFGS memory, ``mu``, ``alpha`` and ``beta`` from their initial values). The guide is
docs/full-batch.md.
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np

from . import kernels
from ._kernels import lbfgs as _lbfgs
from ._kernels import levenberg_marquardt as _lm
from ._kernels.second_order import make_second_order_workspace

__all__ = [
    "LBFGS", "BayesianRegularization", "FullBatchOptimizer", "LevenbergMarquardt", "kernel_ready",
]  # fmt: skip

#: Default of ``max_bytes``: the Jacobian and the two normal matrices of LM and BR (1 GiB).
MAX_BYTES = 2**30


def _real(value, name: str, low: float, high: float = math.inf, *, low_open=True) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {value!r}")
    x = float(value)
    if not (math.isfinite(x) and (x > low if low_open else x >= low) and x < high):
        lo = "(" if low_open else "["
        raise ValueError(f"{name}: expected a finite value in {lo}{low}, {high}), got {x!r}")
    return x


def _count(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name}: expected a positive int, got {int(value)}")
    return int(value)


def kernel_ready(optimizer) -> bool:
    """Whether the compiled loop of ``optimizer`` is compiled in this process or in the disk
    cache (False: the first fit compiles it, for a minute or so); as
    :func:`fastbp.train.training_kernels_ready`."""
    steps = _lbfgs.lbfgs_steps if isinstance(optimizer, LBFGS) else _lm.lm_steps
    if getattr(steps, "overloads", True):  # compiled here already, or no JIT at all
        return True
    try:
        return os.path.exists(steps._cache._cache_file._index_path)
    except AttributeError:  # no disk cache: every process compiles
        return False


class FullBatchOptimizer:
    """Base class of the full-batch solvers: every iteration uses all the samples.

    With one of them, :meth:`MLP.fit` counts ``epochs`` as iterations and needs
    ``batch_size`` left out (or equal to the number of samples).
    """

    def _runner(self, net, X, Y, weights, total_weight, iterations):  # pragma: no cover
        raise NotImplementedError


class LBFGS(FullBatchOptimizer):
    """Limited-memory BFGS with a strong-Wolfe line search, every iteration compiled.

    Minimises the mean per-sample loss (any of :data:`fastbp.LOSSES`, weighted with
    ``sample_weight``) by the two-loop recursion over the last ``history`` pairs of steps and
    gradient changes, and the More-Thuente line search of MINPACK-2 (``dcsrch``, as SciPy's
    L-BFGS-B) with ``c1 = 1e-3``, ``c2 = 0.9``.

    Parameters
    ----------
    history : int, default 10
        Pairs kept (SciPy's and scikit-learn's ``maxcor``: 10).
    max_line_search : int, default 20
        Evaluations of the loss and gradient per line search. A failed search drops the
        memory and retries along the steepest descent; a second failure ends the fit
        (``History.status == "line_search_failed"``).
    tol : float, default 1e-9
        Stop (``"converged"``) when ``max |g| <= tol`` (g the gradient of the mean loss) or
        the relative decrease of an iteration ``(f_k - f_(k+1)) / max(|f_k|, |f_(k+1)|, 1)``
        is at most ``tol``.

    Examples
    --------
    >>> import numpy as np, fastbp
    >>> X = np.linspace(-1, 1, 50).reshape(-1, 1)
    >>> net = fastbp.MLP([1, 8, 1], ["tanh", "identity"], seed=0)
    >>> h = net.fit(X, np.sin(3 * X), epochs=200, optimizer=fastbp.LBFGS(), progress=False)
    >>> h.loss[-1] < 1e-4
    True
    """

    def __init__(self, history: int = 10, max_line_search: int = 20, tol: float = 1e-9):
        self.history = _count(history, "history")
        self.max_line_search = _count(max_line_search, "max_line_search")
        self.tol = _real(tol, "tol", 0.0, low_open=False)

    def __repr__(self) -> str:
        return (
            f"LBFGS(history={self.history}, max_line_search={self.max_line_search}, "
            f"tol={self.tol:g})"
        )

    def _runner(self, net, X, Y, weights, total_weight, iterations):
        return _LBFGSRun(self, net, X, Y, weights, total_weight, iterations)


class _LBFGSRun:
    """The buffers of one L-BFGS fit and the call of :func:`fastbp._kernels.lbfgs.lbfgs_steps`."""

    def __init__(self, opt: LBFGS, net, X, Y, weights, total_weight, iterations):
        N, m = net.n_params, opt.history
        self.theta, sizes, codes = net.kernel_args()
        A, Z, tmp = kernels.make_workspace(net.sizes, X.shape[0], net.dtype)
        f64 = np.float64
        self.losses = np.zeros(iterations, dtype=f64)
        self.status = np.zeros(1, dtype=np.int64)
        self.istate = np.zeros(4, dtype=np.int64)
        # In the order _lbfgs.TOL, C1, C2, XTOL, MAX_LS: c1, c2 and xtol as SciPy's L-BFGS-B.
        hyper = np.array([opt.tol, 1e-3, 0.9, 0.1, opt.max_line_search], dtype=f64)
        self.args = (
            self.theta, sizes, codes, X, Y, net._loss_code, weights, 1.0 / total_weight,
            A, Z, tmp, np.empty(N, dtype=net.dtype), hyper,
            np.zeros((m, N), dtype=f64), np.zeros((m, N), dtype=f64), np.zeros(m, dtype=f64),
            np.zeros(m, dtype=f64), np.zeros(N, dtype=f64), np.zeros(N, dtype=f64),
            np.zeros(N, dtype=f64), np.zeros(N, dtype=f64), self.istate,
            np.zeros(1, dtype=f64), self.losses, self.status,
        )  # fmt: skip

    def run(self, first: int, stop: int) -> int:
        return int(_lbfgs.lbfgs_steps(*self.args, first, stop))

    def record(self, history, k: int) -> None:
        """Extra per-iteration records (none for L-BFGS)."""

    @property
    def evaluations(self) -> int:
        return int(self.istate[_lbfgs.EVALS])


class LevenbergMarquardt(FullBatchOptimizer):
    """Levenberg-Marquardt on the squared loss, as MATLAB's ``trainlm``.

    Each iteration builds the residual Jacobian J (:meth:`MLP.residual_jacobian`) and solves
    ``(J^T J + mu I) dx = -J^T e`` by Cholesky, in the smaller of the two forms: the N x N
    ``J^T J`` (N parameters) or the R x R ``J J^T`` (R = n_samples x M^L residuals; then
    ``dx = -J^T (J J^T + mu I)^-1 e``). A step that lowers the sum of squared residuals is
    taken and ``mu *= mu_decrease``; otherwise ``mu *= mu_increase`` and the step is solved
    again; the fit ends (``History.status == "mu_max"``) once ``mu > mu_max``.
    ``History.mu`` records ``mu`` after each iteration.

    Parameters
    ----------
    mu : float, default 1e-3
        Initial damping, > 0.
    mu_increase : float, default 10.0
        Factor after a failed step, > 1.
    mu_decrease : float, default 0.1
        Factor after a successful step, in (0, 1).
    mu_max : float, default 1e10
        Largest damping tried.
    max_bytes : int, default 2**30
        Largest memory for the Jacobian (R x N, the network dtype) and two K x K float64
        normal matrices (K = min(N, R)); a larger problem raises ``ValueError`` naming the
        sizes and bytes before anything is allocated.

    Notes
    -----
    The loss must be ``"squared"`` (a ``ValueError`` for a cross-entropy network: use
    :class:`LBFGS`). With ``sample_weight``, residual n is scaled by ``sqrt(w_n)``. The
    factorisation is an explicit-loop Cholesky, ``O(K^3 / 3)`` per trial step; the normal
    matrix costs ``O(R N K / 2)``.
    """

    _bayes = False
    _name = "LevenbergMarquardt"
    #: "primal" (J^T J), "dual" (J J^T) or None (the smaller); for tests.
    _form: str | None = None

    def __init__(
        self,
        mu: float = 1e-3,
        mu_increase: float = 10.0,
        mu_decrease: float = 0.1,
        mu_max: float = 1e10,
        max_bytes: int = MAX_BYTES,
    ):
        self.mu = _real(mu, "mu", 0.0)
        self.mu_increase = _real(mu_increase, "mu_increase", 1.0)
        self.mu_decrease = _real(mu_decrease, "mu_decrease", 0.0, 1.0)
        self.mu_max = _real(mu_max, "mu_max", 0.0)
        if self.mu_max < self.mu:
            raise ValueError(f"mu_max: expected >= mu ({self.mu:g}), got {self.mu_max:g}")
        self.max_bytes = _count(max_bytes, "max_bytes")

    def __repr__(self) -> str:
        return (
            f"{self._name}(mu={self.mu:g}, mu_increase={self.mu_increase:g}, "
            f"mu_decrease={self.mu_decrease:g}, mu_max={self.mu_max:g})"
        )

    def check(self, net, n_samples: int) -> tuple[int, int, bool]:
        """``(R, N, primal)`` for ``n_samples`` samples; raises ``ValueError`` for a
        cross-entropy network or a problem above ``max_bytes``."""
        if net._loss_code != 0:
            raise ValueError(
                f"optimizer: {self._name} needs the squared loss; this network's loss is "
                f"{net._loss_name!r} (use fastbp.LBFGS, which takes every loss)"
            )
        R, N = n_samples * net.sizes[-1], net.n_params
        primal = N <= R if self._form is None else self._form == "primal"
        K = N if primal else R
        jac = R * N * np.dtype(net.dtype).itemsize
        normal = 2 * K * K * 8
        if jac + normal > self.max_bytes:
            raise ValueError(
                f"optimizer: {self._name} on {n_samples} samples x {net.sizes[-1]} outputs "
                f"(R = {R} residuals) and N = {N} parameters needs the Jacobian ({R} x {N}, "
                f"{jac:,} bytes) and two {K} x {K} normal matrices ({normal:,} bytes): "
                f"{jac + normal:,} bytes, above max_bytes={self.max_bytes:,}. Use fewer "
                f"samples or parameters, fastbp.LBFGS, or a larger max_bytes"
            )
        return R, N, primal

    def _runner(self, net, X, Y, weights, total_weight, iterations):
        return _LMRun(self, net, X, Y, weights, total_weight, iterations)


class _LMRun:
    """The buffers of one LM or BR fit and the call of
    :func:`fastbp._kernels.levenberg_marquardt.lm_steps`."""

    def __init__(self, opt: LevenbergMarquardt, net, X, Y, weights, total_weight, iterations):
        n = X.shape[0]
        R, N, primal = opt.check(net, n)
        K = N if primal else R
        self.bayes = opt._bayes
        self.theta, sizes, codes = net.kernel_args()
        A, Z, _ = kernels.make_workspace(net.sizes, n, net.dtype)
        f64 = np.float64
        sw = np.sqrt(weights) if weights.shape[0] else np.zeros(0, dtype=f64)
        # In the order _lm.MU, ALPHA, BETA, GAMMA, SSE, N_RES, OBJ (SSE and OBJ: the kernel's).
        n_res = total_weight * net.sizes[-1]
        self.fstate = np.array([opt.mu, 0.0, 1.0, N, 0.0, n_res, 0.0], dtype=f64)
        hyper = np.array([opt.mu_increase, opt.mu_decrease, opt.mu_max, float(self.bayes)])
        self.losses, self.mus, self.alphas, self.betas, self.gammas = (
            np.zeros(iterations, dtype=f64) for _ in range(5)
        )
        self.status = np.zeros(1, dtype=np.int64)
        self.args = (
            self.theta, sizes, codes, X, Y, sw, A, Z, np.empty((n, net.sizes[-1]), net.dtype),
            make_second_order_workspace(net.sizes, n, net.dtype), np.empty((R, N), net.dtype),
            np.zeros(R, dtype=f64), np.zeros(R, dtype=f64), np.zeros((K, K), dtype=f64),
            np.zeros((K, K), dtype=f64), np.zeros(N, dtype=f64), np.zeros(N, dtype=f64),
            np.zeros(max(R, N), dtype=f64), np.zeros(N, dtype=f64), hyper, self.fstate,
            np.zeros(1, dtype=np.int64), primal, 1.0 / total_weight, self.losses, self.mus,
            self.alphas, self.betas, self.gammas, self.status,
        )  # fmt: skip

    def run(self, first: int, stop: int) -> int:
        return int(_lm.lm_steps(*self.args, first, stop))

    def record(self, history, k: int) -> None:
        """``history.mu`` (and for BR ``alpha``, ``beta``, ``effective_params``) of iteration k."""
        history.mu.append(float(self.mus[k]))
        if self.bayes:
            history.alpha.append(float(self.alphas[k]))
            history.beta.append(float(self.betas[k]))
            history.effective_params.append(float(self.gammas[k]))


class BayesianRegularization(LevenbergMarquardt):
    """Bayesian regularization (MacKay 1992; Foresee and Hagan 1997), as MATLAB's ``trainbr``.

    Minimises ``F = beta E_D + alpha E_W`` (``E_D`` the sum of squared residuals, ``E_W`` the
    sum of squared parameters) by Levenberg-Marquardt steps
    ``(beta J^T J + (alpha + mu) I) dx = -(beta J^T e + alpha theta)``, and after each
    iteration re-estimates the effective number of parameters
    ``gamma = N - alpha tr((beta J^T J + alpha I)^-1)`` (``trainbr``'s formula, from a
    Cholesky factor of the same normal matrix, in the dual form from ``J J^T``),
    ``alpha = gamma / (2 E_W)`` and ``beta = (n - gamma) / (2 E_D)`` (n residuals). It starts
    from ``alpha = 0``, ``beta = 1``. ``History`` records ``mu``, ``alpha``, ``beta`` and
    ``effective_params`` (gamma) after each iteration; ``History.loss`` stays the mean
    per-sample squared loss (the data term).

    Parameters
    ----------
    mu, mu_increase, mu_decrease, mu_max, max_bytes
        As :class:`LevenbergMarquardt`; ``mu`` defaults to 5e-3 (``trainbr``'s).

    Notes
    -----
    Without a validation set: the fit regularises itself. ``beta`` keeps ``n - gamma`` at
    least 0.5, a guard for a network with about as many effective parameters as residuals.
    """

    _bayes = True
    _name = "BayesianRegularization"

    def __init__(
        self,
        mu: float = 5e-3,
        mu_increase: float = 10.0,
        mu_decrease: float = 0.1,
        mu_max: float = 1e10,
        max_bytes: int = MAX_BYTES,
    ):
        super().__init__(mu, mu_increase, mu_decrease, mu_max, max_bytes)
