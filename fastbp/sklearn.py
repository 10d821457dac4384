"""scikit-learn estimators over fastbp networks: :class:`MLPRegressor` and :class:`MLPClassifier`.

They take scikit-learn's parameter names where the meaning is the same (``hidden_layer_sizes``,
``activation``, ``solver``, ``alpha``, ``batch_size``, ``learning_rate_init``, ``max_iter``,
``tol``, ``n_iter_no_change``, ``early_stopping``, ``validation_fraction``, ``random_state``,
``warm_start``...) and fit in fastbp's compiled code, so they drop into a pipeline, a grid search
or a cross-validation loop. :func:`from_sklearn` turns a fitted
:class:`sklearn.neural_network.MLPRegressor` or ``MLPClassifier`` into one of these with the same
weights. Needs the optional extra: ``pip install "fastbp[sklearn]"`` (scikit-learn >= 1.6, SciPy).

What differs from scikit-learn's MLP
------------------------------------
- The loss of a sample is fastbp's: ``1/2 ||f(x) - y||^2`` summed over the outputs (scikit-learn
  averages over the outputs too), softmax cross-entropy, or for two classes the sigmoid
  cross-entropy of one logit. Training minimises its mean over the samples (weighted with
  ``sample_weight``) plus ``alpha / (2 n) sum ||W||^2``, ``n`` the sum of the weights.
- ``"lbfgs"`` is :func:`fastbp.optimize.minimize` (SciPy's L-BFGS-B), full batch, where an
  integer sample weight is exactly a repeated sample. ``"adam"`` and ``"sgd"`` are
  :meth:`fastbp.MLP.fit` (constant learning rate), whose L2 decay ``alpha / batch_size`` also
  reaches the biases (PyTorch's ``weight_decay``).
- ``early_stopping`` watches the validation loss (:class:`fastbp.EarlyStopping` with
  ``patience=n_iter_no_change``, ``min_delta=tol``) rather than the validation score.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - depends on the environment
    from ._extras import missing_extra

    raise missing_extra("sklearn", exc) from exc

from ._validate import check_dtype
from .activations import ACTIVATIONS
from .early_stopping import EarlyStopping
from .losses import check_weights
from .network import MLP
from .optim import SGD, Adam

__all__ = ["MLPClassifier", "MLPRegressor", "from_sklearn"]

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

    _loss_for_outputs: str  # set by each subclass

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
        from .optimize import minimize

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


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = (
        "A multi-layer perceptron regressor: scikit-learn's interface, fastbp's network.\n\n"
        "    The output layer is linear and the loss the squared error; ``y`` may have several\n"
        "    columns (one output each)." + _PARAMS_DOC + _ATTRS_DOC
    )

    def _loss_name(self, n_out: int) -> str:
        return "squared"

    def _data(self, X, y, *, first: bool, classes=None):
        X, y = validate_data(
            self,
            X,
            y,
            reset=first,
            multi_output=True,
            y_numeric=True,
            dtype=(np.float64, np.float32),
        )
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        if not first and Y.shape[1] != self.n_outputs_:
            raise ValueError(f"y: expected {self.n_outputs_} outputs, got {Y.shape[1]}")
        return X, Y, None, Y.shape[1]

    def fit(self, X, y, sample_weight=None):
        return self._fit(X, y, sample_weight, incremental=False)

    fit.__doc__ = _FIT_DOC.format(outputs=" or (n_samples, n_outputs)", targets="Targets.")

    def predict(self, X) -> np.ndarray:
        """Predicted values.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        ndarray, shape (n_samples,) or (n_samples, n_outputs)
            The network's outputs (1-D for one output).
        """
        out = self._forward(X)
        return out.ravel() if out.shape[1] == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = (
        "A multi-layer perceptron classifier: scikit-learn's interface, fastbp's network.\n\n"
        "    Two classes: one logit and the sigmoid cross-entropy; more: one logit per class\n"
        "    and the softmax cross-entropy (fastbp.LOSSES)."
        + _PARAMS_DOC
        + _ATTRS_DOC
        + ("    classes_ : ndarray, shape (n_classes,)\n        The class labels.\n")
    )

    def _loss_name(self, n_out: int) -> str:
        return "sigmoid_cross_entropy" if n_out == 1 else "softmax_cross_entropy"

    def _data(self, X, y, *, first: bool, classes=None):
        X, y = validate_data(self, X, y, reset=first, dtype=(np.float64, np.float32))
        check_classification_targets(y)
        if first:
            labels = np.unique(y) if classes is None else np.unique(np.asarray(classes))
            if labels.shape[0] < 2:
                raise ValueError(
                    f"y: expected samples of at least 2 classes, got 1 class ({labels[0]!r})"
                )
            self.classes_ = labels
        codes = np.searchsorted(self.classes_, y)
        codes = np.minimum(codes, self.classes_.shape[0] - 1)
        unknown = self.classes_[codes] != y
        if unknown.any():
            raise ValueError(
                f"y: labels {np.unique(y[unknown]).tolist()} are not among classes_ "
                f"{self.classes_.tolist()}"
            )
        k = self.classes_.shape[0]
        if k == 2:
            return X, codes.astype(np.float64), codes, 1  # 0/1 targets of one sigmoid logit
        return X, codes.astype(np.int64), codes, k

    def fit(self, X, y, sample_weight=None):
        return self._fit(X, y, sample_weight, incremental=False)

    fit.__doc__ = _FIT_DOC.format(outputs="", targets="Class labels (at least 2 classes).")

    @available_if(_stochastic)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch of the stochastic solver over ``(X, y)``, resuming its state.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
            Inputs.
        y : array_like, shape (n_samples,)
            Class labels, among ``classes``.
        sample_weight : array_like, shape (n_samples,), optional
            Finite weights ``>= 0``.
        classes : array_like, shape (n_classes,), optional
            Every class label; needed at the first call, ignored after.

        Returns
        -------
        self
        """
        if not hasattr(self, "net_") and classes is None:
            raise ValueError("classes: needed at the first call of partial_fit")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        ndarray, shape (n_samples, n_classes)
            Probabilities in the order of ``classes_``; rows sum to 1.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        P = self.net_.predict_proba(X)
        return np.hstack([1.0 - P, P]) if P.shape[1] == 1 else P

    def predict_log_proba(self, X) -> np.ndarray:
        """Logarithms of :meth:`predict_proba`.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        ndarray, shape (n_samples, n_classes)
            ``log(predict_proba(X))``.
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """Predicted class labels.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        ndarray, shape (n_samples,)
            The class of largest probability (for two classes: a positive logit).
        """
        logits = self._forward(X)
        if logits.shape[1] == 1:
            return self.classes_[(logits[:, 0] > 0).astype(np.intp)]
        return self.classes_[np.argmax(logits, axis=1)]


def from_sklearn(est, dtype=np.float64):
    """A fastbp estimator with the weights of a fitted scikit-learn MLP.

    Parameters
    ----------
    est : sklearn.neural_network.MLPRegressor or sklearn.neural_network.MLPClassifier
        A fitted estimator (single-label classification; not multilabel).
    dtype : {numpy.float64, numpy.float32}, default numpy.float64
        Dtype of the new network.

    Returns
    -------
    MLPRegressor or MLPClassifier
        Fitted, with the same weights, classes and hyper-parameters where fastbp has them (the
        learning-rate schedule is always constant): in float64 its predictions equal ``est``'s
        up to rounding.

    Raises
    ------
    TypeError
        For another kind of estimator.
    ValueError
        For a multilabel classifier, or a regressor with another loss than the squared error.
    """
    from sklearn import neural_network

    if isinstance(est, neural_network.MLPClassifier):
        new_cls = MLPClassifier
    elif isinstance(est, neural_network.MLPRegressor):
        new_cls = MLPRegressor
    else:
        raise TypeError(
            f"est: expected a scikit-learn MLPRegressor or MLPClassifier, got {type(est).__name__}"
        )
    check_is_fitted(est)
    theirs = est.get_params()
    if theirs.get("loss", "squared_error") != "squared_error":
        raise ValueError(f"est: loss {theirs['loss']!r}; fastbp's regressor has the squared error")
    new = new_cls(**{key: theirs[key] for key in new_cls().get_params() if key in theirs})
    new.set_params(dtype=dtype)
    new._check_params()
    sizes = [est.coefs_[0].shape[0]] + [W.shape[1] for W in est.coefs_]
    loss = "squared"
    if new_cls is MLPClassifier:
        if est.out_activation_ == "logistic" and len(est.classes_) > 2:
            raise ValueError("est: a multilabel classifier; fastbp.sklearn takes one label")
        loss = new._loss_name(sizes[-1])
        new.classes_ = np.array(est.classes_, copy=True)
    hidden = ACTIVATION_NAMES[est.activation]
    acts = [hidden] * (len(sizes) - 2) + ["identity"]
    new.net_ = MLP(sizes, acts, loss=loss, dtype=dtype, seed=0)
    for W, b, coef, intercept in zip(
        new.net_.weights, new.net_.biases, est.coefs_, est.intercepts_
    ):
        W[...] = coef.T
        b[...] = intercept
    new.n_features_in_ = est.n_features_in_
    if hasattr(est, "feature_names_in_"):
        new.feature_names_in_ = np.array(est.feature_names_in_, copy=True)
    new.n_outputs_ = sizes[-1]
    new.n_layers_ = len(sizes)
    new.loss_curve_ = list(getattr(est, "loss_curve_", [est.loss_]))
    new.loss_ = float(est.loss_)
    new.best_loss_ = float(getattr(est, "best_loss_", None) or min(new.loss_curve_))
    new.n_iter_ = int(est.n_iter_)
    new._rng = check_random_state(new.random_state)
    new._optimizer = None
    return new
