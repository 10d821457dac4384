"""The loss table: cross-entropy losses and gradients against PyTorch (golden file), the NumPy
oracle (tests/reference_losses.py) and central finite differences; delta^L directly; finite
logits of +-1e4; labels and probability targets and their errors; predict_proba/classes.

The MLP calls here run on the plain tier (the fixture below; the same bits as the tiled
drivers, checked in tests/test_losses_tiled.py, marked slow): the tiled drivers' signatures
with a loss code compile for tens of seconds cold, the plain tier's kernels in a few.
"""

import os

import numpy as np
import pytest
import reference_losses as ref

import fastbp
from fastbp._kernels import losses as klosses

GOLDEN = np.load(os.path.join(os.path.dirname(__file__), "data", "torch_losses.npz"))
SIZES = [40, 70, 12]
ACTS = ["tanh", "identity"]
CE = ("softmax_cross_entropy", "sigmoid_cross_entropy")


@pytest.fixture(autouse=True)
def plain_tier(monkeypatch):
    """MLP calls and fit steps on the plain tier (fastbp._dispatch: the same bits)."""
    monkeypatch.setattr(fastbp._dispatch, "tiled_ready", lambda kernel, args: False)
    monkeypatch.setattr(fastbp.train, "tiled_ready", lambda kernel, args: False)


def _net(loss, dtype=np.float64):
    net = fastbp.MLP(SIZES, ACTS, loss=loss, dtype=dtype, seed=0)
    net.params = GOLDEN["theta"]
    return net


def test_loss_codes_match_the_name_table():
    assert fastbp.LOSSES == ("squared", "softmax_cross_entropy", "sigmoid_cross_entropy")
    codes = (klosses.SQUARED, klosses.SOFTMAX_CE, klosses.SIGMOID_CE)
    assert codes == tuple(range(len(fastbp.LOSSES)))


CASES = [  # golden name, loss, targets, weights
    ("ce_labels", "softmax_cross_entropy", "labels", None),
    ("ce_probs", "softmax_cross_entropy", "P", None),
    ("bce", "sigmoid_cross_entropy", "T", None),
    ("ce_weighted", "softmax_cross_entropy", "labels", "w"),
    ("bce_weighted", "sigmoid_cross_entropy", "T", "w"),
]


@pytest.mark.parametrize("golden,loss,targets,weights", CASES)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-4)])
def test_against_pytorch(golden, loss, targets, weights, dtype, tol):
    net = _net(loss, dtype)
    X = GOLDEN["X"].astype(dtype)
    Y = GOLDEN[targets]
    if targets != "labels":
        Y = Y.astype(dtype)
    w = None if weights is None else GOLDEN[weights]
    value, grad = net.loss_and_grad(X, Y, sample_weight=w)
    want_loss, want_grad = float(GOLDEN[golden + "_loss"]), GOLDEN[golden + "_grad"]
    assert value == pytest.approx(want_loss, rel=tol)
    assert net.loss(X, Y, sample_weight=w) == pytest.approx(want_loss, rel=tol)
    scale = np.abs(want_grad).max()
    assert np.abs(grad - want_grad).max() <= tol * scale


@pytest.mark.parametrize("loss", fastbp.LOSSES)
def test_against_the_numpy_oracle_and_finite_differences(loss, rng):
    sizes = [5, 9, 4]
    net = fastbp.MLP(sizes, ["softplus", "identity"], loss=loss, seed=3)
    X = rng.normal(size=(11, 5))
    if loss == "softmax_cross_entropy":
        Y = rng.random(size=(11, 4))
        Y /= Y.sum(axis=1, keepdims=True)
    else:
        Y = rng.random(size=(11, 4))
    w = rng.random(11) * 2
    value, grad = net.loss_and_grad(X, Y, sample_weight=w)
    want, want_grad = ref.loss_and_grad(loss, net.params, sizes, net.activations, X, Y, w)
    assert value == pytest.approx(want, rel=1e-13)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-11, atol=1e-13)
    theta = net.params.copy()
    for k in rng.choice(net.n_params, size=12, replace=False):
        h = 1e-5
        up, down = theta.copy(), theta.copy()
        up[k] += h
        down[k] -= h
        net.params = up
        l_up = net.loss(X, Y, sample_weight=w)
        net.params = down
        l_down = net.loss(X, Y, sample_weight=w)
        assert (l_up - l_down) / (2 * h) == pytest.approx(grad[k], rel=1e-6, abs=1e-8)
    net.params = theta


@pytest.mark.parametrize("loss", CE)
def test_output_delta_directly(loss, rng):
    z = rng.normal(size=(6, 5)) * 3
    Y = ref.one_hot(rng.integers(0, 5, size=6), 5)
    w = rng.random(6)
    code = fastbp.LOSSES.index(loss)
    a = np.ones_like(z)  # h'(a^L) = 1 for the identity output
    total = klosses.loss_delta(code, a, z, Y, w)
    np.testing.assert_allclose(a, ref.output_delta(loss, z, Y, w), rtol=1e-14, atol=1e-16)
    assert total == pytest.approx((w * ref.per_sample_loss(loss, z, Y)).sum(), rel=1e-14)
    # One sample, by the one per-sample function the derivative methods reuse.
    row = np.ones(5)
    value = klosses.sample_delta(code, row, z[0], Y[0], 1.0)
    np.testing.assert_allclose(row, ref.output_delta(loss, z[:1], Y[:1], [1.0])[0], rtol=1e-14)
    assert value == pytest.approx(ref.per_sample_loss(loss, z[:1], Y[:1])[0], rel=1e-14)


@pytest.mark.parametrize("loss", CE)
def test_finite_at_huge_logits(loss):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]])
    Y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    a = np.ones_like(z)
    total = klosses.loss_delta(fastbp.LOSSES.index(loss), a, z, Y, np.empty(0))
    assert np.isfinite(total) and np.isfinite(a).all()
    assert total == pytest.approx(ref.per_sample_loss(loss, z, Y).sum(), rel=1e-15)
    if loss == "softmax_cross_entropy":
        assert total == pytest.approx(2e4 + 2e4, rel=1e-15)
        np.testing.assert_array_equal(a, [[1.0, -1.0, 0.0], [-1.0, 0.0, 1.0]])


def test_labels_equal_one_hot_probabilities(rng):
    net = _net("softmax_cross_entropy")
    X, labels = GOLDEN["X"], GOLDEN["labels"]
    P = ref.one_hot(labels, SIZES[-1])
    assert net.loss_and_grad(X, labels)[0] == net.loss_and_grad(X, P)[0]
    np.testing.assert_array_equal(net.loss_and_grad(X, labels)[1], net.loss_and_grad(X, P)[1])
    assert net.loss(X[0], labels[0]) == net.loss(X[:1], labels[:1])  # one sample, 0-D label
    assert net.loss(X, labels.astype(np.int32)) == net.loss(X, labels)


def test_sigmoid_one_output_takes_a_vector_of_targets(rng):
    net = fastbp.MLP([3, 6, 1], ["tanh", "identity"], loss="sigmoid_cross_entropy", seed=1)
    X = rng.normal(size=(9, 3))
    t = rng.integers(0, 2, size=9)
    assert net.loss(X, t) == net.loss(X, t.reshape(-1, 1).astype(float))


@pytest.mark.parametrize(
    "loss,Y,match",
    [
        ("softmax_cross_entropy", np.array([0, 12, 1]), r"Y: class labels must be .*\[0, 12\)"),
        ("softmax_cross_entropy", np.array([0, -1, 1]), "Y: class labels"),
        ("softmax_cross_entropy", np.full((3, 12), 0.5), "Y: expected probabilities whose rows"),
        ("softmax_cross_entropy", np.eye(12)[:3] * 2 - np.eye(12)[:3], None),  # valid
        ("sigmoid_cross_entropy", np.full((3, 12), 1.5), r"Y: expected probabilities in \[0, 1\]"),
        ("sigmoid_cross_entropy", np.full((3, 12), -0.5), "Y: expected probabilities"),
        ("softmax_cross_entropy", -np.eye(12)[:3] + 2 * np.eye(12)[1:4], "Y: expected prob"),
        ("softmax_cross_entropy", np.array([0, 1]), "X, Y: expected the same number"),
    ],
)
def test_bad_targets_name_Y(loss, Y, match):
    net = _net(loss)
    X = GOLDEN["X"][:3]
    before = net.params.copy()
    if match is None:
        net.loss_and_grad(X, Y)
        return
    for call in (lambda: net.loss(X, Y), lambda: net.loss_and_grad(X, Y)):
        with pytest.raises(ValueError, match=match):
            call()
    np.testing.assert_array_equal(net.params, before)


def test_constructor_checks_the_loss():
    with pytest.raises(ValueError, match="last activation must be 'identity'"):
        fastbp.MLP([3, 4, 2], "tanh", loss="softmax_cross_entropy")
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        fastbp.MLP([3, 4, 2], loss="hinge")
    with pytest.raises(TypeError, match="loss: expected a loss name"):
        fastbp.MLP([3, 4, 2], loss=1)
    net = fastbp.MLP([3, 4, 2], ["tanh", "identity"], loss="sigmoid_cross_entropy")
    assert net.loss_name == "sigmoid_cross_entropy" and "sigmoid_cross_entropy" in repr(net)
    assert net.copy().loss_name == "sigmoid_cross_entropy"
    assert fastbp.MLP([3, 4, 2]).loss_name == "squared"


def test_predict_proba_and_classes(rng):
    X = rng.normal(size=(8, SIZES[0]))
    soft = _net("softmax_cross_entropy")
    z = soft.forward(X)
    p = soft.predict_proba(X)
    np.testing.assert_allclose(p, np.exp(z) / np.exp(z).sum(1, keepdims=True), rtol=1e-13)
    np.testing.assert_array_equal(soft.predict_classes(X), z.argmax(1))
    assert soft.predict_classes(X[0]) == z[0].argmax()
    sig = _net("sigmoid_cross_entropy")
    z = sig.forward(X)
    np.testing.assert_allclose(sig.predict_proba(X), 1 / (1 + np.exp(-z)), rtol=1e-13)
    np.testing.assert_array_equal(sig.predict_classes(X), (z > 0).astype(np.int64))
    for what in ("predict_proba", "predict_classes"):
        with pytest.raises(ValueError, match=f"{what}: needs a cross-entropy loss"):
            getattr(fastbp.MLP([3, 2]), what)(np.ones((1, 3)))


def test_driver_checks_loss_arguments():
    net = fastbp.MLP([3, 4, 2], ["tanh", "tanh"])
    theta, sizes, codes = net.kernel_args()
    A, Z, tmp = fastbp.kernels.make_workspace(net.sizes, 2, net.dtype)
    X, Y = np.ones((2, 3)), np.full((2, 2), 0.5)
    grad = np.empty_like(theta)
    plain = fastbp._plain.plain_loss_and_grad
    with pytest.raises(ValueError, match="identity output layer"):
        plain(theta, sizes, codes, X, Y, A, Z, tmp, grad, 1, np.empty(0))
    with pytest.raises(ValueError, match="loss_code must be"):
        plain(theta, sizes, codes, X, Y, A, Z, tmp, grad, 3, np.empty(0))
    with pytest.raises(ValueError, match="weights must have length B"):
        plain(theta, sizes, codes, X, Y, A, Z, tmp, grad, 0, np.ones(3))
    with pytest.raises(ValueError, match="sample_weight: expected finite values >= 0"):
        plain(theta, sizes, codes, X, Y, A, Z, tmp, grad, 0, np.array([1.0, -1.0]))
