"""Second-order figures side by side: ``python -m benchmarks.second_order [--quick]``.

``--against DIR [--rounds N]``: instead, HVP, GNVP and loss_and_grad at [784, 128, 10] tanh
B = 32 (one thread) in this tree and in the checkout DIR (say the previous commit, from
``git worktree add`` or ``git archive``), alternating N rounds of one subprocess each (both
warm), then the medians and the ratios of the medians: a change measured side by side.

1. One HVP against one loss_and_grad (fastbp) and torch.func.jvp(grad), [784, 128, 10] tanh,
   B = 32, float64, one thread each: medians of repeated calls, and the ratios.
2. fastbp.optimize.minimize (L-BFGS-B) against scikit-learn's MLPRegressor(solver="lbfgs") on
   the diabetes set, standardised, [10, 64, 64, 1] tanh, alpha = 0: scikit-learn runs
   ``max_iter`` iterations, then fastbp runs until its mean loss is at most scikit-learn's
   final training loss (``0.5 mean r^2``, the same loss); wall times, at the default thread
   settings and with one thread each.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np

import fastbp


def median_time(fn, repeat=7, number=None):
    fn()
    if number is None:
        t0 = time.perf_counter()
        fn()
        number = max(1, int(0.05 / max(time.perf_counter() - t0, 1e-7)))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return float(np.median(times))


def torch_hvp(net, X, Y, v):
    """A closure computing H v with torch.func.jvp(grad) (float64, PyTorch's layout)."""
    import torch

    sizes = net.sizes
    acts = net.activations
    fns = {"tanh": torch.tanh, "identity": lambda a: a, "sigmoid": torch.sigmoid}
    tX, tY = torch.tensor(X), torch.tensor(Y)
    theta, tv = torch.tensor(net.params.copy()), torch.tensor(v)

    def loss(t):
        z, k = tX, 0
        for (m_in, m_out), name in zip(zip(sizes[:-1], sizes[1:]), acts):
            W = t[k : k + m_in * m_out].reshape(m_out, m_in)
            k += m_in * m_out
            z = fns[name](z @ W.T + t[k : k + m_out])
            k += m_out
        r = z - tY
        return 0.5 * (r * r).sum()

    hv = torch.func.jvp(torch.func.grad(loss), (theta,), (tv,))
    return lambda: torch.func.jvp(torch.func.grad(loss), (theta,), (tv,))[1] if hv else None


def hvp_figures(threads=1):
    import numba
    import torch

    numba.set_num_threads(threads)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    net = fastbp.MLP([784, 128, 10], ["tanh", "identity"], seed=0)
    X, Y = rng.normal(size=(32, 784)), rng.normal(size=(32, 10))
    v = rng.normal(size=net.n_params)
    out = np.empty(net.n_params)
    t_grad = median_time(lambda: net.loss_and_grad(X, Y, out=out))
    t_hvp = median_time(lambda: net.hvp(X, Y, v, out=out))
    t_gn = median_time(lambda: net.gnvp(X, Y, v, out=out))
    t_torch = median_time(torch_hvp(net, X, Y, v))
    print(f"[784,128,10] tanh B=32 float64, {threads} thread(s): medians")
    print(f"  loss_and_grad {t_grad * 1e6:9.1f} us")
    print(f"  hvp           {t_hvp * 1e6:9.1f} us   hvp / loss_and_grad = {t_hvp / t_grad:.2f}")
    print(f"  gnvp          {t_gn * 1e6:9.1f} us")
    print(f"  torch jvp(grad) {t_torch * 1e6:7.1f} us   torch / fastbp hvp = {t_torch / t_hvp:.2f}")


def diabetes():
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    y = (y - y.mean()) / y.std()
    return X, y


def optimizer_figures(max_iter=200, one_thread=False):
    import numba
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor
    from threadpoolctl import threadpool_limits

    from fastbp import optimize

    X, y = diabetes()
    Y = y[:, None]
    limit = threadpool_limits(1) if one_thread else None
    old = numba.get_num_threads()
    if one_thread:
        numba.set_num_threads(1)
    try:
        reg = MLPRegressor(
            hidden_layer_sizes=(64, 64), activation="tanh", solver="lbfgs", alpha=0.0,
            max_iter=max_iter, random_state=0, tol=0.0,
        )  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            t0 = time.perf_counter()
            reg.fit(X, y)
            t_sk = time.perf_counter() - t0
        target = 0.5 * float(np.mean((reg.predict(X) - y) ** 2))
        net = fastbp.MLP([10, 64, 64, 1], ["tanh", "tanh", "identity"], seed=0)
        optimize.minimize(net, X[:2], Y[:2], options={"maxiter": 1})  # compile, not timed
        net = fastbp.MLP([10, 64, 64, 1], ["tanh", "tanh", "identity"], seed=0)
        reached = []

        def stop(intermediate_result):
            if intermediate_result.fun <= target:
                reached.append(intermediate_result.fun)
                raise StopIteration

        t0 = time.perf_counter()
        res = optimize.minimize(
            net, X, Y, callback=stop, options={"maxiter": 20 * max_iter, "gtol": 0, "ftol": 0}
        )
        t_fb = time.perf_counter() - t0
    finally:
        numba.set_num_threads(old)
        if limit is not None:
            limit.unregister()
    label = "one thread each" if one_thread else "default threads"
    print(f"diabetes [10,64,64,1] tanh, {label}: sklearn {max_iter} it -> loss {target:.6f}")
    print(f"  sklearn MLPRegressor(lbfgs) {t_sk:7.3f} s")
    print(
        f"  fastbp.optimize.minimize    {t_fb:7.3f} s ({res.nit} it, loss {res.fun:.6f}, "
        f"reached: {bool(reached)})   sklearn / fastbp = {t_sk / t_fb:.2f}"
    )


# Run in a subprocess from a tree's root (its fastbp): medians of one process, as JSON.
_SIDE = """
import json, os, sys, time
sys.path.insert(0, os.getcwd())
import numba, numpy as np
import fastbp
numba.set_num_threads(1)
def med(fn, repeat=7):
    fn()
    t0 = time.perf_counter()
    fn()
    n = max(1, int(0.05 / max(time.perf_counter() - t0, 1e-7)))
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        ts.append((time.perf_counter() - t0) / n)
    return float(np.median(ts))
rng = np.random.default_rng(0)
net = fastbp.MLP([784, 128, 10], ["tanh", "identity"], seed=0)
X, Y = rng.normal(size=(32, 784)), rng.normal(size=(32, 10))
v = rng.normal(size=net.n_params); out = np.empty(net.n_params)
r = {"grad": med(lambda: net.loss_and_grad(X, Y, out=out)),
     "hvp": med(lambda: net.hvp(X, Y, v, out=out)),
     "gnvp": med(lambda: net.gnvp(X, Y, v, out=out))}
print("RESULT " + json.dumps(r))
"""


def side_by_side(other, rounds=5):
    """HVP figures of this tree against the tree ``other``, alternating subprocesses."""
    import json
    import os
    import subprocess

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "FASTBP_BACKGROUND_COMPILE": "0", "NUMBA_NUM_THREADS": "1"}
    runs = {"this": [], "other": []}
    for _ in range(rounds):
        for key, tree in (("other", other), ("this", here)):
            out = subprocess.run(
                [sys.executable, "-c", _SIDE], cwd=tree, env=env, capture_output=True, text=True
            )
            line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if not line:
                raise RuntimeError(out.stderr[-2000:])
            runs[key].append(json.loads(line[0][len("RESULT ") :]))
    print(f"[784,128,10] tanh B=32 float64, 1 thread, {rounds} alternating rounds: medians (us)")
    med = {k: {f: float(np.median([r[f] for r in v])) for f in v[0]} for k, v in runs.items()}
    for f in ("grad", "hvp", "gnvp"):
        a, b = med["other"][f], med["this"][f]
        print(f"  {f:5s} other {a * 1e6:9.1f}   this {b * 1e6:9.1f}   other / this = {a / b:.2f}")
    for k in ("other", "this"):
        print(f"  {k}: hvp / loss_and_grad = {med[k]['hvp'] / med[k]['grad']:.2f}")


def main(argv):
    if "--against" in argv:
        i = argv.index("--against")
        rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 5
        side_by_side(argv[i + 1], rounds)
        return
    quick = "--quick" in argv
    hvp_figures(1)
    optimizer_figures(50 if quick else 200, one_thread=False)
    optimizer_figures(50 if quick else 200, one_thread=True)


if __name__ == "__main__":
    main(sys.argv[1:])
