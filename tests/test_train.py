"""MLP.fit: the compiled loop against a step-by-step Python loop, determinism, history,
divergence, Ctrl-C, progress bar, argument checks."""

import os
import signal
import sys
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbp
from fastbp import train
from fastbp.datasets import smooth_regression, xor


def _data(n=23, m_in=3, m_out=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, m_in)), rng.uniform(size=(n, m_out))


def _net(sizes=(3, 5, 2), acts=("tanh", "sigmoid"), dtype=np.float64):
    return fastbp.MLP(list(sizes), list(acts), dtype=dtype, seed=1)


def python_loop(net, X, Y, epochs, batch_size, opt, shuffle=True, seed=None):
    """The training loop written in Python from public pieces: same order, mean gradient."""
    X = X.astype(net.dtype)
    Y = Y.astype(net.dtype)
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    grad = np.empty(net.n_params, dtype=net.dtype)
    for _ in range(epochs):
        order = rng.permutation(n) if shuffle else np.arange(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            net.loss_and_grad(X[idx], Y[idx], out=grad)
            opt.step(net.params, grad, scale=1.0 / len(idx))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batch_size", [1, 4, 7, 23, 100])
@pytest.mark.parametrize(
    "make_opt",
    [lambda: fastbp.SGD(0.1), lambda: fastbp.SGD(0.05, momentum=0.9), lambda: fastbp.Adam(0.01)],
    ids=["sgd", "momentum", "adam"],
)
def test_fit_equals_python_loop(make_opt, batch_size, dtype):
    X, Y = _data()
    a = _net(dtype=dtype)
    b = a.copy()
    a.fit(X, Y, epochs=3, batch_size=batch_size, optimizer=make_opt(), seed=7, progress=False)
    python_loop(b, X, Y, 3, batch_size, make_opt(), seed=7)
    if batch_size > 1:
        # The same kernels (loss_and_grad, optimizer_step) in the same order: the same bits.
        np.testing.assert_array_equal(a.params, b.params)
    else:
        # Per-sample steps fuse the update into the backward pass (no gradient array); the
        # arithmetic is that of loss_and_grad, up to the order of its sums.
        rtol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(a.params, b.params, rtol=rtol, atol=rtol)


@pytest.mark.parametrize(
    "sizes,acts",
    [
        ((4, 1), ("identity",)),
        ((3, 6, 5, 2), ("tanh", "relu", "sigmoid")),
        ((2, 7, 1, 4, 3), ("softplus", "leaky_relu", "sigmoid", "identity")),
    ],
)
@pytest.mark.parametrize(
    "make_opt",
    [
        lambda: fastbp.SGD(0.1, weight_decay=0.01),
        lambda: fastbp.SGD(0.05, momentum=0.9, nesterov=True),
        lambda: fastbp.Adam(0.01, weight_decay=0.001),
    ],
    ids=["sgd-wd", "nesterov", "adam-wd"],
)
def test_per_sample_fused_path_equals_python_loop_on_deep_networks(sizes, acts, make_opt):
    X, Y = _data(17, sizes[0], sizes[-1])
    a = _net(sizes, acts)
    b = a.copy()
    a.fit(X, Y, epochs=2, batch_size=1, optimizer=make_opt(), seed=3, progress=False)
    python_loop(b, X, Y, 2, 1, make_opt(), seed=3)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-12, atol=1e-14)
    assert not np.array_equal(a.params, _net(sizes, acts).params)


def test_fit_without_shuffle_follows_sample_order():
    X, Y = _data()
    a, b = _net(), _net()
    a.fit(X, Y, epochs=2, batch_size=5, shuffle=False, optimizer=fastbp.SGD(0.1), progress=False)
    python_loop(b, X, Y, 2, 5, fastbp.SGD(0.1), shuffle=False)
    np.testing.assert_array_equal(a.params, b.params)


def test_same_seed_same_parameters_other_seed_differs():
    X, Y = _data(200)
    runs = []
    for seed in (3, 3, np.random.default_rng(3), 4):
        net = _net()
        net.fit(X, Y, epochs=3, batch_size=8, optimizer=fastbp.Adam(0.01), seed=seed,
                progress=False)  # fmt: skip
        runs.append(net.params.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])
    assert not np.array_equal(runs[0], runs[3])


def test_chunking_does_not_change_results(monkeypatch):
    X, Y = _data(300)
    results = []
    for seconds in (1e-9, 10.0):
        monkeypatch.setattr(train, "CHUNK_SECONDS", seconds)
        net = _net()
        net.fit(X, Y, epochs=2, batch_size=1, seed=0, progress=False)
        results.append(net.params.copy())
    np.testing.assert_array_equal(results[0], results[1])


def test_second_fit_resumes_with_the_optimizer_state():
    X, Y = _data()
    a, b = _net(), _net()
    opt_a = fastbp.SGD(0.05, momentum=0.9)
    gen = np.random.default_rng(5)
    a.fit(X, Y, epochs=1, batch_size=4, optimizer=opt_a, seed=gen, progress=False)
    a.fit(X, Y, epochs=1, batch_size=4, optimizer=opt_a, seed=gen, progress=False)
    b.fit(X, Y, epochs=2, batch_size=4, optimizer=fastbp.SGD(0.05, momentum=0.9),
          seed=np.random.default_rng(5), progress=False)  # fmt: skip
    np.testing.assert_array_equal(a.params, b.params)
    assert opt_a.steps == 12


def test_history_training_loss_is_mean_per_sample_before_each_step():
    X, Y = _data(20)
    net = _net()
    before = []
    # One step per epoch (batch = all samples): the epoch's loss is the loss before the step.
    hist = net.fit(X, Y, epochs=3, batch_size=20, optimizer=fastbp.SGD(0.5), progress=False,
                   callback=lambda e, h: before.append(net.loss(X, Y) / 20))  # fmt: skip
    assert hist.epochs == 3 and hist.steps == 3 and hist.status == "completed"
    assert hist.loss[0] == pytest.approx(_net().loss(X, Y) / 20, rel=1e-13)
    np.testing.assert_allclose(hist.loss[1:], before[:-1], rtol=1e-13)
    assert hist.val_loss == []
    assert len(hist.time) == 3 and all(t1 >= t0 for t0, t1 in zip(hist.time, hist.time[1:]))
    assert hist.train_seconds > 0 and hist.steps_per_second > 0
    assert net.history is hist
    d = hist.as_dict()
    assert d["loss"] == hist.loss and d["steps"] == 3 and d["status"] == "completed"
    assert "epochs=3" in repr(hist)


def test_validation_loss_is_recorded_after_each_epoch():
    X, Y = _data(50)
    Xv, Yv = _data(2100, seed=1)  # more than one validation block
    net = _net()
    seen = []
    hist = net.fit(X, Y, epochs=3, batch_size=8, validation_data=(Xv, Yv), progress=False,
                   callback=lambda e, h: seen.append(net.loss(Xv, Yv) / len(Xv)))  # fmt: skip
    np.testing.assert_allclose(hist.val_loss, seen, rtol=1e-12)


def test_callback_can_stop_training():
    X, Y = _data()
    epochs_seen = []

    def callback(epoch, history):
        epochs_seen.append(epoch)
        return epoch == 2

    hist = _net().fit(X, Y, epochs=10, batch_size=4, callback=callback, progress=False)
    assert epochs_seen == [1, 2]
    assert hist.epochs == 2 and hist.status == "stopped" and hist.steps == 12


def test_training_learns_xor_and_a_smooth_function():
    X, Y = xor()
    net = fastbp.MLP([2, 4, 1], ["tanh", "sigmoid"], seed=0)
    hist = net.fit(X, Y, epochs=2000, batch_size=4, optimizer=fastbp.Adam(0.05), progress=False)
    assert np.array_equal(net.predict(X) > 0.5, Y > 0.5)
    assert hist.loss[-1] < 1e-2 * hist.loss[0]
    X, Y = smooth_regression(400, 1, 1, seed=0)
    net = fastbp.MLP([1, 16, 16, 1], ["tanh", "tanh", "identity"], seed=0)
    loss0 = net.loss(X, Y)
    net.fit(X, Y, epochs=60, batch_size=8, optimizer=fastbp.Adam(0.01), seed=0, progress=False)
    assert net.loss(X, Y) < 1e-2 * loss0


def test_predict_is_forward():
    X, _ = _data()
    net = _net()
    np.testing.assert_array_equal(net.predict(X), net.forward(X))
    np.testing.assert_array_equal(net.predict(X[0]), net.forward(X[0]))
    assert net.history is None


# ---------------------------------------------------------------------------------------------
# Divergence
# ---------------------------------------------------------------------------------------------
def _replay(net0, X, Y, steps, **kw):
    net = net0.copy()
    train.fit(net, X, Y, max_steps=steps, progress=False, **kw)
    return net


def test_divergence_on_non_finite_loss_restores_and_says_where():
    X, Y = smooth_regression(64, 1, 1, seed=0)
    Y *= 100.0
    net0 = fastbp.MLP([1, 32, 1], ["tanh", "identity"], seed=0)
    net = net0.copy()
    kw = dict(epochs=50, batch_size=1, seed=0, optimizer=fastbp.SGD(0.5))
    with pytest.raises(FloatingPointError) as info:
        net.fit(X, Y, progress=False, **kw)
    exc = info.value
    assert isinstance(exc, fastbp.TrainingDiverged)
    msg = str(exc)
    assert f"epoch {exc.epoch}, step {exc.step} of 64: the loss is" in msg
    assert "Lower the learning rate (lr=0.5)" in msg
    assert exc.epoch > 1
    assert np.isfinite(net.params).all()
    hist = exc.history
    assert hist.status == "diverged" and net.history is hist
    assert hist.steps == (exc.epoch - 1) * 64 + exc.step - 1
    # The parameters are those after the last good step, bit for bit.
    kw["optimizer"] = fastbp.SGD(0.5)
    np.testing.assert_array_equal(net.params, _replay(net0, X, Y, hist.steps, **kw).params)


# Under NUMBA_DISABLE_JIT=1 the kernels run as NumPy scalars, which warn on overflow.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("n,bad", [(8, 5), (40, 29)])
def test_divergence_in_the_update_replays_to_the_last_finite_parameters(monkeypatch, n, bad):
    # Identity network w x + b. Steps before `bad` see x = y = 0: no gradient, but weight decay
    # shrinks w by (1 - lr wd) each step. Step bad + 1 sees x = 1e153: the loss is finite,
    # lr * grad is not. Tiny chunks: the failing step is several kernel calls into the epoch.
    monkeypatch.setattr(train, "CHUNK_SECONDS", 1e-9)
    X = np.zeros((n, 1))
    Y = np.zeros((n, 1))
    X[bad, 0] = 1e153
    net0 = fastbp.MLP([1, 1], "identity", seed=0)
    net0.params = [0.8, 0.0]
    net = net0.copy()
    opt = fastbp.SGD(1000.0, weight_decay=1e-5)
    match = f"epoch 1, step {bad + 1} of {n}.*update"
    with pytest.raises(fastbp.TrainingDiverged, match=match) as info:
        net.fit(X, Y, epochs=1, batch_size=1, shuffle=False, optimizer=opt, progress=False)
    expected = 0.8
    for _ in range(bad):
        expected = expected - 1000.0 * (1e-5 * expected)
    np.testing.assert_array_equal(net.params, [expected, 0.0])
    assert info.value.history.steps == bad and opt.steps == bad
    assert np.isfinite(opt.state["velocity"]).all()


# ---------------------------------------------------------------------------------------------
# Ctrl-C
# ---------------------------------------------------------------------------------------------
def test_keyboard_interrupt_from_callback_keeps_history():
    X, Y = _data()
    net = _net()

    def callback(epoch, history):
        if epoch == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        net.fit(X, Y, epochs=10, batch_size=4, seed=2, callback=callback, progress=False)
    hist = info.value.history
    assert net.history is hist
    assert hist.status == "interrupted" and hist.epochs == 3 and hist.steps == 18
    ref = _net()
    ref.fit(X, Y, epochs=3, batch_size=4, seed=2, progress=False)
    np.testing.assert_array_equal(net.params, ref.params)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery to self")
def test_sigint_during_compiled_training_stops_at_a_whole_step(monkeypatch):
    monkeypatch.setattr(train, "CHUNK_SECONDS", 0.01)
    X, Y = smooth_regression(500, 4, 2, seed=0)
    net0 = fastbp.MLP([4, 16, 2], ["tanh", "sigmoid"], seed=0)
    net0.copy().fit(X[:4], Y[:4], epochs=1, batch_size=3, progress=False)  # compile first
    net = net0.copy()
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            net.fit(X, Y, epochs=100_000, batch_size=3, seed=1, progress=False)
    finally:
        timer.cancel()
    hist = info.value.history
    assert hist.status == "interrupted" and hist.steps > 0
    ref = _replay(net0, X, Y, hist.steps, epochs=100_000, batch_size=3, seed=1)
    np.testing.assert_array_equal(net.params, ref.params)
    assert len(hist.loss) == hist.steps // 167


def test_max_steps_stops_inside_an_epoch():
    X, Y = _data()
    net = _net()
    hist = train.fit(net, X, Y, epochs=5, batch_size=4, max_steps=8, progress=False, seed=0)
    assert hist.steps == 8 and hist.epochs == 1 and hist.status == "stopped"


# ---------------------------------------------------------------------------------------------
# Progress bar
# ---------------------------------------------------------------------------------------------
def test_progress_bar_on_request_and_off_when_not_a_terminal(capsys):
    pytest.importorskip("tqdm")
    X, Y = _data()
    _net().fit(X, Y, epochs=2, batch_size=4, progress=True)
    err = capsys.readouterr().err
    assert "12/12" in err and "loss=" in err
    _net().fit(X, Y, epochs=2, batch_size=4)  # progress=None, stderr captured: not a TTY
    _net().fit(X, Y, epochs=2, batch_size=4, progress=False)
    assert capsys.readouterr().err == ""


def test_progress_true_without_tqdm_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    X, Y = _data()
    with pytest.raises(ImportError, match="pip install tqdm"):
        _net().fit(X, Y, epochs=1, progress=True)
    _net().fit(X, Y, epochs=1)  # auto: silently without a bar


# ---------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(epochs=0), ValueError, "epochs"),
        (dict(epochs=1.5), TypeError, "epochs"),
        (dict(epochs=1, batch_size=0), ValueError, "batch_size"),
        (dict(epochs=1, optimizer="sgd"), TypeError, "optimizer"),
        (dict(epochs=1, shuffle=1), TypeError, "shuffle"),
        (dict(epochs=1, seed="x"), TypeError, "seed"),
        (dict(epochs=1, callback=3), TypeError, "callback"),
        (dict(epochs=1, progress="yes"), TypeError, "progress"),
        (dict(epochs=1, validation_data=np.zeros((3, 3))), TypeError, "validation_data"),
        (dict(epochs=1, validation_data=(np.zeros((3, 4)), np.zeros((3, 2)))), ValueError, "X"),
    ],
)
def test_bad_arguments_raise_before_training(kwargs, error, match):
    X, Y = _data()
    net = _net()
    before = net.params.copy()
    with pytest.raises(error, match=match):
        net.fit(X, Y, **kwargs)
    np.testing.assert_array_equal(net.params, before)


def test_bad_data_raise():
    net = _net()
    X, Y = _data()
    with pytest.raises(ValueError, match="X"):
        net.fit(X[:, :2], Y, epochs=1)
    with pytest.raises(ValueError, match="finite"):
        net.fit(np.full_like(X, np.nan), Y, epochs=1)
    with pytest.raises(ValueError, match="2-D batch"):
        net.fit(X[0], Y[0], epochs=1)
    with pytest.raises(ValueError, match="at least one sample"):
        net.fit(X[:0], Y[:0], epochs=1)


def test_batch_larger_than_data_is_one_full_batch():
    X, Y = _data(10)
    net = _net()
    hist = net.fit(X, Y, epochs=2, batch_size=1000, progress=False)
    assert hist.steps == 2 and hist.batch_size == 10


# ---------------------------------------------------------------------------------------------
# Property: any shape, batch size and optimiser, fit follows the Python loop
# ---------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    widths=st.lists(st.integers(1, 6), min_size=2, max_size=4),
    acts=st.lists(st.sampled_from(fastbp.ACTIVATIONS), min_size=3, max_size=3),
    n=st.integers(1, 12),
    batch_size=st.integers(1, 14),
    opt=st.sampled_from(["sgd", "momentum", "nesterov", "adam"]),
    shuffle=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_fit_follows_the_python_loop(widths, acts, n, batch_size, opt, shuffle, seed):
    make = {
        "sgd": lambda: fastbp.SGD(0.05, weight_decay=0.01),
        "momentum": lambda: fastbp.SGD(0.05, momentum=0.5),
        "nesterov": lambda: fastbp.SGD(0.05, momentum=0.5, nesterov=True),
        "adam": lambda: fastbp.Adam(0.01),
    }[opt]
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, widths[0]))
    Y = rng.uniform(size=(n, widths[-1]))
    a = fastbp.MLP(widths, acts[: len(widths) - 1], seed=seed)
    b = a.copy()
    hist = a.fit(X, Y, epochs=2, batch_size=batch_size, optimizer=make(), shuffle=shuffle,
                 seed=seed, progress=False)  # fmt: skip
    python_loop(b, X, Y, 2, min(batch_size, n), make(), shuffle=shuffle, seed=seed)
    assert hist.steps == 2 * -(-n // min(batch_size, n))
    np.testing.assert_allclose(a.params, b.params, rtol=1e-12, atol=1e-14)
    if batch_size > 1 and n > 1:
        np.testing.assert_array_equal(a.params, b.params)
