"""Side by side, in one run, on one thread: fastbp's input Jacobians and per-sample gradients
against torch.func (and JAX's jit(vmap(...)) when installed), the cases of issue 15.

    python -m benchmarks.derivatives [--repeat N]

Prints the median time of each implementation per case and fastbp's speed-up over each peer.
Every implementation runs once before timing (compile, warm-up); fastbp's per-sample
gradients write into a preallocated ``out`` (its steady state), the peers allocate as they do.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import fastbp  # noqa: E402

from .derivative_peers import make_jacobian_peer, make_per_sample_peer  # noqa: E402

#: (what, sizes, activations, batch, target speed-up over the best peer).
CASES = [
    ("jacobian", [3, 64, 5], "tanh", 128, 10.0),
    ("jacobian", [784, 128, 10], "tanh", 32, 2.0),
    ("per_sample_grads", [2, 16, 1], "tanh", 256, 3.0),
    ("per_sample_grads", [784, 128, 10], "tanh", 32, 3.0),
]
PEERS = ("torch", "jax")


def median_time(fn, repeat: int) -> float:
    """Median seconds of ``fn()`` over ``repeat`` runs (each run as many calls as fill ~2 ms)."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, int(2e-3 / once))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return float(np.median(times))


def fastbp_call(what, net, X, Y):
    if what == "jacobian":
        return lambda: net.jacobian(X)
    out = np.empty((X.shape[0], net.n_params))
    return lambda: net.per_sample_grads(X, Y, out=out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    import numba

    numba.set_num_threads(1)
    rng = np.random.default_rng(0)
    print(f"{'case':44s} {'impl':8s} {'median':>12s} {'fastbp x':>9s}  target")
    for what, sizes, act, batch, target in CASES:
        net = fastbp.MLP(sizes, act, seed=0)
        X = rng.normal(size=(batch, sizes[0]))
        Y = rng.normal(size=(batch, sizes[-1]))
        label = f"{what} {sizes} {act} B={batch}"
        times = {"fastbp": median_time(fastbp_call(what, net, X, Y), args.repeat)}
        for peer in PEERS:
            try:
                if what == "jacobian":
                    fn = make_jacobian_peer(peer, net, X)
                else:
                    fn = make_per_sample_peer(peer, net, X, Y)
            except NotImplementedError:
                continue
            times[peer] = median_time(fn, args.repeat)
        best = min(t for k, t in times.items() if k != "fastbp")
        for impl, t in times.items():
            ratio = "" if impl == "fastbp" else f"{t / times['fastbp']:8.1f}x"
            print(f"{label:44s} {impl:8s} {t * 1e6:10.1f}us {ratio:>9s}")
        print(f"{'':44s} {'best':8s} {'':12s} {best / times['fastbp']:8.1f}x  >= {target:g}x")


if __name__ == "__main__":
    main()
