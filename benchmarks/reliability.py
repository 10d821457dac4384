"""Reliability benchmarks: peak memory, two threads on two networks, subnormal inputs.

asv suites (``peakmem_`` / ``time_``) plus a plain report that prints the ratios side by side
in one process, so noise from other work on the machine hits both sides alike::

    python -m benchmarks.reliability            # all three ratios
    python -m benchmarks.reliability memory     # or: threads, subnormal

Ratios measured in one run are comparable; lone timings on a shared machine are not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

import fastbp

#: The large case of the memory criterion: [4096]*4 at B=512 in float32.
BIG_SIZES = [4096, 4096, 4096, 4096]
BIG_BATCH = 512


def needed_bytes(sizes, batch, dtype) -> int:
    """Bytes that must exist for one ``loss_and_grad``: theta, gradient, workspace A and Z
    (a^l and z^l of every layer), tmp, the inputs X and targets Y."""
    n_params = sum(m_out * (m_in + 1) for m_in, m_out in zip(sizes[:-1], sizes[1:]))
    units = sum(sizes[1:])
    n = 2 * n_params + 2 * batch * units + max(sizes) + batch * (sizes[0] + sizes[-1])
    return n * np.dtype(dtype).itemsize


def _problem(sizes, batch, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((batch, sizes[0]), dtype=np.float64).astype(dtype)
    Y = rng.random((batch, sizes[-1]), dtype=np.float64).astype(dtype)
    return X, Y


def _compile(dtype):
    net = fastbp.MLP([2, 2, 2], dtype=dtype)
    net.loss_and_grad(np.ones((1, 2), dtype), np.ones((1, 2), dtype))


# ------------------------------------------------------------------------------------- memory
class PeakMemory:
    """Peak RSS of building a [4096]*4 float32 network and one loss_and_grad at B=512."""

    timeout = 600

    def setup(self):
        _compile(np.float32)
        self.X, self.Y = _problem(BIG_SIZES, BIG_BATCH, np.float32)

    def peakmem_loss_and_grad_4096x4_b512_float32(self):
        net = fastbp.MLP(BIG_SIZES, "tanh", dtype=np.float32, seed=0)
        net.loss_and_grad(self.X, self.Y)


_MEMORY_CHILD = """
import json, resource, sys, tracemalloc
import numpy as np
sys.path.insert(0, sys.argv[1])
from benchmarks import reliability as r

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

r._compile(np.float32)
X, Y = r._problem(r.BIG_SIZES, r.BIG_BATCH, np.float32)
base = rss()
tracemalloc.start()
net = r.fastbp.MLP(r.BIG_SIZES, "tanh", dtype=np.float32, seed=0)
net.loss_and_grad(X, Y)
traced_peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
needed = r.needed_bytes(r.BIG_SIZES, r.BIG_BATCH, np.float32)
inputs = X.nbytes + Y.nbytes
print(json.dumps({"needed": needed, "rss_base": base, "rss_peak": peak,
                  "rss_ratio": (peak - base + inputs) / needed,
                  "traced_ratio": (traced_peak + inputs) / needed}))
"""


def memory_report() -> dict:
    """Peak memory of the big case against :func:`needed_bytes`, in a fresh process.

    ``rss_ratio``: (peak RSS - RSS before the network existed + the inputs) / needed, so the
    interpreter, numba and compiled code are not counted; ``traced_ratio``: the same from
    NumPy's allocations as tracemalloc sees them.
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, root], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout)


# ------------------------------------------------------------------------------------ threads
THREAD_SIZES = [784, 256, 128, 10]
THREAD_BATCH = 64
THREAD_CALLS = 40


def _calls(net, X, Y, n):
    out = np.empty(net.n_params, dtype=net.dtype)
    for _ in range(n):
        net.loss_and_grad(X, Y, out=out)


class TwoThreads:
    """The same work per network, on one thread and on two threads with one network each:
    with ``nogil`` kernels the two-thread case finishes twice the work in about the time."""

    params = ([np.float32, np.float64],)
    param_names = ["dtype"]

    def setup(self, dtype):
        self.nets = [fastbp.MLP(THREAD_SIZES, "relu", dtype=dtype, seed=s) for s in (0, 1)]
        self.X, self.Y = _problem(THREAD_SIZES, THREAD_BATCH, dtype)
        for net in self.nets:
            _calls(net, self.X, self.Y, 1)

    def time_one_thread_one_network(self, dtype):
        _calls(self.nets[0], self.X, self.Y, THREAD_CALLS)

    def time_two_threads_two_networks(self, dtype):
        threads = [
            threading.Thread(target=_calls, args=(net, self.X, self.Y, THREAD_CALLS))
            for net in self.nets
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def thread_report(repeats: int = 7, dtype=np.float32) -> dict:
    """Throughput of 2 threads on 2 networks over 1 thread on 1 network (2.0 is ideal),
    best of ``repeats`` for each, interleaved."""
    bench = TwoThreads()
    bench.setup(dtype)
    one, two, cpu = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        bench.time_one_thread_one_network(dtype)
        one.append(time.perf_counter() - t0)
        t0, c0 = time.perf_counter(), time.process_time()
        bench.time_two_threads_two_networks(dtype)
        two.append(time.perf_counter() - t0)
        cpu.append((time.process_time() - c0) / two[-1])
    t1, t2 = min(one), min(two)
    return {
        "one_thread_s": t1,
        "two_threads_s": t2,
        "throughput_ratio": (2 * THREAD_CALLS / t2) / (THREAD_CALLS / t1),
        # CPU seconds per wall second in the two-thread runs: above 1 only if both threads
        # computed at the same time (no GIL); below 2 when other work shares the cores.
        "two_threads_cpu_per_wall": max(cpu),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }


# ---------------------------------------------------------------------------------- subnormal
SUB_SIZES = [256, 256, 256, 8]
SUB_BATCH = 64


def _subnormal_problem(dtype, kind):
    """Inputs of ordinary size or in the subnormal range; identity/relu layers keep the
    activations subnormal through the whole network (tanh would not change that either)."""
    rng = np.random.default_rng(0)
    X = rng.uniform(0.5, 1.0, size=(SUB_BATCH, SUB_SIZES[0]))
    if kind == "subnormal":
        X = X * float(np.finfo(dtype).smallest_normal) / 4
    Y = np.zeros((SUB_BATCH, SUB_SIZES[-1]))
    return X.astype(dtype), Y.astype(dtype)


class Subnormal:
    """loss_and_grad with normal against subnormal inputs (no flush-to-zero)."""

    params = ([np.float32, np.float64], ["normal", "subnormal"])
    param_names = ["dtype", "inputs"]

    def setup(self, dtype, kind):
        self.net = fastbp.MLP(SUB_SIZES, ["relu", "identity", "identity"], dtype=dtype, seed=0)
        self.net.params = np.abs(self.net.params)  # no cancellation to exact zeros
        self.X, self.Y = _subnormal_problem(dtype, kind)
        self.out = np.empty(self.net.n_params, dtype=dtype)
        self.net.loss_and_grad(self.X, self.Y, out=self.out)

    def time_loss_and_grad(self, dtype, kind):
        self.net.loss_and_grad(self.X, self.Y, out=self.out)


def subnormal_report(repeats: int = 7, number: int = 20) -> dict:
    """Time per call with subnormal over normal inputs, per dtype, interleaved, best of."""
    result = {}
    for dtype in (np.float32, np.float64):
        benches = {}
        for kind in ("normal", "subnormal"):
            b = Subnormal()
            b.setup(dtype, kind)
            benches[kind] = b
        times = {"normal": [], "subnormal": []}
        for _ in range(repeats):
            for kind, b in benches.items():
                t0 = time.perf_counter()
                for _ in range(number):
                    b.time_loss_and_grad(dtype, kind)
                times[kind].append((time.perf_counter() - t0) / number)
        name = np.dtype(dtype).name
        result[name] = {k: min(v) for k, v in times.items()}
        result[name]["ratio"] = result[name]["subnormal"] / result[name]["normal"]
    return result


def main(argv=None) -> None:
    which = (argv if argv is not None else sys.argv[1:]) or ["memory", "threads", "subnormal"]
    reports = {"memory": memory_report, "threads": thread_report, "subnormal": subnormal_report}
    for name in which:
        print(name, json.dumps(reports[name](), indent=1))


if __name__ == "__main__":
    main()
