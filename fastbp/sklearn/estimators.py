"""The estimators: :class:`MLPRegressor` (squared error, any number of outputs) and
:class:`MLPClassifier` (sigmoid or softmax cross-entropy)."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._base import _ATTRS_DOC, _FIT_DOC, _PARAMS_DOC, _BaseMLP, _stochastic

__all__ = ["MLPClassifier", "MLPRegressor"]


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
