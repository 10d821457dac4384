"""Side-by-side time of one loss-and-gradient call: fastbp against NumPy, PyTorch and JAX.

Usage (from the repository root)::

    python -m benchmarks.peers                      # every configuration, float64 and float32
    python -m benchmarks.peers --threads 2          # fastbp, BLAS, torch and XLA on 2 threads
    python -m benchmarks.peers --dtype float64 --only 784,128,10
    python -m benchmarks.peers --threads 2 --thread-scaling   # fastbp, 1 against 2 threads

Thread counts are fixed through the environment before NumPy, PyTorch or JAX is imported
(``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``XLA_FLAGS``,
``NUMBA_NUM_THREADS``), so run each thread count in its own process, as this script does.

Method: every implementation is warmed up (compiled, caches filled), then timed in interleaved
rounds (fastbp, NumPy, PyTorch, JAX, fastbp, ...): each round times a loop of ``n`` calls sized
to take about ``--round-ms`` milliseconds and records the time per call. The table shows the
median over rounds in microseconds, and ``ratio = best peer / fastbp`` (above 1: fastbp is
faster). The ``default/1t`` column times fastbp once more, in the same rounds, at Numba's default
thread count (every core, as a user gets it) and gives ``time at --threads / time at the
default``: at ``--threads 1`` it shows whether the default threads ever make a call slower than
one thread (below 1). PyTorch and JAX columns are filled when those packages are installed
(``pip install torch==2.13.0 jax``); NumPy is always there.
"""

from __future__ import annotations

import argparse
import os
import sys

#: (sizes, batch) of the performance issue's table.
CONFIGS = [
    ((2, 16, 1), 1),
    ((784, 128, 10), 1),
    ((784, 128, 10), 32),
    ((784, 128, 10), 256),
    ((784, 512, 512, 10), 128),
    ((64,) * 11, 1),
    ((64,) * 11, 64),
    ((2048, 2048, 2048), 64),
    # scikit-learn's diabetes set through a small regressor: where threads used to slow a call
    # down (issue 14).
    ((10, 64, 64, 1), 442),
    # Cost per sample against the batch (issue 22): the sample-blocked gradient keeps it flat.
    ((10, 64, 64, 1), 4096),
    ((10, 64, 64, 1), 65536),
    ((784, 128, 10), 4096),
    ((784, 128, 10), 65536),
]


def _parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.peers",
        description="Median time per loss-and-gradient call of fastbp and its peers.",
    )
    p.add_argument("--threads", type=int, default=1, help="threads for every library (1)")
    p.add_argument("--dtype", choices=["float64", "float32", "both"], default="both", help="(both)")
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="SIZES",
        help="run only the configurations whose sizes are SIZES, e.g. 784,128,10 (repeatable)",
    )
    p.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds (15)")
    p.add_argument("--round-ms", type=float, default=20.0, help="time per round per impl (20)")
    p.add_argument("--activation", default="sigmoid", help="activation of every layer (sigmoid)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    p.add_argument("--no-jax", action="store_true", help="leave JAX out")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.add_argument(
        "--thread-scaling",
        action="store_true",
        help="instead of peers: fastbp alone with 1 and with --threads threads, interleaved",
    )
    return p.parse_args(argv)


def _set_threads(n: int) -> None:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    # Numba keeps its default pool (every core, unless NUMBA_NUM_THREADS says otherwise) so the
    # default-threads column can use it; fastbp's own column runs at n (numba.set_num_threads).
    default = int(os.environ.get("NUMBA_NUM_THREADS", os.cpu_count() or 1))
    os.environ["NUMBA_NUM_THREADS"] = str(max(n, default))
    flags = os.environ.get("XLA_FLAGS", "")
    if n == 1:
        flags += " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    os.environ["XLA_FLAGS"] = flags.strip()


def _calibrate(step, target_s: float) -> int:
    import time

    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        dt = time.perf_counter() - t0
        if dt >= target_s / 4 or n >= 1 << 20:
            return max(1, int(n * target_s / max(dt, 1e-9)))
        n *= 4


def measure(steps: dict, rounds: int, round_ms: float) -> dict:
    """Median seconds per call of each callable in ``steps``, timed in interleaved rounds."""
    import time

    import numpy as np

    def enter(step):
        # A step with a ``threads`` attribute runs at that Numba thread count (set once per
        # loop of calls, outside the timed region's per-call cost).
        threads = getattr(step, "threads", None)
        if threads is not None:
            import numba

            numba.set_num_threads(threads)

    for step in steps.values():  # warm-up: compile, fill caches, grow workspaces
        enter(step)
        for _ in range(3):
            step()
    counts = {}
    for name, step in steps.items():
        enter(step)
        counts[name] = _calibrate(step, round_ms / 1e3)
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            n = counts[name]
            enter(step)
            t0 = time.perf_counter()
            for _ in range(n):
                step()
            times[name].append((time.perf_counter() - t0) / n)
    return {name: float(np.median(t)) for name, t in times.items()}


class _Step:
    """``fn()`` at ``threads`` Numba threads (see :func:`measure`)."""

    def __init__(self, fn, threads: int):
        self.fn = fn
        self.threads = threads

    def __call__(self):
        return self.fn()


def build_steps(
    sizes, batch, dtype, activation, use_torch=True, use_jax=True, threads=None
) -> dict:
    """The fastbp step and each available peer's step, on the same theta, X and Y; with
    ``threads``, fastbp at that many Numba threads and once more ("fastbp default") at Numba's
    default count."""
    import numpy as np

    import fastbp
    from benchmarks import peer_impls

    rng = np.random.default_rng(0)
    net = fastbp.MLP(list(sizes), activation, dtype=dtype, seed=1)
    X = rng.standard_normal((batch, sizes[0])).astype(dtype)
    Y = rng.uniform(0.0, 1.0, (batch, sizes[-1])).astype(dtype)
    theta = net.params.copy()
    acts = list(net.activations)
    if batch == 1:  # a single sample is passed 1-D, the way a user calls it
        Xf, Yf = X[0], Y[0]
    else:
        Xf, Yf = X, Y
    out = np.empty_like(theta)
    steps = {"fastbp": lambda: net.loss_and_grad(Xf, Yf, out=out)}
    if threads is not None:
        import numba

        fastbp_step = steps["fastbp"]
        steps["fastbp"] = _Step(fastbp_step, threads)
        steps["fastbp default"] = _Step(fastbp_step, numba.config.NUMBA_NUM_THREADS)
    steps["numpy"] = peer_impls.make_numpy(theta, list(sizes), acts, X, Y)
    makers = []
    if use_torch:
        makers.append(("torch", peer_impls.make_torch))
    if use_jax:
        makers.append(("jax", peer_impls.make_jax))
    for name, make in makers:
        step = make(theta, list(sizes), acts, X, Y)
        if step is not None:
            steps[name] = step
    return steps


def thread_scaling(args, configs, dtypes) -> int:
    """fastbp with 1 thread against ``args.threads`` threads, in the same interleaved rounds."""
    import functools
    import time

    import numba
    import numpy as np

    import fastbp

    header = ["sizes", "B", "dtype", "1 thread us", f"{args.threads} threads us", "speed-up"]
    rows = []
    for sizes, batch in configs:
        for dt in dtypes:
            rng = np.random.default_rng(0)
            net = fastbp.MLP(list(sizes), args.activation, dtype=dt, seed=1)
            X = rng.standard_normal((batch, sizes[0])).astype(dt)
            Y = rng.uniform(0.0, 1.0, (batch, sizes[-1])).astype(dt)
            out = np.empty(net.n_params, dtype=dt)
            times = {1: [], args.threads: []}
            for nt in times:
                numba.set_num_threads(nt)
                for _ in range(3):
                    net.loss_and_grad(X, Y, out=out)
            step = functools.partial(net.loss_and_grad, X, Y, out=out)
            n = _calibrate(step, args.round_ms / 1e3)
            for _ in range(args.rounds):
                for nt in times:
                    numba.set_num_threads(nt)
                    t0 = time.perf_counter()
                    for _ in range(n):
                        step()
                    times[nt].append((time.perf_counter() - t0) / n)
            med = {nt: float(np.median(t)) for nt, t in times.items()}
            row = [
                "[" + ",".join(map(str, sizes)) + "]",
                str(batch),
                dt,
                f"{med[1] * 1e6:.1f}",
                f"{med[args.threads] * 1e6:.1f}",
                f"{med[1] / med[args.threads]:.2f}",
            ]
            rows.append(row)
            sys.stderr.write("  " + " ".join(row) + "\n")
    _print_table(header, rows, args.markdown)
    return 0


def main(argv=None) -> int:
    args = _parse(argv)
    _set_threads(args.threads)
    # The tiled drivers from the first call (compiled in this process when the cache is cold),
    # not the plain tier while a helper process compiles them: the steady state is measured.
    os.environ.setdefault("FASTBP_BACKGROUND_COMPILE", "0")
    import numba
    import numpy as np

    import fastbp
    from fastbp import _tiers

    numba.set_num_threads(args.threads)
    if not args.no_torch:
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:
            pass
    dtypes = ["float64", "float32"] if args.dtype == "both" else [args.dtype]
    only = {tuple(int(s) for s in o.split(",")) for o in args.only}
    configs = [c for c in CONFIGS if not only or c[0] in only]
    if args.thread_scaling:
        return thread_scaling(args, configs, dtypes)
    peers = ["numpy", "torch", "jax"]
    header = [
        "sizes",
        "B",
        "dtype",
        "fastbp us",
        *(f"{p} us" for p in peers),
        "best",
        "ratio",
        "default/1t" if args.threads == 1 else f"default/{args.threads}t",
    ]
    rows = []
    sys.stderr.write(
        f"fastbp {fastbp.__version__}, numpy {np.__version__}, {args.threads} thread(s), "
        f"{args.rounds} rounds, activation {args.activation}, "
        f"default threads {numba.config.NUMBA_NUM_THREADS}, tier {_tiers.TIER}\n"
    )
    for sizes, batch in configs:
        for dt in dtypes:
            steps = build_steps(
                sizes,
                batch,
                np.dtype(dt),
                args.activation,
                not args.no_torch,
                not args.no_jax,
                threads=args.threads,
            )
            med = measure(steps, args.rounds, args.round_ms)
            peer_t = {p: med[p] for p in peers if p in med}
            best = min(peer_t, key=peer_t.get)
            row = [
                "[" + ",".join(map(str, sizes)) + "]",
                str(batch),
                dt,
                f"{med['fastbp'] * 1e6:.1f}",
                *(f"{peer_t[p] * 1e6:.1f}" if p in peer_t else "-" for p in peers),
                best,
                f"{peer_t[best] / med['fastbp']:.2f}",
                f"{med['fastbp'] / med['fastbp default']:.2f}",
            ]
            rows.append(row)
            sys.stderr.write("  " + " ".join(row) + "\n")
    _print_table(header, rows, args.markdown)
    return 0


def _print_table(header, rows, markdown: bool) -> None:
    if markdown:
        sys.stdout.write("| " + " | ".join(header) + " |\n")
        sys.stdout.write("|" + "---|" * len(header) + "\n")
        for r in rows:
            sys.stdout.write("| " + " | ".join(r) + " |\n")
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    sys.stdout.write("  ".join(h.rjust(w) for h, w in zip(header, widths)) + "\n")
    for r in rows:
        sys.stdout.write("  ".join(c.rjust(w) for c, w in zip(r, widths)) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
