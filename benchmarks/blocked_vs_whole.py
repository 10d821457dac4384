"""The sample-blocked gradient against the whole-batch driver it replaced, in one process.

Usage (from the repository root)::

    python -m benchmarks.blocked_vs_whole [--dtype float64|float32] [--rounds 11]

Both drivers give the same bits (checked here before timing): the serial whole-batch
``fastbp.kernels._loss_and_grad_large`` (the serial gradient before issue 22) and
``fastbp._kernels.blocked.loss_and_grad_blocked``, timed in interleaved rounds on the same
buffers, one thread. Prints the median time per call, the ratio old / new and the time per
sample of the new driver (flat in the batch when the blocks stay in L2).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

CASES = [
    ((10, 64, 64, 1), 442, "tanh"),
    ((10, 64, 64, 1), 4096, "tanh"),
    ((10, 64, 64, 1), 65536, "tanh"),
    ((784, 128, 10), 32, "sigmoid"),
    ((784, 128, 10), 256, "sigmoid"),
    ((784, 128, 10), 4096, "sigmoid"),
    ((784, 128, 10), 65536, "sigmoid"),
    ((64,) * 11, 64, "sigmoid"),
    ((784, 512, 512, 10), 128, "sigmoid"),
    ((2048, 2048, 2048), 64, "sigmoid"),
]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.blocked_vs_whole")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--rounds", type=int, default=11)
    args = p.parse_args(argv)
    import numba

    import fastbp
    from fastbp import kernels
    from fastbp._kernels.blocked import loss_and_grad_blocked

    numba.set_num_threads(1)
    dt = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    print("| sizes | B | whole-batch us | blocked us | whole / blocked | blocked ns/sample |")
    print("|---|---|---|---|---|---|")
    for sizes, B, act in CASES:
        net = fastbp.MLP(sizes, [act] * (len(sizes) - 2) + ["identity"], dtype=dt, seed=1)
        theta, s, c = net.kernel_args()
        X = rng.normal(size=(B, sizes[0])).astype(dt)
        Y = rng.normal(size=(B, sizes[-1])).astype(dt)
        A, Z, tmp = kernels.make_workspace(sizes, B, dt)
        g0, g1 = np.empty_like(theta), np.empty_like(theta)
        calls = [
            lambda: kernels._loss_and_grad_large(theta, s, c, X, Y, A, Z, tmp, g0),
            lambda: loss_and_grad_blocked(theta, s, c, X, Y, A, Z, tmp, g1),
        ]
        values = [f() for f in calls]
        assert values[0] == values[1] and np.array_equal(g0, g1), sizes
        work = B * sum(a * b for a, b in zip(sizes, sizes[1:]))
        reps = max(1, int(2e7 / work))
        times = [[], []]
        for _ in range(args.rounds):
            for i, f in enumerate(calls):
                t0 = time.perf_counter()
                for _ in range(reps):
                    f()
                times[i].append((time.perf_counter() - t0) / reps)
        old, new = (float(np.median(t)) * 1e6 for t in times)
        print(
            f"| {list(sizes)} | {B} | {old:.1f} | {new:.1f} | {old / new:.2f} | "
            f"{new / B * 1e3:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
