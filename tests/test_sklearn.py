"""fastbp.sklearn: scikit-learn's estimator checks, fitted attributes, partial_fit, sample
weights, and from_sklearn against scikit-learn's own MLP."""

import numpy as np
import pytest

pytest.importorskip("sklearn", minversion="1.6")
pytest.importorskip("scipy")

from sklearn import neural_network  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_blobs, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastbp  # noqa: E402
from fastbp.sklearn import MLPClassifier, MLPRegressor, from_sklearn  # noqa: E402

# Small networks and few iterations stop before convergence: ConvergenceWarning is expected
# (test_convergence_warning checks that it is raised).
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# Small networks and few iterations keep the checks quick; the full-batch solver ("lbfgs") and
# both stochastic ones are checked.
ESTIMATORS = [
    MLPRegressor((8,), solver="lbfgs", max_iter=50),
    MLPClassifier((8,), solver="lbfgs", max_iter=50),
    MLPRegressor((8,), solver="adam", learning_rate_init=0.01, batch_size=16, max_iter=40),
    MLPClassifier((8,), solver="sgd", learning_rate_init=0.05, batch_size=16, max_iter=40),
]

#: Checks a stochastic solver fails by design: its mini-batches are drawn from the rows, so a
#: weight of k is not k repeated rows, and a row of weight 0 still takes a place in a batch.
MINIBATCH_WEIGHTS = (
    "mini-batch solver: an integer sample weight scales a row's gradient within its batch; "
    "it is not that many repeated rows, which change the batches (the full-batch 'lbfgs' "
    "passes this check)"
)


def expected_failed_checks(estimator):
    if estimator.solver == "lbfgs":
        return {}
    return {
        "check_sample_weight_equivalence_on_dense_data": MINIBATCH_WEIGHTS,
    }


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture
def blobs():
    X, y = make_blobs(120, n_features=4, centers=3, random_state=0)
    return StandardScaler().fit_transform(X), y


@pytest.fixture
def regression():
    X, y = make_regression(120, n_features=5, n_targets=2, noise=0.1, random_state=0)
    return X, y / y.std(axis=0)


def test_fitted_attributes_in_scikit_learn_orientation(blobs):
    X, y = blobs
    clf = MLPClassifier((6, 5), activation="tanh", solver="lbfgs", max_iter=50, random_state=0)
    assert clf.fit(X, y) is clf
    assert isinstance(clf.net_, fastbp.MLP)
    assert clf.net_.sizes == (4, 6, 5, 3)
    assert clf.net_.loss_name == "softmax_cross_entropy"
    assert [W.shape for W in clf.coefs_] == [(4, 6), (6, 5), (5, 3)]
    assert [b.shape for b in clf.intercepts_] == [(6,), (5,), (3,)]
    assert np.array_equal(clf.coefs_[1], clf.net_.weights[1].T)
    assert clf.n_features_in_ == 4 and clf.n_outputs_ == 3 and clf.n_layers_ == 4
    assert 1 <= clf.n_iter_ <= 50 and len(clf.loss_curve_) == clf.n_iter_
    assert clf.loss_ == clf.loss_curve_[-1] and clf.best_loss_ <= clf.loss_
    assert np.array_equal(clf.classes_, [0, 1, 2])
    assert clf.score(X, y) > 0.9
    P = clf.predict_proba(X)
    assert np.allclose(P.sum(axis=1), 1.0)
    assert np.array_equal(clf.predict(X), clf.classes_[P.argmax(axis=1)])


def test_binary_classifier_has_one_sigmoid_logit_and_string_labels(blobs):
    X, y = blobs
    labels = np.where(y == 0, "cat", "dog")
    clf = MLPClassifier((5,), solver="lbfgs", max_iter=300, random_state=0).fit(X, labels)
    assert clf.net_.loss_name == "sigmoid_cross_entropy" and clf.net_.sizes[-1] == 1
    assert clf.predict_proba(X).shape == (120, 2)
    assert set(clf.predict(X)) == {"cat", "dog"}
    assert clf.score(X, labels) > 0.95


@pytest.mark.parametrize("solver", ["lbfgs", "adam", "sgd"])
def test_multi_output_regression_every_solver(regression, solver):
    X, Y = regression
    reg = MLPRegressor((16,), solver=solver, batch_size=16, learning_rate_init=0.01, max_iter=200)
    reg.set_params(random_state=0, n_iter_no_change=200).fit(X, Y)
    assert reg.predict(X).shape == (120, 2)
    assert reg.score(X, Y) > 0.9


def test_partial_fit_resumes_and_needs_classes_first(blobs):
    X, y = blobs
    clf = MLPClassifier((8,), solver="adam", learning_rate_init=0.01, batch_size=20, random_state=0)
    with pytest.raises(ValueError, match="classes: needed at the first call"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[:60], y[:60], classes=[0, 1, 2])
    steps = clf._optimizer.steps
    for _ in range(30):
        clf.partial_fit(X, y)
    assert clf.n_iter_ == 31 and clf._optimizer.steps == steps + 30 * 6
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.score(X, y) > 0.9
    with pytest.raises(ValueError, match=r"labels \[7\] are not among classes_"):
        clf.partial_fit(X[:2], [7, 0])
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")


def test_warm_start_continues_from_the_fitted_network(regression):
    X, Y = regression
    kw = {"solver": "lbfgs", "max_iter": 5, "random_state": 0}
    cold = MLPRegressor((8,), **kw)
    warm = MLPRegressor((8,), warm_start=True, **kw)
    cold.fit(X, Y)
    warm.fit(X, Y)
    start = warm.net_.params.copy()
    cold.fit(X, Y)
    warm.fit(X, Y)
    assert warm.n_iter_ == 10 and cold.n_iter_ == 5
    assert not np.array_equal(warm.net_.params, start)
    assert warm.loss_ < cold.loss_


def test_sample_weight_zero_removes_a_sample_for_lbfgs(blobs):
    X, y = blobs
    w = np.ones(len(y))
    w[::3] = 0.0
    est = MLPClassifier((6,), solver="lbfgs", max_iter=30, random_state=0)
    a = clone(est).fit(X, y, sample_weight=w)
    b = clone(est).fit(X[w > 0], y[w > 0])
    assert np.allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-9, atol=1e-12)


def test_early_stopping_restores_the_best_validation_epoch(regression):
    X, Y = regression
    reg = MLPRegressor(
        (8,), solver="adam", early_stopping=True, n_iter_no_change=3, max_iter=300,
        learning_rate_init=0.05, batch_size=8, random_state=0,
    )  # fmt: skip
    reg.fit(X, Y)
    assert reg.n_iter_ < 300
    assert len(reg.validation_loss_curve_) == reg.n_iter_


def test_pipeline_and_grid_search(blobs):
    X, y = blobs
    pipe = make_pipeline(StandardScaler(), MLPClassifier(solver="lbfgs", random_state=0))
    grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(4,), (8,)]}, cv=3)
    grid.fit(X, y)
    assert grid.best_score_ > 0.9


@pytest.mark.parametrize(
    "bad, error, match",
    [
        ({"solver": "rprop"}, ValueError, "solver: expected one of"),
        ({"activation": "gelu"}, ValueError, "activation: expected one of"),
        ({"hidden_layer_sizes": (4, 0)}, ValueError, "hidden_layer_sizes: expected a value"),
        ({"alpha": -1.0}, ValueError, "alpha: expected a value"),
        ({"max_iter": 2.5}, TypeError, "max_iter: expected an int"),
        ({"dtype": np.int32}, TypeError, "dtype: expected float32 or float64"),
    ],
)
def test_bad_parameters_raise_at_fit_naming_the_parameter(blobs, bad, error, match):
    X, y = blobs
    est = MLPClassifier(**bad)  # scikit-learn's rule: __init__ only stores
    with pytest.raises(error, match=match):
        est.fit(X, y)


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("kind", ["regressor", "binary", "multiclass"])
def test_from_sklearn_predicts_the_same_to_1e12(blobs, regression, activation, kind):
    if kind == "regressor":
        X, y = regression
        theirs = neural_network.MLPRegressor(
            hidden_layer_sizes=(7, 5), activation=activation, solver="lbfgs"
        )
    else:
        X, y = blobs
        y = y % 2 if kind == "binary" else y
        theirs = neural_network.MLPClassifier(
            hidden_layer_sizes=(7, 5), activation=activation, solver="lbfgs"
        )
    theirs.set_params(max_iter=20, random_state=0).fit(X, y)
    ours = from_sklearn(theirs)
    assert type(ours).__name__ == type(theirs).__name__
    assert ours.get_params()["hidden_layer_sizes"] == (7, 5)
    assert ours.n_iter_ == theirs.n_iter_
    rng = np.random.default_rng(1)
    Xt = np.vstack([X, rng.normal(scale=3.0, size=(50, X.shape[1]))])
    if kind == "regressor":
        expected, got = theirs.predict(Xt), ours.predict(Xt)
    else:
        expected, got = theirs.predict_proba(Xt), ours.predict_proba(Xt)
        assert np.array_equal(ours.predict(Xt), theirs.predict(Xt))
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) <= 1e-12 * max(1.0, np.max(np.abs(expected)))
    # ...and it trains on from there (warm start of the copied weights).
    ours.set_params(warm_start=True, max_iter=5)
    ours.fit(X, y)


def test_from_sklearn_refuses_other_estimators():
    with pytest.raises(TypeError, match="expected a scikit-learn MLPRegressor or MLPClassifier"):
        from_sklearn(StandardScaler())


@pytest.mark.parametrize("solver", ["lbfgs", "adam"])
def test_convergence_warning_when_max_iter_stops_the_fit(blobs, solver):
    X, y = blobs
    with pytest.warns(ConvergenceWarning, match="(lbfgs failed|maximum iterations)"):
        MLPClassifier((4,), solver=solver, max_iter=2, random_state=0).fit(X, y)
