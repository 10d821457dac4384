"""From scikit-learn's MLP to fastbp's: :func:`from_sklearn`."""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ..network import MLP
from ._base import ACTIVATION_NAMES
from .estimators import MLPClassifier, MLPRegressor

__all__ = ["from_sklearn"]


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
