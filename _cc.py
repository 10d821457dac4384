"""Cold compile seconds (numba.core.event 'numba:compile', top level) per call, one process."""
import os, sys, time
os.environ["FASTBP_BACKGROUND_COMPILE"] = "0"
os.environ["FASTBP_DISABLE_CACHE"] = "1"
import numpy as np
from numba.core import event
import fastbp
from fastbp import kernels

depth = [0]
tot = [0.0]
class L(event.Listener):
    def on_start(self, ev):
        depth[0] += 1
        if depth[0] == 1: self.t = time.perf_counter()
    def on_end(self, ev):
        if depth[0] == 1: tot[0] += time.perf_counter() - self.t
        depth[0] -= 1
event.register("numba:compile", L())
net = fastbp.MLP([784, 128, 10], ["tanh", "identity"], loss=sys.argv[2], seed=0)
theta, sizes, codes = net.kernel_args()
X = np.random.default_rng(0).normal(size=(32, 784)); Y = np.eye(10)[np.arange(32) % 10]
A, Z, tmp = kernels.make_workspace(net.sizes, 32, net.dtype)
g = np.empty_like(theta)
args = (theta, sizes, codes, X, Y, A, Z, tmp, g)
if sys.argv[1] == "new":
    args = (*args, net._loss_code, np.empty(0))
t = time.perf_counter()
kernels._loss_and_grad_large(*args)
print(sys.argv[1:], f"compile events {tot[0]:.1f} s, first call {time.perf_counter()-t:.1f} s")
if len(sys.argv) > 3:
    import numba
    numba.set_num_threads(1)
    sq = (theta, sizes, codes, X, Y, A, Z, tmp, g)
    ce = (*sq, 1, np.empty(0))
    kernels._loss_and_grad_large(*sq); kernels._loss_and_grad_large(*ce)
    res = {"squared": [], "softmax_ce": []}
    for _ in range(7):
        for name, a in (("squared", sq), ("softmax_ce", ce)):
            t = time.perf_counter()
            for _ in range(300):
                kernels._loss_and_grad_large(*a)
            res[name].append((time.perf_counter() - t) / 300 * 1e6)
    m = {k: sorted(v)[3] for k, v in res.items()}
    print("median us/call", m, "ratio ce/sq", m["softmax_ce"] / m["squared"])
