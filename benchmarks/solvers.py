"""The full-batch solvers against their peers: ``python -m benchmarks.solvers [--quick]``.

The targets of issue 23 (docs/full-batch.md holds the measured figures):

1. ``fit(optimizer=LBFGS())`` against scikit-learn's ``MLPRegressor(solver="lbfgs")`` on the
   diabetes set (standardised), ``[10, 64, 64, 1]`` tanh, alpha 0, the same iterations (both
   with their tolerances at 0): the fit itself, after the imports, the data and one warm-up
   call, at one thread each and at the defaults; the final training losses
   (``0.5 mean r^2`` in both). ``--process``: also each whole job in a fresh interpreter.
2. The per-iteration overhead outside the gradient: ``fit(LBFGS)`` against SciPy's
   ``minimize(method="L-BFGS-B")`` over ``net.loss_and_grad`` (one thread each): (time -
   evaluations x one gradient's time) / iterations.
3. ``LevenbergMarquardt`` against ``LBFGS`` given the same wall time: ``[1, 10, 1]`` tanh on
   100 noiseless samples of sin(3x), and ``[10, 16, 1]`` tanh on diabetes.
4. ``LevenbergMarquardt`` against ``scipy.optimize.least_squares(method="lm")`` over
   ``net.residual_jacobian``, from the same start: time to the loss SciPy ends at.
5. ``BayesianRegularization`` on a noisy 1-D set with a held-out test split, without a
   validation set, against the best test MSE of a sweep of early-stopped LM fits (hidden
   widths 2-20, a validation split of the training data); and its effective parameters.

Run it on a quiet machine: on a shared one the times move by 2x with the load. The asv suite
of the same operations is ``bench_solvers.py``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import warnings

import numpy as np

import fastbp

TANH2 = ["tanh", "tanh", "identity"]


def diabetes():
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    y = (y - y.mean()) / y.std()
    return X, y[:, None]


def _threads(one: bool):
    """Context: one thread for Numba and BLAS (``one``), or the defaults."""
    import numba
    from threadpoolctl import threadpool_limits

    class Limit:
        def __enter__(self):
            self.old = numba.get_num_threads()
            self.blas = threadpool_limits(1) if one else None
            if one:
                numba.set_num_threads(1)

        def __exit__(self, *exc):
            numba.set_num_threads(self.old)
            if self.blas is not None:
                self.blas.unregister()

    return Limit()


def lbfgs_against_sklearn(iterations: int, one_thread: bool) -> None:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    X, Y = diabetes()
    y = Y[:, 0]
    with _threads(one_thread):
        fastbp.MLP([10, 64, 64, 1], TANH2, seed=0).fit(
            X, Y, epochs=2, optimizer=fastbp.LBFGS(), progress=False
        )  # warm-up: cache load
        net = fastbp.MLP([10, 64, 64, 1], TANH2, seed=0)
        t0 = time.perf_counter()
        h = net.fit(X, Y, epochs=iterations, optimizer=fastbp.LBFGS(tol=0.0), progress=False)
        t_fb = time.perf_counter() - t0
        kw = dict(hidden_layer_sizes=(64, 64), activation="tanh", solver="lbfgs", alpha=0.0,
                  random_state=0, tol=0.0)  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            MLPRegressor(max_iter=2, **kw).fit(X, y)  # warm-up
            reg = MLPRegressor(max_iter=iterations, **kw)
            t0 = time.perf_counter()
            reg.fit(X, y)
            t_sk = time.perf_counter() - t0
    loss_sk = 0.5 * float(np.mean((reg.predict(X) - y) ** 2))
    label = "one thread each" if one_thread else "default threads"
    print(f"1. diabetes [10,64,64,1] tanh, {iterations} iterations, {label}")
    print(f"   sklearn MLPRegressor(lbfgs)  {t_sk:7.3f} s  loss {loss_sk:.6f} ({reg.n_iter_} it)")
    print(
        f"   fastbp fit(LBFGS)            {t_fb:7.3f} s  loss {h.loss[-1]:.6f} ({h.steps} it, "
        f"{h.status})   sklearn / fastbp = {t_sk / t_fb:.2f}"
    )


_PROCESS = {
    "fastbp": (
        "import fastbp\nfrom benchmarks.solvers import diabetes\nX, Y = diabetes()\n"
        "net = fastbp.MLP([10, 64, 64, 1], ['tanh', 'tanh', 'identity'], seed=0)\n"
        "net.fit(X, Y, epochs={it}, optimizer=fastbp.LBFGS(tol=0.0), progress=False)\n"
    ),
    "sklearn": (
        "import warnings\nfrom sklearn.neural_network import MLPRegressor\n"
        "from benchmarks.solvers import diabetes\nX, Y = diabetes()\n"
        "warnings.simplefilter('ignore')\n"
        "MLPRegressor(hidden_layer_sizes=(64, 64), activation='tanh', solver='lbfgs', "
        "alpha=0.0, random_state=0, tol=0.0, max_iter={it}).fit(X, Y[:, 0])\n"
    ),
}


def whole_process(iterations: int, rounds: int = 3) -> None:
    """Each job in a fresh interpreter (imports and cache loads included), alternating."""
    times = {k: [] for k in _PROCESS}
    for _ in range(rounds):
        for name, code in _PROCESS.items():
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code.format(it=iterations)], check=True)
            times[name].append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in times.items()}
    sk, fb = med["sklearn"], med["fastbp"]
    print(f"   whole process, medians of {rounds}: sklearn {sk:.2f} s, fastbp {fb:.2f} s   "
          f"sklearn / fastbp = {sk / fb:.2f}")  # fmt: skip


def overhead_against_scipy(iterations: int) -> None:
    from scipy.optimize import minimize

    X, Y = diabetes()
    n = len(X)
    with _threads(True):
        net = fastbp.MLP([10, 64, 64, 1], TANH2, seed=0)
        grad = np.empty(net.n_params)
        t_grad = _gradient_seconds(net, X, Y)
        opt = fastbp.LBFGS(tol=0.0)
        net.fit(X, Y, epochs=2, optimizer=opt, progress=False)  # warm-up
        net = fastbp.MLP([10, 64, 64, 1], TANH2, seed=0)
        h = net.fit(X, Y, epochs=iterations, optimizer=opt, progress=False)
        evals = _lbfgs_evaluations(X, Y, iterations)
        t_fb = h.train_seconds
        probe = fastbp.MLP([10, 64, 64, 1], TANH2, seed=0)

        def fun(theta):
            probe.params = theta
            loss, g = probe.loss_and_grad(X, Y, out=grad)
            return loss / n, g / n

        x0 = probe.params.copy()
        t0 = time.perf_counter()
        res = minimize(fun, x0, jac=True, method="L-BFGS-B",
                       options={"maxiter": iterations, "ftol": 0, "gtol": 0})  # fmt: skip
        t_sp = time.perf_counter() - t0
    over_fb = (t_fb - evals * t_grad) / max(h.steps, 1)
    over_sp = (t_sp - res.nfev * t_grad) / max(res.nit, 1)
    print(f"2. overhead per iteration outside the gradient (one gradient {t_grad * 1e3:.3f} ms)")
    print(f"   scipy L-BFGS-B  {over_sp * 1e6:8.1f} us  ({res.nit} it, {res.nfev} evaluations)")
    print(f"   fastbp LBFGS    {over_fb * 1e6:8.1f} us  ({h.steps} it, {evals} evaluations)")


def _gradient_seconds(net, X, Y, reps: int = 50) -> float:
    """Seconds of one call of the gradient the L-BFGS loop calls (the same compiled driver,
    ``fastbp._kernels.lbfgs._gradient``, on the same workspace), from Python."""
    from fastbp import kernels
    from fastbp._kernels.lbfgs import _gradient

    theta, sizes, codes = net.kernel_args()
    A, Z, tmp = kernels.make_workspace(net.sizes, len(X), net.dtype)
    g = np.empty_like(theta)
    X2, Y2 = np.ascontiguousarray(X), np.ascontiguousarray(Y)
    w = np.zeros(0)
    _gradient(theta, sizes, codes, X2, Y2, A, Z, tmp, g, 0, w)
    t0 = time.perf_counter()
    for _ in range(reps):
        _gradient(theta, sizes, codes, X2, Y2, A, Z, tmp, g, 0, w)
    return (time.perf_counter() - t0) / reps


def _lbfgs_evaluations(X, Y, iterations: int) -> int:
    """Gradient evaluations of an L-BFGS fit (its runner's counter)."""
    from fastbp._validate import as_pair
    from fastbp.losses import NO_WEIGHTS

    net = fastbp.MLP([10, 64, 64, 1], TANH2, seed=0)
    X2, Y2, _ = as_pair(X, Y, 10, 1, net.dtype)
    run = fastbp.LBFGS(tol=0.0)._runner(net, X2, Y2, NO_WEIGHTS, float(len(X)), iterations)
    run.run(0, iterations)
    return run.evaluations


def lm_against_lbfgs(label, sizes, X, Y, lm_iterations: int) -> None:
    acts = ["tanh"] * (len(sizes) - 2) + ["identity"]
    warm = fastbp.MLP(sizes, acts, seed=0)
    warm.fit(X, Y, epochs=2, optimizer=fastbp.LevenbergMarquardt(), progress=False)
    warm.fit(X, Y, epochs=2, optimizer=fastbp.LBFGS(), progress=False)
    lm = fastbp.MLP(sizes, acts, seed=0)
    h_lm = lm.fit(X, Y, epochs=lm_iterations, optimizer=fastbp.LevenbergMarquardt(),
                  progress=False)  # fmt: skip
    budget = h_lm.train_seconds
    qn = fastbp.MLP(sizes, acts, seed=0)
    h_qn = qn.fit(X, Y, epochs=10**7, optimizer=fastbp.LBFGS(tol=0.0), progress=False,
                  callback=lambda k, h: h.train_seconds >= budget)  # fmt: skip
    print(f"3. {label}: {budget:.3f} s each")
    print(f"   LevenbergMarquardt  loss {h_lm.loss[-1]:.3e} ({h_lm.steps} it, {h_lm.status})")
    print(f"   LBFGS               loss {h_qn.loss[-1]:.3e} ({h_qn.steps} it, {h_qn.status})"
          f"   LBFGS / LM = {h_qn.loss[-1] / h_lm.loss[-1]:.3g}")  # fmt: skip


def lm_against_least_squares(X, Y, sizes) -> None:
    from fastbp import optimize

    acts = ["tanh"] * (len(sizes) - 2) + ["identity"]
    n = len(X)
    warm = fastbp.MLP(sizes, acts, seed=0)
    optimize.least_squares(warm, X, Y, method="lm", max_nfev=3)
    warm.fit(X, Y, epochs=2, optimizer=fastbp.LevenbergMarquardt(), progress=False)
    ref = fastbp.MLP(sizes, acts, seed=0)
    t0 = time.perf_counter()
    res = optimize.least_squares(ref, X, Y, method="lm")
    t_sp = time.perf_counter() - t0
    target = ref.loss(X, Y) / n
    net = fastbp.MLP(sizes, acts, seed=0)
    h = net.fit(X, Y, epochs=10**6, optimizer=fastbp.LevenbergMarquardt(), progress=False,
                callback=lambda k, h: h.loss[-1] <= target)  # fmt: skip
    print(f"4. {sizes} on {n} samples: scipy least_squares(lm) ends at loss {target:.3e}")
    print(f"   scipy   {t_sp:7.3f} s ({res.nfev} evaluations)")
    print(f"   fastbp  {h.train_seconds:7.3f} s ({h.steps} it, loss {h.loss[-1]:.3e})   "
          f"scipy / fastbp = {t_sp / h.train_seconds:.2f}")  # fmt: skip


def br_against_early_stopping(seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, size=(300, 1))
    Y = np.sin(3 * X) + 0.2 * rng.normal(size=X.shape)
    Xtr, Ytr, Xte, Yte = X[:150], Y[:150], X[150:], Y[150:]

    def test_mse(net):
        return float(np.mean((net.predict(Xte) - Yte) ** 2))

    best = (np.inf, None)
    for width in (2, 3, 5, 8, 12, 20):
        net = fastbp.MLP([1, width, 1], ["tanh", "identity"], seed=0)
        net.fit(Xtr[:110], Ytr[:110], epochs=300, optimizer=fastbp.LevenbergMarquardt(),
                validation_data=(Xtr[110:], Ytr[110:]),
                early_stopping=fastbp.EarlyStopping(patience=6), progress=False)  # fmt: skip
        best = min(best, (test_mse(net), width), key=lambda t: t[0])
    br = fastbp.MLP([1, 20, 1], ["tanh", "identity"], seed=0)
    h = br.fit(Xtr, Ytr, epochs=300, optimizer=fastbp.BayesianRegularization(), progress=False)
    print("5. noisy sin(3x), 150 training / 150 test samples (noise variance 0.04)")
    print(f"   best early-stopped LM fit (width {best[1]}): test MSE {best[0]:.5f}")
    print(f"   BR [1,20,1], no validation set: test MSE {test_mse(br):.5f}, effective "
          f"parameters {h.effective_params[-1]:.1f} of {br.n_params} ({h.status})")  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, default=500)
    p.add_argument("--quick", action="store_true", help="fewer iterations: a functional check")
    p.add_argument("--process", action="store_true", help="also the whole-process comparison")
    args = p.parse_args(argv)
    it = 50 if args.quick else args.iterations
    lbfgs_against_sklearn(it, True)
    lbfgs_against_sklearn(it, False)
    if args.process:
        whole_process(it)
    overhead_against_scipy(it)
    X1 = np.linspace(-1, 1, 100).reshape(-1, 1)
    with _threads(True):
        lm_against_lbfgs("[1,10,1] tanh, 100 noiseless samples of sin(3x)", [1, 10, 1], X1,
                         np.sin(3 * X1), 30 if args.quick else 200)  # fmt: skip
        Xd, Yd = diabetes()
        lm_against_lbfgs("[10,16,1] tanh, diabetes", [10, 16, 1], Xd, Yd,
                         10 if args.quick else 100)  # fmt: skip
        lm_against_least_squares(X1, np.sin(3 * X1), [1, 10, 1])
        br_against_early_stopping()
    return 0


if __name__ == "__main__":
    sys.exit(main())
