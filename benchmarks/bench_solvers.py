"""asv suite: the full-batch solvers beside their peers (``benchmarks/solvers.py`` is the
script with the ratios and the losses).

- ``TimeLBFGS.time_fit``: 100 iterations of L-BFGS on the diabetes set, ``[10, 64, 64, 1]``
  tanh: ``fit(optimizer=fastbp.LBFGS(tol=0))`` beside scikit-learn's
  ``MLPRegressor(solver="lbfgs")`` (skipped without scikit-learn).
- ``TimeLM.time_fit``: 20 iterations of ``LevenbergMarquardt`` and of
  ``BayesianRegularization`` on 100 samples of sin(3x), ``[1, 10, 1]`` tanh, beside
  ``scipy.optimize.least_squares(method="lm", max_nfev=20)`` over ``net.residual_jacobian``.

``setup`` runs the fit once, so ``time_`` measures the steady state (the compile or cache load
of the loop is not in it).
"""

import warnings

import numpy as np

import fastbp

from .common import smoke_params


class TimeLBFGS:
    params = smoke_params(["fastbp", "sklearn"], keep=(0,))
    param_names = ["impl"]
    timeout = 300
    ITERATIONS = 100

    def setup(self, impl):
        from .solvers import diabetes

        try:
            self.X, self.Y = diabetes()
        except ImportError:
            raise NotImplementedError("scikit-learn is not installed") from None
        if impl == "sklearn":
            from sklearn.neural_network import MLPRegressor

            self.reg = MLPRegressor(
                hidden_layer_sizes=(64, 64), activation="tanh", solver="lbfgs", alpha=0.0,
                random_state=0, tol=0.0, max_iter=self.ITERATIONS,
            )  # fmt: skip
        self.time_fit(impl)

    def time_fit(self, impl):
        if impl == "fastbp":
            net = fastbp.MLP([10, 64, 64, 1], ["tanh", "tanh", "identity"], seed=0)
            net.fit(self.X, self.Y, epochs=self.ITERATIONS, optimizer=fastbp.LBFGS(tol=0.0),
                    progress=False)  # fmt: skip
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.reg.fit(self.X, self.Y[:, 0])


class TimeLM:
    params = smoke_params(["lm", "br", "scipy"], keep=(0,))
    param_names = ["impl"]
    timeout = 300
    ITERATIONS = 20

    def setup(self, impl):
        self.X = np.linspace(-1, 1, 100).reshape(-1, 1)
        self.Y = np.sin(3 * self.X)
        if impl == "scipy":
            try:
                from fastbp import optimize  # noqa: F401  (needs scipy)
            except ImportError:
                raise NotImplementedError("scipy is not installed") from None
        self.time_fit(impl)

    def time_fit(self, impl):
        net = fastbp.MLP([1, 10, 1], ["tanh", "identity"], seed=0)
        if impl == "scipy":
            from fastbp import optimize

            optimize.least_squares(net, self.X, self.Y, method="lm", max_nfev=self.ITERATIONS)
            return
        opt = fastbp.LevenbergMarquardt() if impl == "lm" else fastbp.BayesianRegularization()
        net.fit(self.X, self.Y, epochs=self.ITERATIONS, optimizer=opt, progress=False)
