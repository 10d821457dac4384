"""Digits: time to the same test accuracy for fastbp, a PyTorch loop and scikit-learn's
MLPClassifier; softmax cross-entropy against the squared loss in one loss-and-gradient call.

``python -m benchmarks.digits [--target 0.97] [--rounds 3] [--part all|accuracy|loss]``

accuracy: the 1,797 UCI digits (:func:`fastbp.datasets.digits`), the seeded 80/20 split of
``fastbp train --data digits``, one network for all three: 64-64-10, tanh then softmax over the
logits, mean cross-entropy per batch of 32 (shuffled each epoch), Adam (lr 0.003, betas 0.9 and
0.999, eps 1e-8, no weight decay), float64. Each run is a fresh interpreter that imports its
library, trains epoch by epoch and measures the test accuracy after each epoch (the same cost
for all three), and stops at ``--target``: the time printed is from the start of the
interpreter's work (the import included: fastbp's warm start-up, its kernels loaded from the
disk cache, which a first untimed run fills) to that epoch. The runs alternate, median of
``--rounds``.

loss: ``kernels._loss_and_grad_large`` (the serial driver ``MLP.loss_and_grad`` takes for this
network) at [784, 128, 10], B = 32, 1 thread: the classic squared-loss call and the loss-code
call of the softmax cross-entropy, alternately in one process, median microseconds per call;
and the seconds of Numba compile events (``numba:compile``, top level) of each signature's first
call when the cache is empty (the loss-code signature compiled second, so its figure is what it
adds to a process that has the squared one).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
lib, target, max_epochs = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
import numpy as np
from fastbp.cli_digits import split
from fastbp.datasets import digits

X, y = digits()
tr, te = split(X.shape[0], 0)
Xtr, ytr, Xte, yte = X[tr], y[tr], X[te], y[te]
LR, BATCH = 0.003, 32
acc, epochs = 0.0, 0
if lib == "fastbp":
    import fastbp
    net = fastbp.MLP([64, 64, 10], ["tanh", "identity"], loss="softmax_cross_entropy", seed=0)
    state = {}
    def cb(epoch, history):
        state["acc"] = float((net.predict_classes(Xte) == yte).mean())
        state["epoch"] = epoch
        return state["acc"] >= target
    net.fit(Xtr, ytr, epochs=max_epochs, batch_size=BATCH, optimizer=fastbp.Adam(lr=LR),
            seed=0, progress=False, callback=cb)
    acc, epochs = state["acc"], state["epoch"]
elif lib == "torch":
    import torch
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Tanh(),
                                torch.nn.Linear(64, 10)).double()
    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt, Xv = torch.from_numpy(Xtr), torch.from_numpy(ytr), torch.from_numpy(Xte)
    g = torch.Generator().manual_seed(0)
    for epochs in range(1, max_epochs + 1):
        perm = torch.randperm(Xt.shape[0], generator=g)
        for s in range(0, Xt.shape[0], BATCH):
            idx = perm[s:s + BATCH]
            opt.zero_grad()
            loss_fn(model(Xt[idx]), yt[idx]).backward()
            opt.step()
        with torch.no_grad():
            acc = float((model(Xv).argmax(1).numpy() == yte).mean())
        if acc >= target:
            break
else:
    import warnings
    from sklearn.neural_network import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(64,), activation="tanh", solver="adam", alpha=0.0,
                        batch_size=BATCH, learning_rate_init=LR, beta_1=0.9, beta_2=0.999,
                        epsilon=1e-8, shuffle=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for epochs in range(1, max_epochs + 1):
            clf.partial_fit(Xtr, ytr, classes=np.arange(10))
            acc = float((clf.predict(Xte) == yte).mean())
            if acc >= target:
                break
print("RESULT " + json.dumps({"seconds": time.perf_counter() - t0, "acc": acc,
                              "epochs": epochs}))
"""

LOSS_CHILD = r"""
import json, os, sys, time
import numba
import numpy as np
from numba.core import event
depth, compile_s = [0], [0.0]
class Listener(event.Listener):
    def on_start(self, ev):
        depth[0] += 1
        if depth[0] == 1:
            self.t = time.perf_counter()
    def on_end(self, ev):
        if depth[0] == 1:
            compile_s[0] += time.perf_counter() - self.t
        depth[0] -= 1
event.register("numba:compile", Listener())
import fastbp
from fastbp import kernels
numba.set_num_threads(1)
rounds = int(sys.argv[1])
net = fastbp.MLP([784, 128, 10], ["tanh", "identity"], seed=0)
theta, sizes, codes = net.kernel_args()
rng = np.random.default_rng(0)
X = rng.normal(size=(32, 784))
Y = np.eye(10)[np.arange(32) % 10]
A, Z, tmp = kernels.make_workspace(net.sizes, 32, net.dtype)
g = np.empty_like(theta)
f = kernels._loss_and_grad_large
calls = {"squared": (theta, sizes, codes, X, Y, A, Z, tmp, g)}
calls["softmax_ce"] = (*calls["squared"], 1, np.empty(0))
first = {}
for name, args in calls.items():
    compile_s[0] = 0.0
    f(*args)
    first[name] = compile_s[0]
times = {name: [] for name in calls}
for _ in range(rounds):
    for name, args in calls.items():
        t = time.perf_counter()
        for _ in range(200):
            f(*args)
        times[name].append((time.perf_counter() - t) / 200 * 1e6)
print("RESULT " + json.dumps({"compile_s": first, "us": times}))
"""


def _child(script: str, *args: str, env: dict | None = None) -> dict:
    import os

    out = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, check=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    line = [s for s in out.stdout.splitlines() if s.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def accuracy(target: float, rounds: int, max_epochs: int) -> None:
    libs = ("fastbp", "torch", "sklearn")
    # Untimed: compiles this fit's kernels in-process into the disk cache (a helper process
    # would compile them in the background, after the run).
    _child(CHILD, "fastbp", str(target), str(max_epochs), env={"FASTBP_BACKGROUND_COMPILE": "0"})
    runs = {lib: [] for lib in libs}
    for _ in range(rounds):
        for lib in libs:
            runs[lib].append(_child(CHILD, lib, str(target), str(max_epochs)))
    print(f"digits, time to test accuracy >= {target:.1%} (median of {rounds}, fresh interpreter,"
          " import included)")  # fmt: skip
    med = {lib: statistics.median(r["seconds"] for r in runs[lib]) for lib in libs}
    for lib in libs:
        r = runs[lib][0]
        print(f"  {lib:8s} {med[lib]:7.2f} s  ({r['epochs']} epochs, test accuracy {r['acc']:.2%})"
              f"  x{med[lib] / med['fastbp']:.2f} of fastbp")  # fmt: skip


def loss(rounds: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as cache:
        res = _child(LOSS_CHILD, str(rounds), env={"NUMBA_CACHE_DIR": cache})
    med = {k: statistics.median(v) for k, v in res["us"].items()}
    print("loss_and_grad [784, 128, 10], B = 32, 1 thread (serial driver), median us per call")
    for k in med:
        print(f"  {k:11s} {med[k]:8.1f} us   cold compile of its signature "
              f"{res['compile_s'][k]:6.1f} s")  # fmt: skip
    print(f"  ratio softmax_ce / squared: {med['softmax_ce'] / med['squared']:.3f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", type=float, default=0.97)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max-epochs", type=int, default=200)
    p.add_argument("--part", choices=("all", "accuracy", "loss"), default="all")
    args = p.parse_args(argv)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, python {sys.version.split()[0]}")
    if args.part in ("all", "loss"):
        loss(max(args.rounds, 5))
    if args.part in ("all", "accuracy"):
        accuracy(args.target, args.rounds, args.max_epochs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
