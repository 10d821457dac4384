"""The full-batch solvers: fastbp.LBFGS, fastbp.LevenbergMarquardt, fastbp.BayesianRegularization.

Oracles: least squares (np.linalg.lstsq) for a network linear in its parameters, the strong
Wolfe conditions checked on the iterates, SciPy's L-BFGS-B, and the evidence of a linear model
maximised numerically over (alpha, beta) for Bayesian regularization.
"""

import numpy as np
import pytest

import fastbp

SOLVERS = {
    "lbfgs": fastbp.LBFGS,
    "lm": fastbp.LevenbergMarquardt,
    "br": fastbp.BayesianRegularization,
}


@pytest.fixture
def smooth(rng):
    X = rng.uniform(-1, 1, size=(40, 2))
    Y = np.sin(2 * X[:, :1]) + 0.5 * X[:, 1:] ** 2
    return X, Y


def _linear(rng, n=30, d=3):
    X = rng.normal(size=(n, d))
    Y = X @ np.array([[1.5], [-2.0], [0.5]])[:d] + 0.3 + 0.1 * rng.normal(size=(n, 1))
    net = fastbp.MLP([d, 1], ["identity"], seed=0)
    return net, X, Y


def _least_squares(X, Y):
    """Parameters [W, b] of the least-squares affine fit."""
    Phi = np.hstack([X, np.ones((len(X), 1))])
    return np.linalg.lstsq(Phi, Y[:, 0], rcond=None)[0]


# ------------------------------------------------------------------------------ L-BFGS
def test_lbfgs_reaches_the_minimiser_of_a_convex_quadratic(rng):
    """An identity network [3, 1]: the loss is a convex quadratic, minimised by least squares."""
    net, X, Y = _linear(rng)
    h = net.fit(X, Y, epochs=100, optimizer=fastbp.LBFGS(tol=1e-14), progress=False)
    assert h.status in ("converged", "completed")
    np.testing.assert_allclose(net.params, _least_squares(X, Y), rtol=1e-7, atol=1e-9)


def test_lbfgs_iterates_meet_the_strong_wolfe_conditions(smooth):
    X, Y = smooth
    n = len(X)
    net = fastbp.MLP([2, 8, 1], ["tanh", "identity"], seed=0)
    points = [net.params.copy()]
    net.fit(
        X, Y, epochs=40, optimizer=fastbp.LBFGS(tol=0.0), progress=False,
        callback=lambda k, h: points.append(net.params.copy()) and None,
    )  # fmt: skip
    probe = net.copy()

    def f_g(theta):
        probe.params = theta
        loss, grad = probe.loss_and_grad(X, Y)
        return loss / n, grad / n

    f0, g0 = f_g(points[0])
    for x0, x1 in zip(points, points[1:]):
        f1, g1 = f_g(x1)
        s = x1 - x0
        slope = g0 @ s
        assert slope < 0  # a descent direction
        assert f1 <= f0 + 1e-3 * slope + 1e-15  # sufficient decrease (c1 = 1e-3)
        assert abs(g1 @ s) <= 0.9 * abs(slope) * (1 + 1e-9)  # curvature (c2 = 0.9)
        f0, g0 = f1, g1


def test_lbfgs_agrees_with_scipy_lbfgsb():
    """On data from a teacher of the same shape, both reach one minimum (these data and this
    start lead both to the same one; other seeds may not: the problem is not convex)."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(60, 2))
    teacher = fastbp.MLP([2, 3, 1], ["tanh", "identity"], seed=7)
    Y = teacher.forward(X) + 0.05 * rng.normal(size=(60, 1))
    n = len(X)
    net = fastbp.MLP([2, 3, 1], ["tanh", "identity"], seed=1)
    start = net.params.copy()
    probe = net.copy()

    def fun(theta):
        probe.params = theta
        loss, grad = probe.loss_and_grad(X, Y)
        return loss / n, grad / n

    ref = minimize(
        fun, start, jac=True, method="L-BFGS-B",
        options={"maxiter": 3000, "ftol": 1e-15, "gtol": 1e-10},
    )  # fmt: skip
    h = net.fit(X, Y, epochs=3000, optimizer=fastbp.LBFGS(tol=1e-12), progress=False)
    assert h.status == "converged"
    assert ref.success
    assert h.loss[-1] == pytest.approx(ref.fun, rel=1e-7)
    np.testing.assert_allclose(net.params, ref.x, atol=1e-2)
    # History.loss is the mean per-sample loss at the final parameters.
    assert h.loss[-1] == pytest.approx(net.loss(X, Y) / n, rel=1e-12)


def test_lbfgs_takes_every_loss(rng):
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)
    net = fastbp.MLP([4, 8, 3], ["tanh", "identity"], loss="softmax_cross_entropy", seed=0)
    before = net.loss(X, y)
    h = net.fit(X, y, epochs=30, optimizer=fastbp.LBFGS(), progress=False)
    assert net.loss(X, y) < 0.5 * before
    assert len(h.loss) == h.steps <= 30


# ---------------------------------------------------------------------- Levenberg-Marquardt
def test_lm_one_step_lands_on_least_squares(rng):
    net, X, Y = _linear(rng)
    h = net.fit(X, Y, epochs=1, optimizer=fastbp.LevenbergMarquardt(mu=1e-12), progress=False)
    assert h.steps == 1 and len(h.mu) == 1
    np.testing.assert_allclose(net.params, _least_squares(X, Y), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("n", [6, 40])  # R < N (dual chosen) and R > N (primal chosen)
@pytest.mark.parametrize("name", ["lm", "br"])
def test_primal_and_dual_forms_take_the_same_steps(rng, n, name):
    X = rng.normal(size=(n, 2))
    Y = np.tanh(X[:, :1] - X[:, 1:])
    nets = []
    for form in ("primal", "dual"):
        net = fastbp.MLP([2, 5, 1], ["tanh", "identity"], seed=0)
        opt = SOLVERS[name](mu=1e-2)
        opt._form = form
        h = net.fit(X, Y, epochs=3, optimizer=opt, progress=False)
        nets.append((net.params.copy(), h))
    (p1, h1), (p2, h2) = nets
    np.testing.assert_allclose(p1, p2, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(h1.mu, h2.mu)
    if name == "br":
        np.testing.assert_allclose(h1.effective_params, h2.effective_params, rtol=1e-8)


def test_lm_fits_a_small_noiseless_set_closely():
    """[1, 10, 1] tanh on 100 samples of sin(3x): L-BFGS stops near 1e-6 (its relative
    decrease test); LM goes far below (a guard on the mu schedule)."""
    X = np.linspace(-1, 1, 100).reshape(-1, 1)
    Y = np.sin(3 * X)
    net = fastbp.MLP([1, 10, 1], ["tanh", "identity"], seed=0)
    h = net.fit(X, Y, epochs=300, optimizer=fastbp.LevenbergMarquardt(), progress=False)
    assert h.loss[-1] < 1e-6
    assert h.loss[-1] == pytest.approx(net.loss(X, Y) / len(X), rel=1e-12)
    assert min(h.mu) < 1e-3


def test_lm_and_br_need_the_squared_loss(rng):
    X = rng.normal(size=(10, 2))
    y = (X[:, 0] > 0).astype(np.int64)
    net = fastbp.MLP([2, 4, 2], ["tanh", "identity"], loss="softmax_cross_entropy", seed=0)
    before = net.params.copy()
    for cls in (fastbp.LevenbergMarquardt, fastbp.BayesianRegularization):
        with pytest.raises(ValueError, match="squared loss.*LBFGS"):
            net.fit(X, y, epochs=2, optimizer=cls(), progress=False)
    assert np.array_equal(net.params, before)


def test_lm_refuses_a_problem_above_max_bytes(rng):
    X = rng.normal(size=(50, 3))
    Y = X[:, :1]
    net = fastbp.MLP([3, 20, 1], ["tanh", "identity"], seed=0)
    before = net.params.copy()
    opt = fastbp.LevenbergMarquardt(max_bytes=10_000)
    # R = 50 residuals < N = 101 parameters: the dual form, a 50 x 50 normal matrix.
    with pytest.raises(ValueError, match=r"R = 50 .*N = 101.*50 x 50.*40,000 bytes.*10,000"):
        net.fit(X, Y, epochs=2, optimizer=opt, progress=False)
    assert np.array_equal(net.params, before)


# ---------------------------------------------------------------- Bayesian regularization
def _evidence_maximum(X, Y):
    """(alpha, beta, gamma) maximising the evidence of the linear model y = Phi w + noise with
    F = beta ||Phi w - y||^2 + alpha ||w||^2 (MATLAB's sums of squares): prior precision 2 alpha,
    noise precision 2 beta, so y ~ N(0, Phi Phi^T / (2 alpha) + I / (2 beta))."""
    from scipy.optimize import minimize

    Phi = np.hstack([X, np.ones((len(X), 1))])
    y = Y[:, 0]

    def minus_log_evidence(p):
        a, b = np.exp(p)
        C = Phi @ Phi.T / (2 * a) + np.eye(len(y)) / (2 * b)
        sign, logdet = np.linalg.slogdet(C)
        return 0.5 * (y @ np.linalg.solve(C, y) + logdet)

    res = minimize(minus_log_evidence, np.zeros(2), method="Nelder-Mead",
                   options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 20000})  # fmt: skip
    alpha, beta = np.exp(res.x)
    lam = np.linalg.eigvalsh(beta * Phi.T @ Phi)
    return alpha, beta, float(np.sum(lam / (lam + alpha)))


def test_br_matches_the_evidence_maximum_of_a_linear_model(rng):
    pytest.importorskip("scipy")
    net, X, Y = _linear(rng, n=30, d=3)
    h = net.fit(X, Y, epochs=500, optimizer=fastbp.BayesianRegularization(), progress=False)
    alpha, beta, gamma = _evidence_maximum(X, Y)
    assert h.alpha[-1] == pytest.approx(alpha, rel=1e-4)
    assert h.beta[-1] == pytest.approx(beta, rel=1e-4)
    assert h.effective_params[-1] == pytest.approx(gamma, rel=1e-5)
    assert len(h.alpha) == len(h.beta) == len(h.mu) == len(h.loss) == h.steps


def test_br_uses_few_effective_parameters_in_an_oversized_network(rng):
    X = np.linspace(-1, 1, 40).reshape(-1, 1)
    Y = np.sin(2 * X) + 0.1 * rng.normal(size=X.shape)
    net = fastbp.MLP([1, 20, 1], ["tanh", "identity"], seed=0)
    h = net.fit(X, Y, epochs=200, optimizer=fastbp.BayesianRegularization(), progress=False)
    assert h.effective_params[-1] < 0.5 * net.n_params


# --------------------------------------------------------------------- fit's contract, all
@pytest.mark.parametrize("name", list(SOLVERS))
def test_bit_identical_run_to_run_chunked_and_at_any_thread_count(smooth, name):
    import numba

    X, Y = smooth
    runs = []
    for threads, callback in ((1, None), (min(2, numba.config.NUMBA_NUM_THREADS), None),
                              (1, lambda k, h: None)):  # fmt: skip
        numba.set_num_threads(threads)
        try:
            net = fastbp.MLP([2, 6, 1], ["tanh", "identity"], seed=3)
            h = net.fit(X, Y, epochs=15, optimizer=SOLVERS[name](), progress=False,
                        callback=callback)  # fmt: skip
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        runs.append((net.params.copy(), h.loss))
    for params, loss in runs[1:]:
        assert np.array_equal(params, runs[0][0])
        assert loss == runs[0][1]


@pytest.mark.parametrize("name", list(SOLVERS))
def test_sample_weight_equals_repeating_rows(smooth, name):
    X, Y = smooth
    w = np.arange(len(X)) % 3  # 0, 1 and 2 copies
    rep = np.repeat(np.arange(len(X)), w)
    a = fastbp.MLP([2, 6, 1], ["tanh", "identity"], seed=0)
    b = a.copy()
    ha = a.fit(X, Y, epochs=8, optimizer=SOLVERS[name](), sample_weight=w, progress=False)
    hb = b.fit(X[rep], Y[rep], epochs=8, optimizer=SOLVERS[name](), progress=False)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ha.loss, hb.loss, rtol=1e-9)


@pytest.mark.parametrize("name", list(SOLVERS))
def test_bad_input_leaves_the_network_unchanged(smooth, name):
    X, Y = smooth
    net = fastbp.MLP([2, 6, 1], ["tanh", "identity"], seed=0)
    before = net.params.copy()
    opt = SOLVERS[name]()
    with pytest.raises(ValueError, match="batch_size.*full-batch.*40"):
        net.fit(X, Y, epochs=2, batch_size=8, optimizer=opt, progress=False)
    Xbad = X.copy()
    Xbad[3, 1] = np.nan
    with pytest.raises(ValueError, match="X"):
        net.fit(Xbad, Y, epochs=2, optimizer=opt, progress=False)
    with pytest.raises(ValueError, match="sample_weight"):
        net.fit(X, Y, epochs=2, optimizer=opt, sample_weight=-np.ones(len(X)), progress=False)
    with pytest.raises(TypeError, match="callback"):
        net.fit(X, Y, epochs=2, optimizer=opt, callback=3, progress=False)
    assert np.array_equal(net.params, before)
    net.fit(X, Y, epochs=1, batch_size=len(X), optimizer=opt, progress=False)  # allowed


@pytest.mark.parametrize("name", list(SOLVERS))
def test_divergence_at_the_start_leaves_the_network_unchanged(name):
    X = np.full((5, 1), 1e200)
    Y = np.zeros((5, 1))
    net = fastbp.MLP([1, 1], ["identity"], seed=0)
    net.params = np.array([1e200, 0.0])
    before = net.params.copy()
    with pytest.raises(fastbp.TrainingDiverged, match="iteration 1.*unchanged") as info:
        net.fit(X, Y, epochs=3, optimizer=SOLVERS[name](), progress=False)
    assert info.value.history.status == "diverged"
    assert np.array_equal(net.params, before)


@pytest.mark.parametrize("name", list(SOLVERS))
def test_validation_early_stopping_and_callback(smooth, name):
    X, Y = smooth
    net = fastbp.MLP([2, 16, 1], ["tanh", "identity"], seed=0)
    seen = []
    h = net.fit(
        X[:30], Y[:30], epochs=60, optimizer=SOLVERS[name](), progress=False,
        validation_data=(X[30:], Y[30:]), early_stopping=fastbp.EarlyStopping(patience=2),
        callback=lambda k, hist: seen.append(k) and None,
    )  # fmt: skip
    # As with SGD: the iteration that triggers early stopping gets no callback.
    assert len(h.val_loss) == len(h.loss) == h.steps
    assert seen == list(range(1, h.steps + 1 - (h.status == "early_stopped")))
    if h.status == "early_stopped":
        assert h.best_val_loss == min(h.val_loss)
    stop = net.copy().fit(X, Y, epochs=50, optimizer=SOLVERS[name](), progress=False,
                          callback=lambda k, hist: k == 3)  # fmt: skip
    assert stop.status == "stopped" and stop.steps == 3


@pytest.mark.parametrize("name", list(SOLVERS))
def test_ctrl_c_stops_after_a_whole_iteration(smooth, name):
    """KeyboardInterrupt between kernel calls (raised here by the callback after iteration 3):
    the network holds the parameters of 3 whole iterations, the history says so."""
    X, Y = smooth
    net = fastbp.MLP([2, 6, 1], ["tanh", "identity"], seed=0)
    ref = net.copy()
    ref.fit(X, Y, epochs=3, optimizer=SOLVERS[name](), progress=False)

    def interrupt(k, history):
        if k == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        net.fit(X, Y, epochs=10, optimizer=SOLVERS[name](), progress=False, callback=interrupt)
    assert info.value.history.status == "interrupted" and info.value.history.steps == 3
    assert net.history is info.value.history
    assert np.array_equal(net.params, ref.params)


@pytest.mark.parametrize("name", ["lbfgs", "lm"])
def test_float32_networks(name):
    X = np.linspace(-1, 1, 60).reshape(-1, 1)
    Y = np.sin(3 * X)
    net = fastbp.MLP([1, 8, 1], ["tanh", "identity"], dtype=np.float32, seed=0)
    before = net.loss(X, Y)
    h = net.fit(X, Y, epochs=30, optimizer=SOLVERS[name](), progress=False)
    assert net.params.dtype == np.float32 and np.isfinite(net.params).all()
    assert net.loss(X, Y) < 1e-2 * before
    assert h.loss[-1] == pytest.approx(net.loss(X, Y) / len(X), rel=1e-5)


def test_solver_arguments_are_checked():
    with pytest.raises(TypeError, match="history"):
        fastbp.LBFGS(history=2.5)
    with pytest.raises(ValueError, match="max_line_search"):
        fastbp.LBFGS(max_line_search=0)
    with pytest.raises(ValueError, match="tol"):
        fastbp.LBFGS(tol=-1.0)
    with pytest.raises(ValueError, match="mu_increase"):
        fastbp.LevenbergMarquardt(mu_increase=1.0)
    with pytest.raises(ValueError, match="mu_decrease"):
        fastbp.BayesianRegularization(mu_decrease=1.5)
    with pytest.raises(ValueError, match="mu_max"):
        fastbp.LevenbergMarquardt(mu=1.0, mu_max=0.5)
    assert "mu=0.005" in repr(fastbp.BayesianRegularization())


# ------------------------------------------------------------------------------ the CLI
@pytest.mark.parametrize("optimizer", ["lbfgs", "lm", "br"])
def test_cli_train_with_a_full_batch_optimizer(optimizer, capsys):
    from fastbp.cli import main

    argv = ["train", "--no-progress", "--optimizer", optimizer, "--epochs", "20",
            "--samples", "100", "--sizes", "1,8,1", "--activation", "tanh,identity"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "full batch, 20 iterations" in out and "iter" in out
    before, after = (float(x) for x in out.split("training loss ")[1].split(" (")[0].split(" -> "))
    assert after < 1e-2 * before


def test_cli_full_batch_errors(capsys):
    from fastbp.cli import main

    assert main(["train", "--optimizer", "lm", "--batch-size", "8"]) != 0
    assert "--batch-size" in capsys.readouterr().err
    assert main(["train", "--optimizer", "br", "--data", "digits"]) != 0
    assert "squared loss" in capsys.readouterr().err
