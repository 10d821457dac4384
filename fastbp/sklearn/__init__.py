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

try:
    import sklearn  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    from .._extras import missing_extra

    raise missing_extra("sklearn", exc) from exc

from .convert import from_sklearn
from .estimators import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor", "from_sklearn"]
