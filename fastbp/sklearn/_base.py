"""What the two estimators share: their parameters and checks, fitting with either solver, and
the fitted attributes (the public classes are in :mod:`fastbp.sklearn.estimators`)."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data

from .._validate import check_dtype
from ..activations import ACTIVATIONS
from ..early_stopping import EarlyStopping
from ..losses import check_weights
from ..network import MLP
from ..optim import SGD, Adam

__all__ = ["ACTIVATION_NAMES", "SOLVERS"]

#: scikit-learn's activation names, and fastbp's own, -> fastbp's.
ACTIVATION_NAMES = {"logistic": "sigmoid", **{name: name for name in ACTIVATIONS}}

SOLVERS = ("adam", "sgd", "lbfgs")

_SEED_MAX = np.iinfo(np.int32).max


def _stochastic(est) -> bool:
    return est.solver in ("adam", "sgd")


def _number(value, name: str, low: float, high: float = np.inf, *, integral=False, open_=()):
    """``value`` checked to be a number in ``[low, high]`` (``open_`` names open ends)."""
    kind = numbers.Integral if integral else numbers.Real
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kind):
        what = "an int" if integral else "a real number"
        raise TypeError(f"{name}: expected {what}, got {value!r}")
    bad = value < low or value > high or ("low" in open_ and value == low)
    if bad or ("high" in open_ and value == high) or not np.isfinite(value):
        lo, hi = ("(" if "low" in open_ else "["), (")" if "high" in open_ else "]")
        raise ValueError(f"{name}: expected a value in {lo}{low}, {high}{hi}, got {value!r}")
    return value


def _weights(sample_weight, n: int) -> np.ndarray:
    """``sample_weight`` as float64 ``(n,)`` (ones for None), finite and ``>= 0``."""
    if sample_weight is None:
        return np.ones(n)
    w = np.asarray(sample_weight)
    if w.dtype.kind not in "iuf":
        raise TypeError(f"sample_weight: expected real numbers, got dtype {w.dtype}")
    w = np.array(w, dtype=np.float64)  # a copy: the caller's array is never written
    if w.shape != (n,):
        raise ValueError(
            f"sample_weight: expected shape ({n},), one weight per sample, got {w.shape}"
        )
    check_weights(w)
    if n and not w.sum() > 0.0:
        raise ValueError("sample_weight: every weight is zero; expected a positive sum")
    return w


class _BaseMLP(BaseEstimator):
    """The parameters, fitting and fitted attributes shared by the two estimators."""

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate_init=0.001,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        dtype=np.float64,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype

    # ------------------------------------------------------------------------ parameters
    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, numbers.Integral) else list(sizes)
        return [int(_number(s, "hidden_layer_sizes", 1, integral=True)) for s in sizes]

    def _check_params(self) -> None:
        """Every parameter checked (at fit, not in ``__init__``, as scikit-learn asks)."""
        self._hidden_sizes()
        if self.activation not in ACTIVATION_NAMES:
            raise ValueError(
                f"activation: expected one of {sorted(ACTIVATION_NAMES)}, got {self.activation!r}"
            )
        if self.solver not in SOLVERS:
            raise ValueError(f"solver: expected one of {SOLVERS}, got {self.solver!r}")
        _number(self.alpha, "alpha", 0.0)
        if self.batch_size != "auto":
            _number(self.batch_size, "batch_size", 1, integral=True)
        _number(self.learning_rate_init, "learning_rate_init", 0.0, open_=("low",))
        _number(self.max_iter, "max_iter", 1, integral=True)
        _number(self.tol, "tol", 0.0)
        _number(self.momentum, "momentum", 0.0, 1.0, open_=("high",))
        _number(self.validation_fraction, "validation_fraction", 0.0, 1.0, open_=("low", "high"))
        _number(self.beta_1, "beta_1", 0.0, 1.0, open_=("high",))
        _number(self.beta_2, "beta_2", 0.0, 1.0, open_=("high",))
        _number(self.epsilon, "epsilon", 0.0, open_=("low",))
        _number(self.n_iter_no_change, "n_iter_no_change", 1, integral=True)
        _number(self.max_fun, "max_fun", 1, integral=True)
        check_dtype(self.dtype)

    # ------------------------------------------------------------------------ fitting
    def _new_net(self, n_in: int, n_out: int, loss: str, seed: int) -> MLP:
        sizes = [n_in, *self._hidden_sizes(), n_out]
        hidden = ACTIVATION_NAMES[self.activation]
        acts = [hidden] * (len(sizes) - 2) + ["identity"]
        return MLP(sizes, acts, loss=loss, dtype=self.dtype, seed=seed)

    def _fit(self, X, y, sample_weight, *, incremental: bool, classes=None):
        self._check_params()
        first = not hasattr(self, "net_") or not (incremental or self.warm_start)
        X, Y, stratify, n_out = self._data(X, y, first=first, classes=classes)
        w = _weights(sample_weight, X.shape[0])
        if first:
            self._rng = check_random_state(self.random_state)
            self.net_ = self._new_net(X.shape[1], n_out, self._loss_name(n_out), self._seed())
            self.n_outputs_ = n_out
            self.n_layers_ = self.net_.n_layers + 1
            self.loss_curve_ = []
            self.n_iter_ = 0
            self.best_loss_ = np.inf
            self._optimizer = None
        elif not incremental and self.warm_start:
            self._rng = check_random_state(self.random_state)
        if self.solver == "lbfgs":
            self._fit_lbfgs(X, Y, w)
        else:
            self._fit_stochastic(X, Y, w, stratify, incremental)
        self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else np.nan
        return self

    def _seed(self) -> int:
        return int(self._rng.randint(_SEED_MAX))

    def _fit_lbfgs(self, X, Y, w) -> None:
        from ..optimize import minimize

        curve = []

        def record(intermediate_result):
            curve.append(float(intermediate_result.fun))

        options = {"maxiter": self.max_iter, "maxfun": self.max_fun, "gtol": self.tol}
        result = minimize(
            self.net_, X, Y, sample_weight=w, l2=self.alpha, options=options, callback=record
        )
        self.loss_curve_.extend(curve or [float(result.fun)])
        self.n_iter_ += int(result.nit)
        self.best_loss_ = min(self.best_loss_, float(result.fun))
        if result.status != 0:
            message = result.message if isinstance(result.message, str) else str(result.message)
            warnings.warn(
                f"lbfgs failed to converge after {result.nit} iterations ({message}); "
                "increase max_iter or max_fun, or scale the data",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _fit_stochastic(self, X, Y, w, stratify, incremental: bool) -> None:
        n = X.shape[0]
        batch = min(200, n) if self.batch_size == "auto" else min(int(self.batch_size), n)
        if self._optimizer is None or not incremental:
            decay = self.alpha / batch
            if self.solver == "adam":
                self._optimizer = Adam(
                    self.learning_rate_init, self.beta_1, self.beta_2, self.epsilon, decay
                )
            else:
                nesterov = bool(self.nesterovs_momentum) and self.momentum > 0
                self._optimizer = SGD(self.learning_rate_init, self.momentum, nesterov, decay)
        epochs, validation, stopper, callback = 1, None, None, None
        if not incremental:
            epochs = int(self.max_iter)
            if self.early_stopping:
                X, Xv, Y, Yv, w, wv = train_test_split(
                    X,
                    Y,
                    w,
                    test_size=self.validation_fraction,
                    random_state=self._seed(),
                    stratify=stratify,
                )
                validation = (Xv, Yv, wv)
                stopper = EarlyStopping(self.n_iter_no_change, float(self.tol))
            else:
                callback = self._no_improvement()
        history = self.net_.fit(
            X,
            Y,
            epochs=epochs,
            batch_size=batch,
            optimizer=self._optimizer,
            shuffle=bool(self.shuffle),
            seed=self._seed(),
            validation_data=validation,
            progress=False,
            callback=callback,
            sample_weight=w,
            early_stopping=stopper,
        )
        self.loss_curve_.extend(history.loss)
        self.n_iter_ += len(history.loss)
        self.best_loss_ = min(self.best_loss_, *history.loss)
        if validation is not None:
            self.validation_loss_curve_ = list(history.val_loss)
        if not incremental and history.status == "completed":
            warnings.warn(
                f"Stochastic optimizer: maximum iterations ({self.max_iter}) reached and the "
                "optimization has not converged yet",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _no_improvement(self):
        """scikit-learn's stopping rule on the training loss, as a :meth:`fastbp.MLP.fit`
        callback: stop after more than ``n_iter_no_change`` epochs in a row whose loss is not
        below the best so far minus ``tol``."""
        state = {"best": np.inf, "count": 0}

        def callback(epoch, history):
            loss = history.loss[-1]
            state["count"] = state["count"] + 1 if loss > state["best"] - self.tol else 0
            state["best"] = min(state["best"], loss)
            return state["count"] > self.n_iter_no_change

        return callback

    # ------------------------------------------------------------------------ fitted state
    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "net_")

    @property
    def coefs_(self) -> list[np.ndarray]:
        """Weight matrices in scikit-learn's orientation, shape ``(M^(l-1), M^l)``: views
        ``W^l.T`` into ``net_.params`` (writing them changes the network)."""
        check_is_fitted(self)
        return [W.T for W in self.net_.weights]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Bias vectors, shape ``(M^l,)``: views into ``net_.params``."""
        check_is_fitted(self)
        return list(self.net_.biases)

    def _forward(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        return self.net_.forward(X)

    @available_if(_stochastic)
    def partial_fit(self, X, y, sample_weight=None, **kwargs):
        """One epoch of the stochastic solver over ``(X, y)``, resuming its state.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
            Inputs.
        y : array_like, shape (n_samples,) or (n_samples, n_outputs)
            Targets (class labels for the classifier).
        sample_weight : array_like, shape (n_samples,), optional
            Finite weights ``>= 0``.
        **kwargs
            The classifier's ``classes`` (needed at the first call).

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=True, **kwargs)


_FIT_DOC = """Fit the network to ``(X, y)``.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
            Inputs.
        y : array_like, shape (n_samples,){outputs}
            {targets}
        sample_weight : array_like, shape (n_samples,), optional
            Finite weights ``>= 0`` multiplying each sample's loss.

        Returns
        -------
        self
        """

_PARAMS_DOC = """

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default (100,)
        Widths of the hidden layers.
    activation : str, default "relu"
        Hidden activation: scikit-learn's ``"identity"``, ``"logistic"``, ``"tanh"``,
        ``"relu"``, or any of :data:`fastbp.ACTIVATIONS`.
    solver : {"adam", "sgd", "lbfgs"}, default "adam"
        ``"lbfgs"``: full batch (:func:`fastbp.optimize.minimize`); the others: mini-batches in
        compiled code (:meth:`fastbp.MLP.fit`).
    alpha : float, default 1e-4
        L2 penalty ``alpha / (2 n) sum ||W||^2``.
    batch_size : int or "auto", default "auto"
        Mini-batch size (``"auto"``: ``min(200, n_samples)``; capped at ``n_samples``).
    learning_rate_init : float, default 1e-3
        Learning rate of ``"adam"`` and ``"sgd"`` (constant).
    max_iter : int, default 200
        Epochs (``"adam"``, ``"sgd"``) or L-BFGS iterations.
    shuffle : bool, default True
        Shuffle the samples every epoch.
    random_state : int, RandomState or None
        Seeds the initial weights, the shuffling and the validation split.
    tol : float, default 1e-4
        Stop when the loss has not improved by ``tol`` for more than ``n_iter_no_change``
        epochs; L-BFGS's gradient tolerance.
    warm_start : bool, default False
        Start :meth:`fit` from the fitted network.
    momentum : float, default 0.9
        Momentum of ``"sgd"``, in ``[0, 1)``.
    nesterovs_momentum : bool, default True
        Nesterov momentum for ``"sgd"``.
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the data and stop when its loss stops improving
        (the best epoch's parameters are restored).
    validation_fraction : float, default 0.1
        Share of the data held out for ``early_stopping``.
    beta_1, beta_2, epsilon : float, default 0.9, 0.999, 1e-8
        Adam's hyper-parameters.
    n_iter_no_change : int, default 10
        Patience of the stopping rules.
    max_fun : int, default 15000
        Most loss evaluations of L-BFGS.
    dtype : {numpy.float64, numpy.float32}, default numpy.float64
        Dtype of the network.
"""

_ATTRS_DOC = """
    Attributes
    ----------
    net_ : fastbp.MLP
        The fitted network.
    coefs_, intercepts_ : list of ndarray
        Weights ``(M^(l-1), M^l)`` and biases, views into ``net_.params``.
    loss_curve_ : list of float
        Mean training loss per epoch (``"lbfgs"``: per iteration, penalty included).
    loss_, best_loss_ : float
        The last and the lowest value of ``loss_curve_``.
    validation_loss_curve_ : list of float
        With ``early_stopping``: the mean loss on the held-out data per epoch.
    n_iter_ : int
        Epochs or iterations run (over every fit with ``warm_start``).
    n_features_in_ : int
        Number of input features.
    n_outputs_, n_layers_ : int
        Outputs of the network, and its layers counting the input layer.
"""
